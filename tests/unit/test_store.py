from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from store_files import T0, bars, snapshot

from pipeline import store as store_module
from pipeline.errors import DataNotFoundError, InputError, StoreError
from pipeline.store import Store, validate_symbol


def test_write_then_read_round_trips_sorted_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    frame = bars().reverse()
    report = store.write("1m", frame)
    assert (report.rows_added, report.partitions) == (5, 1)
    got = store.read("1m", ["AAA"]).collect()
    assert_frame_equal(got, frame.sort("ts"))


def test_partitions_follow_the_layout(tmp_path: Path) -> None:
    store = Store(tmp_path)
    late = bars(start=dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC), n=2)
    store.write("1m", pl.concat([bars(), late]))
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "bars/interval=1m/symbol=AAA/year=2024/part-0.parquet",
        "bars/interval=1m/symbol=AAA/year=2025/part-0.parquet",
    ]


def test_read_selects_symbols_and_date_range(tmp_path: Path) -> None:
    store = Store(tmp_path)
    day2 = T0 + dt.timedelta(days=1)
    store.write("1m", pl.concat([bars("AAA"), bars("BBB"), bars("AAA", start=day2)]))
    got = store.read("1m", ["AAA"], dt.date(2024, 7, 2), dt.date(2024, 7, 2)).collect()
    assert got["ts"].to_list() == bars("AAA", start=day2)["ts"].to_list()
    window = store.read("1m", None, T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=3))
    assert window.collect()["symbol"].to_list() == ["AAA", "AAA", "BBB", "BBB"]


def test_one_scan_gives_each_row_the_symbol_of_its_file(tmp_path: Path) -> None:
    # Symbols with '=', '+', '^' and '.' in their folder name, files of two years each.
    store = Store(tmp_path)
    names = ["A=B", "C+D", "^GSPC", "BRK.B"]
    year2 = dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC)
    written = pl.concat(
        [bars(s, close=1.0 + i / 10) for i, s in enumerate(names)]
        + [bars(s, start=year2, n=2, close=1.0 + i / 10) for i, s in enumerate(names)]
    )
    store.write("1m", written)
    asked = ["C+D", "^GSPC", "A=B", "BRK.B", "C+D"]  # in this order, one twice
    got = store.read("1m", asked).collect()
    assert got["symbol"].unique(maintain_order=True).to_list() == ["C+D", "^GSPC", "A=B", "BRK.B"]
    assert got.height == written.height
    assert_frame_equal(got.sort("symbol", "ts"), written.sort("symbol", "ts"))
    enum = pl.Enum(sorted(names))
    typed = store.read("1m", asked, symbol_type=enum).collect()
    assert typed.schema["symbol"] == enum
    assert typed["symbol"].cast(pl.String).to_list() == got["symbol"].to_list()
    none = store.read("1m", ["A=B"], dt.date(2030, 1, 1), symbol_type=enum).collect()
    assert none.is_empty()
    assert none.schema["symbol"] == enum


def test_read_refuses_naive_datetimes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    with pytest.raises(InputError, match="no time zone"):
        store.read("1m", ["AAA"], dt.datetime(2024, 7, 1))


def test_read_unknown_symbol_names_the_closest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars("ACME"))
    with pytest.raises(DataNotFoundError, match="'ACMF'.*did you mean 'ACME'"):
        store.read("1m", ["ACMF"])


def test_identical_rows_are_dropped_on_merge(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    before = snapshot(tmp_path)
    report = store.write("1m", bars())
    assert (report.rows_added, report.rows_unchanged, report.partitions) == (0, 5, 0)
    assert snapshot(tmp_path) == before


def test_conflicting_rows_are_refused_and_store_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=r"5 bar\(s\) of AAA conflict.*--replace"):
        store.write("1m", bars(close=1.7))
    assert snapshot(tmp_path) == before


