"""The store's quality report on real vendor data shows what each PROVENANCE.md lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.check import CheckResult, check_store
from pipeline.importing import ImportOptions, import_files
from pipeline.store import Store

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def lean(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CheckResult:
    store = Store(tmp_path_factory.mktemp("lean"))
    minute = real_data / "lean-algoseek/equity/usa/minute"
    spx = real_data / "lean-algoseek/index/usa/minute/spx"
    import_files(store, [minute, spx], ImportOptions(preset="lean"))
    return check_store(store, intervals=["1m"])


@pytest.fixture(scope="module")
def ninjatrader(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CheckResult:
    store = Store(tmp_path_factory.mktemp("nt"))
    files = sorted((real_data / "pyalgotrade-spy-2011").glob("nt-spy-minute-*.csv"))
    import_files(store, files, ImportOptions(preset="ninjatrader", symbol="SPY", interval="1m"))
    return check_store(store)


@pytest.fixture(scope="module")
def eqker(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CheckResult:
    store = Store(tmp_path_factory.mktemp("eqker"))
    folder = real_data / "eqker-24sym-2019"
    files = [
        folder / f"{s}_{i}.csv" for s in ("SPY", "UGA", "VXXB") for i in ("1min", "15min", "daily")
    ]
    import_files(store, files, ImportOptions(preset="alphavantage"))
    return check_store(store)


def session(
    result: CheckResult, symbol: str, day: dt.date, interval: str = "1m"
) -> dict[str, object]:
    rows = result.sessions.filter(
        (pl.col("symbol") == symbol) & (pl.col("session") == day) & (pl.col("interval") == interval)
    )
    assert rows.height == 1, f"{symbol} {day} {interval}: {rows.height} rows"
    return rows.row(0, named=True)


def counts(result: CheckResult, symbol: str, day: dt.date) -> tuple[object, object]:
    row = session(result, symbol, day)
    return row["present"], row["expected"]


def test_lean_early_closes_expect_210_minutes(lean: CheckResult) -> None:
    goog = session(lean, "GOOG", dt.date(2015, 12, 24))
    assert (goog["expected"], goog["present"], goog["early_close"]) == (210, 210, True)
    spx = session(lean, "SPX", dt.date(2023, 7, 3))  # Chicago-stamped index, on the NYSE calendar
    assert (spx["expected"], spx["present"], spx["early_close"]) == (210, 210, True)


def test_lean_missing_minutes_match_provenance(lean: CheckResult) -> None:
    assert counts(lean, "GOOG", dt.date(2015, 12, 28)) == (382, 390)
    assert counts(lean, "TWX", dt.date(2014, 6, 6)) == (387, 390)
    assert counts(lean, "AIG", dt.date(2013, 10, 7)) == (389, 390)
    assert counts(lean, "IBM", dt.date(2013, 10, 4)) == (389, 390)
    assert counts(lean, "IBM", dt.date(2013, 10, 11)) == (389, 390)
    assert counts(lean, "SHY", dt.date(2008, 3, 7)) == (333, 390)
    assert counts(lean, "SHY", dt.date(2008, 3, 10)) == (313, 390)
    assert counts(lean, "TWX", dt.date(2014, 6, 23)) == (6, 390)  # a truncated day
    assert counts(lean, "GOOG", dt.date(2015, 12, 23)) == (390, 390)


def test_lean_gaps_cover_the_missing_minutes(lean: CheckResult) -> None:
    goog = lean.gaps.filter(
        (pl.col("symbol") == "GOOG") & (pl.col("session") == dt.date(2015, 12, 28))
    )
    assert goog["missing"].sum() == 8
    twx = lean.gaps.filter(
        (pl.col("symbol") == "TWX") & (pl.col("session") == dt.date(2014, 6, 23))
    )
    assert twx.rows(named=True)[-1]["end"] == dt.datetime(2014, 6, 23, 20, 0, tzinfo=dt.UTC)


def test_lean_post_market_bars_add_no_phantom_session(lean: CheckResult) -> None:
    # GOOG prints to 20:00 ET on 2015-12-28 (01:00 UTC on the 29th): the 29th is not in its range.
    goog = lean.sessions.filter(pl.col("symbol") == "GOOG")["session"].to_list()
    assert goog == [dt.date(2015, 12, 23), dt.date(2015, 12, 24), dt.date(2015, 12, 28)]


def test_ninjatrader_sessions_are_complete_and_february_is_a_hole(ninjatrader: CheckResult) -> None:
    minute = ninjatrader.sessions.filter(pl.col("interval") == "1m")
    january_march = minute.filter(pl.col("session").dt.month() != 2)
    assert january_march.height == 20 + 23
    assert january_march["complete"].all()
    assert (january_march["expected"] == 390).all()
    assert dt.date(2011, 1, 17) not in minute["session"].to_list()  # MLK day
    # The files hold January and March: the store's range runs through February, all missing.
    february = minute.filter(pl.col("session").dt.month() == 2)
    assert february.height == 19
    assert (february["present"] == 0).all()


def test_eqker_quality_by_interval(eqker: CheckResult) -> None:
    summary = {(r["symbol"], r["interval"]): r for r in eqker.summary.iter_rows(named=True)}
    spy_1m = summary[("SPY", "1m")]
    assert (spy_1m["sessions"], spy_1m["present"], spy_1m["quality"]) == (5, 1950, 100.0)
    spy_15m = summary[("SPY", "15m")]
    assert (spy_15m["sessions"], spy_15m["expected"], spy_15m["quality"]) == (30, 780, 100.0)
    # The daily file skips the 2018-12-05 closure and every holiday: the calendar expects none.
    assert summary[("SPY", "1d")]["quality"] == 100.0
    assert summary[("SPY", "1d")]["sessions"] == 283
    # Illiquid names: UGA holds 388 one-minute bars over 5 sessions.
    assert summary[("UGA", "1m")]["present"] == 388
    assert summary[("UGA", "1m")]["incomplete"] == 5
    # VXXB was listed 2018-01-18: its daily range starts then, so no gap before it.
    assert summary[("VXXB", "1d")]["sessions"] == 272
