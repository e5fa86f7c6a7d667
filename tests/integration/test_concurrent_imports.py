"""Two ``pipeline data import`` processes into one fresh store at once (issue 7).

Each round starts two CLI processes that load everything, then wait on a start file:
a large import (daily bars of 80 symbols over 15 years: 1,200 partitions, its write
holds ``<root>/.lock`` for about a second) and a small one (two other symbols). Rounds
alternate between starting both together and starting the small one only once
``/proc/locks`` shows the large one holding the lock, so the imports really overlap.
Either both succeed one after the other, or one is refused with a one-line message
naming the lock and what to do; the store then reads back exactly the successful
imports' bars, with no temporary file or journal left. ``-s`` prints the outcomes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 5
LAUNCH = """
import sys, time
from pathlib import Path
import pipeline.importing, pipeline.store  # loaded before the start signal
from pipeline.cli import main
go, ready = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
sys.argv = ["pipeline", *sys.argv[3:]]
main()
"""
BIG_SYMBOLS = [f"B{i:03d}" for i in range(80)]
SMALL_SYMBOLS = ["SMLA", "SMLB"]


def daily_bars(symbols: list[str], first: dt.date, last: dt.date) -> pl.DataFrame:
    days = pl.date_range(first, last, "1d", eager=True)
    stamps = days.filter(days.dt.weekday() <= 5).cast(pl.Datetime("us", "UTC")).alias("ts")
    grid = pl.DataFrame({"symbol": symbols}).join(stamps.to_frame(), how="cross")
    price = 100.0 + (pl.int_range(pl.len()) % 97).cast(pl.Float64)
    return grid.with_columns(
        open=price, high=price + 1.0, low=price - 1.0, close=price + 0.5, volume=pl.lit(1e3)
    ).sort("symbol", "ts")


def lock_held(root: Path) -> bool:
    """Whether a process holds an flock on ``root/.lock`` (read from /proc/locks, not taken)."""
    try:
        inode = (root / ".lock").stat().st_ino
    except FileNotFoundError:
        return False
    lines = Path("/proc/locks").read_text().splitlines()
    return any(
        f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)
        for f in (line.split() for line in lines)
    )


class Import:
    """One CLI import process, loaded and waiting for its start file."""

    def __init__(self, folder: Path, name: str, go: Path, args: list[str]) -> None:
        self.name, self.ready = name, folder / f"{name}.ready"
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        command = [sys.executable, "-c", LAUNCH, str(go), str(self.ready), "-q", *args]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=folder)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.process.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"{self.name} never got ready"
            time.sleep(0.01)

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(timeout=120)
        return code, self.err.read_text()


def check_refusal(stderr: str, root: Path) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"not one line: {stderr!r}"
    message = lines[0]
    assert message.startswith("error: Another import is writing to the store"), message
    assert f"'{root / '.lock'}'" in message, "the message does not name the lock"
    assert "Wait for it to finish and run this one again." in message


def check_store(root: Path, written: dict[str, pl.DataFrame]) -> None:
    store = Store(root)
    expected = [s for frame in written.values() for s in frame["symbol"].unique().to_list()]
    assert store.symbols("1d") == sorted(expected)
    if written:
        stored = store.read("1d").collect().sort("symbol", "ts")
        want = pl.concat(list(written.values())).sort("symbol", "ts")
        assert stored.equals(want.select(stored.columns)), "the store does not hold the imports"
    leftovers = [p.name for p in root.rglob("*") if p.name.endswith(".tmp") or "journal" in p.name]
    assert not leftovers, f"left behind: {leftovers}"


@pytest.mark.slow
def test_two_imports_at_once_serialise_or_one_is_refused_naming_the_lock(tmp_path: Path) -> None:
    big = daily_bars(BIG_SYMBOLS, dt.date(2009, 1, 1), dt.date(2023, 12, 31))
    small = daily_bars(SMALL_SYMBOLS, dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    big.write_parquet(tmp_path / "big.parquet")
    small.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ")).write_csv(
        tmp_path / "small.csv"
    )
    outcomes: list[str] = []
    for round_ in range(ROUNDS):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        root = folder / "store"
        go_big, go_small = folder / "go-big", folder / "go-small"
        common = ["data", "import", "--interval", "1d", "--stamp", "open", "--root", str(root)]
        imports = {
            "big": Import(folder, "big", go_big, [*common, str(tmp_path / "big.parquet")]),
            "small": Import(folder, "small", go_small, [*common, str(tmp_path / "small.csv")]),
        }
        for item in imports.values():
            item.wait_ready()
        together = round_ % 2 == 0
        go_big.touch()
        if not together:  # start the small import only while the big one holds the lock
            deadline = time.monotonic() + 60
            while not lock_held(root):
                assert imports["big"].process.poll() is None, imports["big"].err.read_text()
                assert time.monotonic() < deadline, "the big import never took the lock"
                time.sleep(0.002)
        go_small.touch()
        results = {name: item.finish() for name, item in imports.items()}

        refused = [name for name, (code, _) in results.items() if code != 0]
        assert len(refused) <= 1, f"round {round_}: both imports failed: {results}"
        for name, (code, stderr) in results.items():
            if code == 0:
                assert not stderr.strip(), f"{name}: {stderr}"
            else:
                assert code == 1, (name, code, stderr)
                check_refusal(stderr, root)
        frames = {"big": big, "small": small}
        check_store(root, {n: f for n, f in frames.items() if n not in refused})
        start = "together" if together else "small during the big one's lock"
        outcomes.append(f"{start}: " + (f"{refused[0]} refused" if refused else "both imported"))

    print("\nconcurrent import rounds:\n  " + "\n  ".join(outcomes))
    assert len(outcomes) == ROUNDS