def test_replace_overwrites_conflicting_rows_only(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    report = store.write("1m", bars(close=1.7, n=2), replace=True)
    assert report.rows_replaced == 2
    assert store.read("1m").collect()["close"].to_list() == [1.7, 1.7, 1.5, 1.5, 1.5]


def test_failed_write_leaves_store_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    store.write("1m", pl.concat([bars("AAA"), bars("BBB")]))
    before = snapshot(tmp_path)
    calls = {"n": 0}
    real = pl.DataFrame.write_parquet

    def fail_second(self: pl.DataFrame, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_parquet", fail_second)
    new = pl.concat(
        [
            bars("AAA", start=T0 + dt.timedelta(hours=1)),
            bars("BBB", start=T0 + dt.timedelta(hours=1)),
        ]
    )
    with pytest.raises(StoreError, match="disk is full. Nothing was changed"):
        store.write("1m", new)
    assert snapshot(tmp_path) == before


def test_permission_error_is_a_clear_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)

    def denied(self: pl.DataFrame, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", denied)
    with pytest.raises(StoreError, match="permission denied.*--root"):
        store.write("1m", bars())
    assert list(tmp_path.rglob("*.parquet")) == []
    assert list(tmp_path.rglob("*.tmp")) == []


def test_interrupted_commit_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    store.write("1m", bars("AAA"))
    # Simulate a crash right after the journal was written: no rename happened.
    monkeypatch.setattr(Store, "recover", lambda self: None)
    store.write("1m", pl.concat([bars("AAA", start=T0 + dt.timedelta(hours=1)), bars("BBB")]))
    assert (tmp_path / ".journal.json").exists()
    monkeypatch.undo()
    Store(tmp_path).recover()
    assert not (tmp_path / ".journal.json").exists()
    assert Store(tmp_path).read("1m").collect().height == 15


def test_stray_temp_files_are_removed_on_next_write(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    stray = tmp_path / "bars/interval=1m/symbol=AAA/year=2024/.part-0.parquet.dead.tmp"
    stray.write_bytes(b"half a file")
    assert store.read("1m").collect().height == 5  # readers never see temp files
    store.write("1m", bars("BBB"))
    assert not stray.exists()


def test_second_writer_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    import fcntl

    store = Store(tmp_path)
    store.write("1m", bars())
    with open(tmp_path / ".lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StoreError, match="Another import is writing"):
            store.write("1m", bars("BBB"))
    store.write("1m", bars("BBB"))


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "..", ".hidden", "a\\b", "x\x00", "A" * 40, "a..b"]
)
def test_symbols_that_could_escape_the_root_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="not valid"):
        validate_symbol(bad)


def test_write_refuses_a_bad_symbol_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid"):
        Store(tmp_path).write("1m", bars("../evil"))
    assert not (tmp_path / "bars").exists()


@pytest.mark.parametrize("good", ["AAPL", "BRK.B", "ES=F", "^GSPC", "btc-usd", "X"])
def test_common_symbols_are_valid(good: str) -> None:
    assert validate_symbol(good) == good


def test_inventory_reports_first_last_rows_and_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", pl.concat([bars("AAA"), bars("BBB", n=3)]))
    inv = store.inventory()
    assert inv.select("interval", "symbol", "rows", "files").rows() == [
        ("1m", "AAA", 5, 1),
        ("1m", "BBB", 3, 1),
    ]
    assert inv["first"][0] == T0
    assert inv["last"][0] == T0 + dt.timedelta(minutes=4)


def test_inventory_reads_footers_or_scans_a_file_without_statistics(tmp_path: Path) -> None:
    store = Store(tmp_path)
    late = bars("AAA", start=dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC), n=2)
    store.write("1m", pl.concat([bars("AAA"), late, bars("BBB", n=3)]))
    footers = store.inventory()
    # The same BBB file rewritten without column statistics (as another writer might).
    path = store.partition_path("1m", "BBB", 2024)
    pq.write_table(pq.read_table(path), path, write_statistics=False)
    assert pq.read_metadata(path).row_group(0).column(0).statistics is None
    assert_frame_equal(store.inventory(), footers)
    aaa = footers.row(0, named=True)
    assert (aaa["first"], aaa["last"]) == (T0, late["ts"][-1])
    assert (aaa["rows"], aaa["files"]) == (7, 2)


def test_empty_store_has_no_intervals(tmp_path: Path) -> None:
    store = Store(tmp_path / "nothing")
    assert store.intervals() == []
    assert store.inventory().is_empty()
    assert store.read("1m").collect().is_empty()


def test_journal_lists_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Store, "recover", lambda self: None)
    Store(tmp_path).write("1m", bars())
    entries = json.loads((tmp_path / ".journal.json").read_text())
    assert all(not os.path.isabs(p) for pair in entries for p in pair)
    assert store_module._JOURNAL == ".journal.json"


def test_write_many_is_all_or_nothing_across_intervals(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1d", bars(start=dt.datetime(2024, 7, 1, tzinfo=dt.UTC), n=1))
    before = snapshot(tmp_path)
    daily_conflict = bars(start=dt.datetime(2024, 7, 1, tzinfo=dt.UTC), n=1, close=1.9)
    with pytest.raises(InputError, match="conflict"):
        store.write_many({"1m": bars(), "1d": daily_conflict})
    assert snapshot(tmp_path) == before
    reports = store.write_many({"1m": bars(), "1d": daily_conflict}, replace=True)
    assert [(r.interval, r.rows_added, r.rows_replaced) for r in reports] == [
        ("1m", 5, 0),
        ("1d", 0, 1),
    ]


def test_year_folder_left_by_an_unfinished_write_is_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    orphan = tmp_path / "bars/interval=1m/symbol=AAA/year=2025"
    orphan.mkdir()
    (orphan / ".part-0.parquet.dead.tmp").write_bytes(b"never committed")
    assert store.read("1m", ["AAA"]).collect().height == 5
    assert store.inventory()["files"].to_list() == [1]
