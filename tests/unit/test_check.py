"""`check_store`: which intervals and symbols it checks, and what it refuses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.check import check_store
from pipeline.errors import CalendarError, DataNotFoundError, StoreError
from pipeline.store import Store

OPEN = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)  # 09:30 New York, a session


def bars(symbol: str, start: dt.datetime = OPEN, n: int = 3, step: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": [start + dt.timedelta(minutes=step * i) for i in range(n)],
            "open": [1.0] * n,
            "high": [2.0] * n,
            "low": [0.5] * n,
            "close": [1.5] * n,
            "volume": [100.0] * n,
        }
    )


@pytest.fixture
def two_intervals(tmp_path: Path) -> Store:
    """SPY at 1m, AAPL at 15m only."""
    store = Store(tmp_path)
    store.write_many({"1m": bars("SPY"), "15m": bars("AAPL", step=15)})
    return store


def test_symbol_of_one_interval_checks_only_that_interval(two_intervals: Store) -> None:
    result = check_store(two_intervals, symbols=["AAPL"])
    assert result.summary.select("symbol", "interval").rows() == [("AAPL", "15m")]


def test_symbols_of_different_intervals_are_each_checked_where_stored(
    two_intervals: Store,
) -> None:
    result = check_store(two_intervals, symbols=["SPY", "AAPL"])
    assert sorted(result.summary.select("symbol", "interval").rows()) == [
        ("AAPL", "15m"),
        ("SPY", "1m"),
    ]


def test_symbol_of_another_interval_names_where_it_is(two_intervals: Store) -> None:
    with pytest.raises(DataNotFoundError, match=r"'AAPL' are stored at 1m: it is stored at 15m"):
        check_store(two_intervals, intervals=["1m"], symbols=["AAPL"])


def test_symbol_stored_nowhere_names_the_intervals_and_the_closest(two_intervals: Store) -> None:
    with pytest.raises(DataNotFoundError, match=r"'AAPX' are stored at 1m, 15m \(did you mean"):
        check_store(two_intervals, symbols=["AAPX"])


def test_missing_root_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        check_store(Store(tmp_path / "nothing"))


def test_root_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()
    with pytest.raises(StoreError, match="is a file"):
        check_store(Store(tmp_path / "afile"))


def test_bars_outside_the_calendar_name_their_symbol_and_the_way_out(tmp_path: Path) -> None:
    store = Store(tmp_path)
    late = dt.datetime(2200, 1, 2, 14, 30, tzinfo=dt.UTC)
    store.write("1m", pl.concat([bars("OK"), bars("ODD"), bars("ODD", start=late)]))
    with pytest.raises(CalendarError, match=r"1m bars of ODD \(2024-07-01 to 2200-01-02\).*--end"):
        check_store(store)
    inside = check_store(store, end=dt.date(2099, 12, 31))
    assert sorted(inside.summary["symbol"].to_list()) == ["ODD", "OK"]
