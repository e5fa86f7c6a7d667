"""Derived bars on real vendor data (see each folder's PROVENANCE.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline import calendar
from pipeline.derive import annotate, derive
from pipeline.importing import ImportOptions, import_files
from pipeline.store import Store

pytestmark = pytest.mark.real_data

MIC = "XNYS"
NEW_YORK = calendar.timezone(MIC)
OHLCV = ["open", "high", "low", "close", "volume"]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def catalog(store: Store, interval: str, sessions: pl.DataFrame) -> pl.LazyFrame:
    return annotate(store.read(interval), interval, sessions, NEW_YORK)


@pytest.fixture(scope="module")
def goog(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, pl.DataFrame]:
    """LEAN GOOG minutes of 2015-12-23, 12-24 (13:00 early close) and 12-28 (8 minutes missing)."""
    store = Store(tmp_path_factory.mktemp("goog") / "store")
    folder = real_data / "lean-algoseek/equity/usa/minute/goog"
    import_files(store, [folder], ImportOptions(preset="lean"))
    return store, calendar.sessions(MIC, dt.date(2015, 12, 21), dt.date(2015, 12, 31))


def test_goog_early_close_hourly_bars_end_at_13_00(goog: tuple[Store, pl.DataFrame]) -> None:
    store, sessions = goog
    hourly = derive(catalog(store, "1m", sessions), sessions, "1h", "1m").collect()
    day = hourly.filter(pl.col("session") == dt.date(2015, 12, 24))
    local = day.select(pl.col("ts", "ts_close").dt.convert_time_zone(NEW_YORK).dt.strftime("%H:%M"))
    assert local.rows() == [
        ("09:30", "10:30"),
        ("10:30", "11:30"),
        ("11:30", "12:30"),
        ("12:30", "13:00"),
    ]
    assert day["ts_close"][-1] == utc(2015, 12, 24, 18)
    assert day["n_src"].to_list() == [60, 60, 60, 30]


def test_goog_early_close_has_210_slots_all_present(goog: tuple[Store, pl.DataFrame]) -> None:
    store, sessions = goog
    early = sessions.filter(pl.col("session") == dt.date(2015, 12, 24))
    assert calendar.slots(early, "1m").collect().height == 210
    daily = derive(catalog(store, "1m", sessions), sessions, "1d", "1m", emit_incomplete=True)
    rows = daily.collect().select("session", "n_src", "complete", "ts_close").rows()
    assert rows == [
        (dt.date(2015, 12, 23), 390, True, utc(2015, 12, 23, 21)),
        (dt.date(2015, 12, 24), 210, True, utc(2015, 12, 24, 18)),
        (dt.date(2015, 12, 28), 382, False, utc(2015, 12, 28, 21)),
    ]


def test_goog_post_close_prints_stay_out_of_derived_bars(goog: tuple[Store, pl.DataFrame]) -> None:
    store, sessions = goog
    extended = annotate(store.read("1m"), "1m", sessions, NEW_YORK, extended_hours=True)
    regular = catalog(store, "1m", sessions)
    with_prints = derive(extended, sessions, "15m", "1m", emit_incomplete=True).collect()
    without = derive(regular, sessions, "15m", "1m", emit_incomplete=True).collect()
    assert extended.collect().height == 1091
    assert with_prints.equals(without)


def test_eqker_spy_15m_from_1m_equals_the_vendors_15m_bars(real_data: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    folder = real_data / "eqker-24sym-2019"
    files = [folder / "SPY_1min.csv", folder / "SPY_15min.csv"]
    import_files(store, files, ImportOptions(preset="alphavantage"))
    sessions = calendar.sessions(MIC, dt.date(2019, 1, 1), dt.date(2019, 2, 28))
    derived = derive(catalog(store, "1m", sessions), sessions, "15m", "1m").collect()
    common = derived["session"].unique().implode()
    vendor = catalog(store, "15m", sessions).filter(pl.col("session").is_in(common)).collect()
    keys = ["symbol", "interval", "session", "ts", *OHLCV, "ts_close", "available_at"]
    assert derived["session"].n_unique() == 5
    assert derived.height == vendor.height == 130
    assert derived.select(keys).equals(vendor.select(keys))
    assert derived["n_src"].unique().to_list() == [15]
