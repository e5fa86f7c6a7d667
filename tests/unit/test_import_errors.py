"""The importer on files it cannot use, or should warn about: our words, the file, the line."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import CalendarError, ConflictError, InputError
from pipeline.importing import ImportOptions, calendar_fit, import_files, read_bars
from pipeline.intervals import Interval
from pipeline.store import Store

HEADER = "datetime,open,high,low,close,volume\n"
NEW_YORK = ImportOptions(interval="1m", tz="America/New_York", stamp="open")


def write(tmp_path: Path, text: str, name: str = "X.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def stamped(*stamps: dt.datetime) -> pl.DataFrame:
    return pl.DataFrame({"ts": list(stamps)}, schema={"ts": pl.Datetime("us", "UTC")})


class Warnings(logging.Handler):
    """Collect the names of the loggers that warn (the CLI may have stopped propagation)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.name)


@pytest.fixture
def warned() -> Iterator[list[str]]:
    logger = logging.getLogger("pipeline")
    handler, level = Warnings(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield handler.names
    logger.removeHandler(handler)
    logger.setLevel(level)


# ------------------------------------------------------------------ CSV errors
def test_ragged_line_is_named_without_polars_options(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "2019-02-11 09:31:00,10,11,9,10.5,100\n2019-02-11 09:32:00,1,1,1,1,1,77\n",
    )
    with pytest.raises(InputError, match="'.*X.csv'.*line 3 has 7 fields, the first line 6") as err:
        read_bars(path, NEW_YORK)
    assert "truncate_ragged_lines" not in str(err.value)


def test_unclosed_quote_is_named_without_polars_options(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + '2019-02-11 09:32:00,10,11,9,10.5,"1\n')
    with pytest.raises(InputError, match=r"line 2 opens a quote") as err:
        read_bars(path, NEW_YORK)
    assert "infer_schema_length" not in str(err.value)
    assert "--separator" not in str(err.value)


# ------------------------------------------------------------------ conflicts
def test_conflict_with_the_store_names_the_file_and_the_column(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    row = "2019-02-15 15:59:00,277.27,277.4,277.19,277.39,{}\n"
    import_files(store, [write(tmp_path, HEADER + row.format(2689895), "SPY.csv")], NEW_YORK)
    again = write(tmp_path, HEADER + row.format(2689896), "SPY2.csv")
    options = ImportOptions(interval="1m", symbol="SPY", tz="America/New_York", stamp="open")
    with pytest.raises(ConflictError, match=r"Bar file '.*SPY2.csv': 1 bar\(s\) of SPY ") as err:
        import_files(store, [again], options)
    assert "volume stored 2689895.0 vs new 2689896.0" in str(err.value)
    assert "close" not in str(err.value)


def test_failed_import_leaves_no_partition_folders(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    row = "2019-02-15 15:59:00,277.27,277.4,277.19,277.39,{}\n"
    import_files(store, [write(tmp_path, HEADER + row.format(1), "SPY.csv")], NEW_YORK)
    before = sorted(store.root.rglob("*"))
    (tmp_path / "v2").mkdir()
    new = write(tmp_path, HEADER + row.format(1), "AAA.csv")  # staged before SPY clashes
    clash = write(tmp_path, HEADER + row.format(2), "v2/SPY.csv")
    with pytest.raises(ConflictError):
        import_files(store, [new, clash], NEW_YORK)
    assert sorted(store.root.rglob("*")) == before


# ------------------------------------------------------------------ calendar
def test_calendar_fit_counts_closed_days_and_off_hours() -> None:
    bars = stamped(
        utc(2024, 7, 1, 13, 30),  # 09:30 New York: in hours
        utc(2024, 7, 1, 19, 59),  # 15:59: in hours
        utc(2024, 7, 1, 20, 0),  # 16:00: after the close
        utc(2024, 7, 2, 0, 30),  # 20:30 New York on 1 July: after hours of a session day
        utc(2024, 7, 4, 14, 0),  # Independence Day
        utc(2024, 7, 6, 14, 0),  # a Saturday
    )
    fit = calendar_fit(bars, Interval.parse("1m"), "XNYS")
    assert (fit.bars, fit.outside_range, fit.closed_days, fit.off_hours) == (6, 0, 2, 2)


def test_calendar_fit_of_daily_bars_counts_days_without_a_session() -> None:
    bars = stamped(utc(2024, 7, 3), utc(2024, 7, 4), utc(2024, 7, 6))
    fit = calendar_fit(bars, Interval.parse("1d"), "XNYS")
    assert (fit.closed_days, fit.off_hours) == (2, 0)


def test_calendar_fit_counts_bars_outside_the_calendar() -> None:
    bars = stamped(utc(2024, 7, 1, 13, 30), utc(2200, 1, 2, 14, 30))
    fit = calendar_fit(bars, Interval.parse("1m"), "XNYS")
    assert (fit.outside_range, fit.closed_days, fit.off_hours) == (1, 0, 0)


def test_import_in_the_wrong_zone_warns_and_still_imports(
    tmp_path: Path, warned: list[str]
) -> None:
    path = write(tmp_path, HEADER + "2019-02-11 09:31:00,10,11,9,10.5,100\n")
    store = Store(tmp_path / "store")
    report = import_files(store, [path], ImportOptions(interval="1m", tz="UTC", stamp="open"))
    assert report.rows_written == 1
    assert warned == ["pipeline.importing"]


def test_import_in_regular_hours_warns_nothing(tmp_path: Path, warned: list[str]) -> None:
    path = write(tmp_path, HEADER + "2019-02-11 09:31:00,10,11,9,10.5,100\n")
    import_files(Store(tmp_path / "store"), [path], NEW_YORK)
    assert warned == []


def test_import_outside_the_calendar_warns(tmp_path: Path, warned: list[str]) -> None:
    path = write(tmp_path, HEADER + "2200-01-02 09:31:00,10,11,9,10.5,100\n")
    import_files(Store(tmp_path / "store"), [path], NEW_YORK)
    assert warned == ["pipeline.importing"]


def test_import_without_a_calendar_compares_nothing(tmp_path: Path, warned: list[str]) -> None:
    path = write(tmp_path, HEADER + "2019-02-09 03:00:00,10,11,9,10.5,100\n")  # a Saturday
    options = ImportOptions(interval="1m", tz="UTC", stamp="open", calendar=None)
    import_files(Store(tmp_path / "store"), [path], options)
    assert warned == []


def test_tz_with_stamps_that_carry_an_offset_warns_it_was_not_used(
    tmp_path: Path, warned: list[str]
) -> None:
    path = write(tmp_path, HEADER + "2019-02-11 15:31:00+01:00,10,11,9,10.5,100\n")
    parsed = read_bars(path, NEW_YORK)
    assert parsed.bars["ts"].to_list() == [utc(2019, 2, 11, 14, 31)]
    assert warned == ["pipeline._import_stamps"]


def test_stamps_with_an_offset_and_no_tz_warn_nothing(tmp_path: Path, warned: list[str]) -> None:
    path = write(tmp_path, HEADER + "2019-02-11 15:31:00+01:00,10,11,9,10.5,100\n")
    read_bars(path, ImportOptions(interval="1m", stamp="open"))
    assert warned == []


def test_unknown_calendar_fails_before_any_file_is_read(tmp_path: Path) -> None:
    options = ImportOptions(interval="1m", tz="UTC", stamp="open", calendar="XNYZ")
    with pytest.raises(CalendarError, match="Unknown exchange calendar 'XNYZ'"):
        import_files(Store(tmp_path / "store"), [tmp_path / "never-read.csv"], options)
    assert not (tmp_path / "store").exists()
