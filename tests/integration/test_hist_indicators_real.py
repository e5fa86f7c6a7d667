"""Historical indicators on eqker SPY (2018-01-02 .. 2019-02-15) equal hand and TA-Lib figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import talib

from pipeline import calendar, schema
from pipeline.config import HistoricalIndicator
from pipeline.hist_indicators import compute
from pipeline.importing import ImportOptions, read_bars

pytestmark = pytest.mark.real_data

SESSION = dt.date(2019, 2, 15)
NY = "America/New_York"


def as_history(bars: pl.DataFrame, interval: str) -> pl.DataFrame:
    """Return `schema.BARS` rows as `schema.CATALOG_BARS` rows.

    A daily bar's session is its date (it is stamped 00:00 UTC), a minute bar's the New
    York date; ``ts_close`` and ``available_at`` are ``ts`` plus the interval.
    """
    if interval == "1d":
        step, day = pl.duration(days=1), pl.col("ts").dt.date()
    else:
        step, day = pl.duration(minutes=1), pl.col("ts").dt.convert_time_zone(NY).dt.date()
    return bars.select(
        "symbol",
        interval=pl.lit(interval),
        session=day,
        ts="ts",
        open="open",
        high="high",
        low="low",
        close="close",
        volume="volume",
        ts_close=pl.col("ts") + step,
        available_at=pl.col("ts") + step,
        n_src=pl.lit(1, pl.UInt32),
        complete=pl.lit(True),
    ).cast(dict(schema.CATALOG_BARS))


@pytest.fixture(scope="module")
def spy(real_data: Path) -> dict[str, pl.DataFrame]:
    folder = real_data / "eqker-24sym-2019"
    options = ImportOptions(preset="alphavantage")
    daily = read_bars(folder / "SPY_daily.csv", options).bars
    minute = read_bars(folder / "SPY_1min.csv", options).bars
    return {"1d": as_history(daily, "1d"), "1m": as_history(minute, "1m")}


@pytest.fixture(scope="module")
def sessions() -> pl.DataFrame:
    return calendar.sessions("XNYS", dt.date(2019, 2, 11), SESSION)


def run(
    bars: pl.DataFrame, specs: list[HistoricalIndicator], sessions: pl.DataFrame
) -> pl.DataFrame:
    # The history passed includes the session's own bar: compute must drop it.
    opened = sessions.filter(pl.col("session") == SESSION)["open"][0]
    out = compute(bars.lazy(), specs, SESSION, opened, sessions=sessions)
    return out.collect(engine="in-memory")


def value(out: pl.DataFrame, name: str) -> float:
    rows = out.filter(pl.col("name") == name)
    assert rows.height == 1
    return float(rows["value"][0])


def test_daily_indicators_match_the_previous_bars(
    spy: dict[str, pl.DataFrame], sessions: pl.DataFrame
) -> None:
    daily = spy["1d"]
    assert (daily.height, daily["session"].min(), daily["session"].max()) == (
        283,
        dt.date(2018, 1, 2),
        SESSION,
    )
    specs = [
        HistoricalIndicator("avg", "close", "20d"),
        HistoricalIndicator("max", "high", "52w"),
        HistoricalIndicator("prev", "close"),
        HistoricalIndicator("atr", period="14d"),
    ]
    out = run(daily, specs, sessions)
    before = daily.filter(pl.col("session") < SESSION).sort("session")
    assert value(out, "avg_close_20d") == pytest.approx(before["close"].tail(20).mean(), rel=1e-12)
    assert value(out, "prev_close") == 274.38  # the 2019-02-14 close
    atr = talib.ATR(before["high"], before["low"], before["close"], timeperiod=14)
    assert value(out, "atr_14d") == pytest.approx(atr[-1], rel=1e-10)


def test_52_week_window_starts_on_the_same_weekday_a_year_before(
    spy: dict[str, pl.DataFrame], sessions: pl.DataFrame
) -> None:
    daily = spy["1d"]
    cutoff = SESSION - dt.timedelta(weeks=52)
    assert cutoff == dt.date(2018, 2, 16)
    window = daily.filter(pl.col("session").is_between(cutoff, SESSION, closed="left"))
    assert window["session"].min() == dt.date(2018, 2, 16)
    specs = [HistoricalIndicator("max", "high", "52w"), HistoricalIndicator("avg", "close", "52w")]
    out = run(daily, specs, sessions)
    assert value(out, "max_high_52w") == window["high"].max()
    # The mean sees every bar, so it pins the boundary: 2018-02-16 itself is in.
    assert value(out, "avg_close_52w") == pytest.approx(window["close"].mean(), rel=1e-12)
    strict = daily.filter((pl.col("session") > cutoff) & (pl.col("session") < SESSION))
    assert value(out, "avg_close_52w") != pytest.approx(strict["close"].mean(), rel=1e-9)


def test_minute_volume_profile_averages_the_four_previous_sessions(
    spy: dict[str, pl.DataFrame], sessions: pl.DataFrame
) -> None:
    minute = spy["1m"]
    spec = HistoricalIndicator("avg", "volume", "4d", granularity="minute")
    out = run(minute, [spec], sessions)
    opened = dt.datetime(2019, 2, 15, 14, 30, tzinfo=dt.UTC)
    assert out.height == 390
    assert (
        out["ts"].to_list()
        == pl.datetime_range(
            opened, opened + dt.timedelta(minutes=389), "1m", eager=True, time_zone="UTC"
        ).to_list()
    )
    first = minute.filter(
        (pl.col("ts").dt.time() == dt.time(14, 30)) & (pl.col("session") < SESSION)
    )
    assert first.height == 4
    assert out["value"][0] == pytest.approx(first["volume"].mean(), rel=1e-12)
