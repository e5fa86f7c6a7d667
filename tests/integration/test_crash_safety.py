"""An import killed (SIGKILL) at any point leaves the store exactly old or exactly new."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.store import Store

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
SYMBOLS = ("AAA", "BBB", "CCC")

# The child writes NEW bars into a copy of the store, killing itself at the k-th event:
# each partition file written, each fsync, each rename (the journal's included).
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import polars as pl
    from pipeline.store import Store

    root, kill_at, new_minutes, new_daily = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count = {"n": 0}

    def event():
        count["n"] += 1
        if count["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    real_write, real_replace, real_fsync = pl.DataFrame.write_parquet, os.replace, os.fsync

    def write_parquet(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        event()

    def replace(src, dst):
        event()
        real_replace(src, dst)
        event()

    def fsync(fd):
        real_fsync(fd)
        event()

    pl.DataFrame.write_parquet, os.replace, os.fsync = write_parquet, replace, fsync
    batches = {"1m": pl.read_parquet(new_minutes), "1d": pl.read_parquet(new_daily)}
    Store(root).write_many(batches)
    print(count["n"])
    """
)


def bars(start: dt.datetime, step: dt.timedelta, n: int, close: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [s for s in SYMBOLS for _ in range(n)],
            "ts": [start + step * i for _ in SYMBOLS for i in range(n)],
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": close,
            "volume": 10.0,
        }
    )


def contents(root: Path) -> dict[str, pl.DataFrame]:
    store = Store(root)
    return {str(iv): store.read(iv).collect() for iv in store.intervals()}


def same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    if a.keys() != b.keys():
        return False
    try:
        for key, frame in a.items():
            assert_frame_equal(frame, b[key])
    except AssertionError:
        return False
    return True


@pytest.mark.slow
def test_sigkill_at_every_write_event_leaves_old_or_new(tmp_path: Path) -> None:
    old_root = tmp_path / "old"
    Store(old_root).write_many(
        {
            "1m": bars(T0, dt.timedelta(minutes=1), 5, 1.5),
            "1d": bars(dt.datetime(2024, 7, 1, tzinfo=dt.UTC), dt.timedelta(days=1), 2, 1.5),
        }
    )
    minutes = tmp_path / "new_1m.parquet"
    daily = tmp_path / "new_1d.parquet"
    # New rows in every old partition, and partitions of a new year.
    pl.concat(
        [
            bars(T0 + dt.timedelta(hours=1), dt.timedelta(minutes=1), 3, 1.7),
            bars(dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC), dt.timedelta(minutes=1), 2, 1.9),
        ]
    ).write_parquet(minutes)
    bars(dt.datetime(2024, 7, 5, tzinfo=dt.UTC), dt.timedelta(days=1), 2, 1.6).write_parquet(daily)
    old = contents(old_root)
    new_root = tmp_path / "new"
    shutil.copytree(old_root, new_root)
    Store(new_root).write_many({"1m": pl.read_parquet(minutes), "1d": pl.read_parquet(daily)})
    new = contents(new_root)
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    tried, outcomes = 0, {"old": 0, "new": 0}
    for kill_at in range(1, 200):
        root = tmp_path / f"kill{kill_at}"
        shutil.copytree(old_root, root)
        done = subprocess.run(
            [sys.executable, str(script), str(root), str(kill_at), str(minutes), str(daily)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            break  # past the last event: the write completed
        assert done.returncode == -9, done.stderr
        tried += 1
        seen = contents(root)  # a reader rolls an interrupted commit forward first
        assert same(seen, old) or same(seen, new), f"mixed store after kill at event {kill_at}"
        outcomes["old" if same(seen, old) else "new"] += 1
        Store(root).write("1m", bars(T0, dt.timedelta(minutes=1), 1, 1.5))  # the next import
        assert not list(root.rglob("*.tmp")), f"temp files left after kill at event {kill_at}"
        assert not (root / ".journal.json").exists()
        shutil.rmtree(root)
    print(f"kill points tried: {tried}, ended old: {outcomes['old']}, new: {outcomes['new']}")
    assert tried >= 20
    assert outcomes["old"]
    assert outcomes["new"]
