"""The store on bad input and bad disks: clear errors, nothing changed, nothing left behind."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from store_files import T0, bars, snapshot

from pipeline import schema
from pipeline.errors import ConflictError, DataNotFoundError, InputError, StoreError
from pipeline.store import Store


def damage(store: Store, symbol: str = "AAA") -> Path:
    """Cut a stored partition to 100 bytes, as a crash in another tool might."""
    path = store.partition_path("1m", symbol, 2024)
    path.write_bytes(path.read_bytes()[:100])
    return path


# ------------------------------------------------------------- damaged partitions
def test_damaged_partition_read_names_the_file_and_the_fix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", pl.concat([bars("AAA"), bars("BBB")]))
    path = damage(store)
    with pytest.raises(StoreError, match=rf"'{path}' \(1m bars of AAA in 2024\).*Delete it"):
        store.read("1m")
    assert store.read("1m", ["BBB"]).collect().height == 5  # the other files still read


def test_damaged_partition_inventory_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    path = damage(store)
    with pytest.raises(StoreError, match=rf"'{path}'.*damaged.*--replace"):
        store.inventory()


def test_damaged_partition_with_valid_footer_bytes_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    path = store.partition_path("1m", "AAA", 2024)
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\0" * (len(data) - 8) + data[-4:])  # magic kept, body gone
    with pytest.raises(StoreError, match="damaged"):
        store.inventory()
    with pytest.raises(StoreError, match="damaged"):
        store.write("1m", bars(n=6))


def test_damaged_partition_refuses_a_write_and_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    damage(store)
    before = snapshot(tmp_path)
    with pytest.raises(StoreError, match="cut off"):
        store.write("1m", bars(n=6))
    assert snapshot(tmp_path) == before


def test_replace_writes_over_a_damaged_partition_and_keeps_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    path = damage(store)
    broken = path.read_bytes()
    report = store.write("1m", bars(n=3, close=1.7), replace=True)
    assert (report.rows_added, report.partitions) == (3, 1)
    assert store.read("1m").collect()["close"].to_list() == [1.7] * 3
    assert path.with_name("part-0.parquet.damaged").read_bytes() == broken
    assert store.inventory()["rows"].to_list() == [3]


# ------------------------------------------------------------- the data root
def test_check_root_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist.*pipeline data import"):
        Store(tmp_path / "nothing").check_root()


def test_check_root_refuses_a_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()
    with pytest.raises(StoreError, match="is a file, not a folder"):
        Store(tmp_path / "afile").check_root()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "bars").touch()
    with pytest.raises(StoreError, match=r"bars' is a file"):
        Store(tmp_path / "root").check_root()


def test_check_root_accepts_an_empty_folder(tmp_path: Path) -> None:
    Store(tmp_path).check_root()


def test_write_where_bars_is_a_file_names_it_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bars").touch()
    with pytest.raises(StoreError, match=r"'.*/bars' is a file where a folder is needed"):
        Store(tmp_path).write("1m", bars())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "bars"]


# ------------------------------------------------------------- nothing left behind
def test_failed_write_removes_the_folders_it_made(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars("BBB"))
    before = snapshot(tmp_path)
    # AAA's partition is staged (its folders made) before BBB's conflict stops the write.
    with pytest.raises(ConflictError):
        store.write("1m", pl.concat([bars("AAA"), bars("BBB", close=1.7)]))
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "bars" / "interval=1m" / "symbol=AAA").exists()


def test_failed_write_into_a_new_root_leaves_no_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: pl.DataFrame, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(StoreError, match="disk is full"):
        Store(tmp_path / "new" / "store").write("1m", bars())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- row rules on write
@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"high": 0.4}, "high 0.4 < low 0.5"),
        ({"volume": -1.0}, "volume -1.0 < 0"),
        ({"close": float("nan")}, "close 'NaN' is not a finite number"),
        ({"ts": T0 + dt.timedelta(seconds=30)}, "off the 1m grid"),
    ],
)
def test_write_refuses_invalid_bars_before_touching_disk(
    tmp_path: Path, change: dict[str, object], rule: str
) -> None:
    bad = pl.concat(
        [bars(n=2), bars(n=1).with_columns(**{k: pl.lit(v) for k, v in change.items()})]
    )
    with pytest.raises(InputError, match=rf"1m bars to write row 2 \(AAA .*\): .*{rule}"):
        Store(tmp_path).write("1m", bad.cast(bars().schema))
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_two_versions_of_one_bar(tmp_path: Path) -> None:
    twice = pl.concat([bars(n=2), bars(n=1).with_columns(volume=pl.lit(7.0))])
    with pytest.raises(
        ConflictError, match=r"1 bar\(s\) of AAA \(1m\).*volume first 100.0 vs then 7.0"
    ):
        Store(tmp_path).write("1m", twice)
    assert not (tmp_path / "bars").exists()


def test_write_drops_identical_repeats(tmp_path: Path) -> None:
    report = Store(tmp_path).write("1m", pl.concat([bars(), bars(n=2)]))
    assert (report.rows_in, report.rows_added, report.rows_unchanged) == (7, 5, 2)
    assert Store(tmp_path).read("1m").collect().height == 5


def test_conflict_names_the_columns_that_differ_and_the_interval(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", bars())
    with pytest.raises(
        ConflictError, match=r"stored 1m bars.*volume stored 100.0 vs new 5.0\)"
    ) as err:
        store.write("1m", bars(n=1).with_columns(volume=pl.lit(5.0)))
    assert "close" not in str(err.value).split("(", 1)[1]
    assert (err.value.interval, err.value.symbol, err.value.stamps) == ("1m", "AAA", (T0,))


def test_a_symbol_differing_only_in_case_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)

    def bars(*symbols: str) -> pl.DataFrame:
        return pl.DataFrame(
            {"symbol": list(symbols), "ts": [t] * len(symbols)}
            | {c: [10.0] * len(symbols) for c in ("open", "high", "low", "close", "volume")},
            schema=schema.BARS,
        )

    store.write("1m", bars("SPY"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InputError, match="'spy' differs from 'SPY' only in case"):
        store.write("5m", bars("spy"))
    with pytest.raises(InputError, match="only in case"):
        store.write("1m", bars("QQQ", "qqq"))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    store.write("5m", bars("SPY"))  # the same spelling at another interval is fine
