"""Acceptance facts of the importer on real vendor files (see each folder's PROVENANCE.md)."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import polars as pl
import pytest

from pipeline.importing import ImportOptions, import_files, read_bars
from pipeline.store import Store

pytestmark = pytest.mark.real_data

LEAN = ImportOptions(preset="lean")
ALPHAVANTAGE = ImportOptions(preset="alphavantage")
NINJATRADER = ImportOptions(preset="ninjatrader", symbol="SPY", interval="1m")
NEW_YORK = "America/New_York"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def in_hours(bars: pl.DataFrame, start: dt.time, end: dt.time, tz: str = NEW_YORK) -> pl.DataFrame:
    """Bars whose open, in `tz`, lies in [start, end), with that local time as ``local``."""
    local = bars.with_columns(local=pl.col("ts").dt.convert_time_zone(tz))
    clock = pl.col("local").dt.time()
    return local.filter((clock >= start) & (clock < end))


def regular(bars: pl.DataFrame) -> pl.DataFrame:
    return in_hours(bars, dt.time(9, 30), dt.time(16, 0))


def raw_first_row_at(zip_path: Path, ms: int) -> list[str]:
    """The raw LEAN line stamped `ms` milliseconds after midnight."""
    with zipfile.ZipFile(zip_path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    return next(line.split(",") for line in text.splitlines() if line.startswith(f"{ms},"))


def per_session(bars: pl.DataFrame) -> pl.DataFrame:
    return (
        bars.group_by(pl.col("local").dt.date().alias("session"))
        .agg(pl.len(), first=pl.col("ts").min())
        .sort("session")
    )


# ------------------------------------------------------------------ LEAN (AlgoSeek)
def test_lean_goog_early_close_day(real_data: Path) -> None:
    path = real_data / "lean-algoseek/equity/usa/minute/goog/20151224_trade.zip"
    bars = read_bars(path, LEAN).bars
    early = in_hours(bars, dt.time(9, 30), dt.time(13, 0))
    assert early.height == 210
    assert early["local"][0].time() == dt.time(9, 30)
    assert early["local"][-1].time() == dt.time(12, 59)
    # prices are dollars: the first regular bar's open is the raw deci-cents / 10,000
    raw = raw_first_row_at(path, 34_200_000)  # 09:30:00.000
    assert early["open"][0] == int(raw[1]) / 10_000 == 749.55
    # post-close prints up to 16:11 ET stay in the import (RTH filtering is the session flow's)
    assert bars["ts"].dt.convert_time_zone(NEW_YORK).max().time() == dt.time(16, 11)
    assert bars.height == 227


def test_lean_goog_day_with_missing_minutes(real_data: Path) -> None:
    bars = read_bars(
        real_data / "lean-algoseek/equity/usa/minute/goog/20151228_trade.zip", LEAN
    ).bars
    assert regular(bars).height == 382


def test_lean_spx_index_prices_are_plain_and_chicago_stamped(real_data: Path) -> None:
    parsed = read_bars(real_data / "lean-algoseek/index/usa/minute/spx/20230703_trade.zip", LEAN)
    first = parsed.bars.row(0, named=True)
    assert (parsed.bars["symbol"][0], first["ts"], first["open"]) == (
        "SPX",
        utc(2023, 7, 3, 13, 30),
        4447.33,
    )
    assert parsed.bars.height == 210
    assert in_hours(parsed.bars, dt.time(8, 30), dt.time(12, 0), "America/Chicago").height == 210


def test_lean_second_bars_agree_with_minute_bars_over_regular_hours(real_data: Path) -> None:
    minute = regular(
        read_bars(real_data / "lean-algoseek/equity/usa/minute/spy/20131007_trade.zip", LEAN).bars
    )
    second = regular(
        read_bars(real_data / "lean-algoseek/equity/usa/second/spy/20131007_trade.zip", LEAN).bars
    )
    day = [
        pl.col("volume").sum(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("open").first(),
        pl.col("close").last(),
    ]
    assert minute.height == 390
    assert minute.select(day).row(0) == second.select(day).row(0)
    assert minute.select(day).row(0) == (81_489_219.0, 168.45, 167.25, 167.43, 167.42)


def test_lean_daily_spy_covers_1998_to_2021(real_data: Path) -> None:
    parsed = read_bars(real_data / "lean-algoseek/equity/usa/daily/spy.zip", LEAN)
    ts = parsed.bars["ts"]
    assert str(parsed.interval) == "1d"
    assert (parsed.bars.height, ts.min(), ts.max()) == (5_849, utc(1998, 1, 2), utc(2021, 3, 31))
    assert (ts.dt.time() == dt.time(0, 0)).all()


def test_lean_aapl_split_is_visible_in_raw_prices(real_data: Path) -> None:
    folder = real_data / "lean-algoseek/equity/usa/minute/aapl"
    before = regular(read_bars(folder / "20140606_trade.zip", LEAN).bars)
    after = regular(read_bars(folder / "20140609_trade.zip", LEAN).bars)
    assert before["close"][-1] == 645.57
    assert after["open"][0] == 92.69


def test_lean_folder_import_skips_quotes_and_stores_every_day(
    real_data: Path, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    report = import_files(store, [real_data / "lean-algoseek/equity/usa/minute/goog"], LEAN)
    assert report.files == 3
    assert report.rows_written == report.rows_read == 432 + 227 + 432
    assert dict(report.symbols) == {"1m": ("GOOG",)}
    stored = store.read("1m", ["GOOG"]).collect()
    assert stored.height == 1091
    sessions = stored["ts"].dt.convert_time_zone(NEW_YORK).dt.date().unique().sort().to_list()
    assert sessions == [dt.date(2015, 12, 23), dt.date(2015, 12, 24), dt.date(2015, 12, 28)]


# ------------------------------------------------------------------ eqker (Alpha Vantage shape)
def test_eqker_spy_minute_bars(real_data: Path) -> None:
    parsed = read_bars(real_data / "eqker-24sym-2019/SPY_1min.csv", ALPHAVANTAGE)
    bars = parsed.bars.with_columns(local=pl.col("ts").dt.convert_time_zone(NEW_YORK))
    assert (str(parsed.interval), parsed.bars["symbol"][0]) == ("1m", "SPY")
    assert parsed.bars.height == 1_950
    assert per_session(bars)["len"].to_list() == [390] * 5
    assert parsed.bars["ts"][0] == utc(2019, 2, 11, 14, 30)  # 09:31 close stamp -> 09:30 open


def test_eqker_spy_15min_and_daily(real_data: Path) -> None:
    fifteen = read_bars(real_data / "eqker-24sym-2019/SPY_15min.csv", ALPHAVANTAGE)
    daily = read_bars(real_data / "eqker-24sym-2019/SPY_daily.csv", ALPHAVANTAGE)
    assert (str(fifteen.interval), fifteen.bars.height) == ("15m", 780)
    assert fifteen.bars["ts"][0] == utc(2019, 1, 4, 14, 30)  # 09:45 close stamp
    assert (str(daily.interval), daily.bars.height) == ("1d", 283)


def test_every_eqker_file_imports(real_data: Path, tmp_path: Path) -> None:
    folder = real_data / "eqker-24sym-2019"
    report = import_files(Store(tmp_path / "store"), [folder], ALPHAVANTAGE)
    assert report.files == 72
    assert report.rows_skipped == 0
    assert report.rows_written == report.rows_read
    assert sorted(report.symbols) == ["15m", "1d", "1m"]
    assert all(len(symbols) == 24 for symbols in report.symbols.values())


# ------------------------------------------------------ PyAlgoTrade (NinjaTrader, Yahoo)
def test_ninjatrader_january_file(real_data: Path) -> None:
    bars = read_bars(real_data / "pyalgotrade-spy-2011/nt-spy-minute-2011.csv", NINJATRADER).bars
    assert bars.height == 14_180
    sessions = per_session(regular(bars))
    assert sessions.height == 20
    assert sessions["len"].to_list() == [390] * 20


def test_ninjatrader_march_file_crosses_daylight_saving(real_data: Path) -> None:
    bars = read_bars(real_data / "pyalgotrade-spy-2011/nt-spy-minute-2011-03.csv", NINJATRADER).bars
    sessions = per_session(regular(bars))
    first = dict(zip(sessions["session"], sessions["first"], strict=True))
    assert first[dt.date(2011, 3, 11)] == utc(2011, 3, 11, 14, 30)
    assert first[dt.date(2011, 3, 14)] == utc(2011, 3, 14, 13, 30)
    assert sessions["len"].to_list() == [390] * 23


def test_yahoo_daily_file_needs_only_the_interval(real_data: Path) -> None:
    parsed = read_bars(
        real_data / "pyalgotrade-spy-2011/spy-2011-yahoofinance.csv",
        ImportOptions(interval="1d", symbol="SPY"),
    )
    bars = parsed.bars
    assert bars.height == 252
    assert (bars["ts"].min(), bars["ts"].max()) == (utc(2011, 1, 3), utc(2011, 12, 30))
    assert bars.row(0) == ("SPY", utc(2011, 1, 3), 126.71, 127.6, 125.7, 127.05, 138_725_200.0)
