"""Indicators on two intervals at once: merged in stream order, whatever the input order."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from pipeline import calendar, derive, indicators, schema
from pipeline.config import Indicator

NY = "America/New_York"
DAYS = calendar.sessions("XNYS", dt.date(2024, 7, 1), dt.date(2024, 7, 2))
#: Specs on two intervals whose names interleave (sma on both, macd parts between).
SPECS = (
    Indicator("sma", "1m", 3),
    Indicator("sma", "5m", 2),
    Indicator("macd", "5m", params={"fast": 2, "slow": 3, "signal": 2}),
    Indicator("vwap", "1m"),
    Indicator("rsi", "1m", 2),
    Indicator("ema", "1m", 4),
)


def _chunk(symbols: str = "AB", minutes: int = 40) -> pl.DataFrame:
    """Return 1m and 5m catalog bars of each symbol for the first minutes of two sessions."""
    rng = np.random.default_rng(7)
    frames = []
    for day in DAYS["open"]:
        ts = [day + dt.timedelta(minutes=i) for i in range(minutes)]
        for symbol in symbols:
            close = 100 + rng.normal(0, 1, minutes).cumsum()
            raw = pl.DataFrame(
                {"symbol": symbol, "ts": ts, "open": close, "high": close + 0.5},
                schema_overrides={"ts": schema.TS},
            )
            frames.append(raw.with_columns(low=close - 0.5, close=close, volume=rng.uniform(1, 9)))
    raw = pl.concat(frames).with_columns(pl.col("symbol").cast(pl.Enum(list(symbols))))
    base = derive.annotate(raw.lazy(), "1m", DAYS, NY)
    return pl.concat([base, derive.derive(base, DAYS, "5m", "1m")]).collect()


def test_values_of_two_intervals_are_merged_in_stream_order() -> None:
    bars = _chunk()
    out = indicators.compute(bars.lazy(), SPECS, carry=("session",)).collect()
    assert out.columns == [*schema.INDICATORS, "session"]
    assert out.schema["name"] == pl.String
    assert out.schema["interval"] == pl.String
    assert_frame_equal(out, out.sort("available_at", "symbol", "name", "interval", "ts"))
    for interval in ("1m", "5m"):
        alone = [s for s in SPECS if s.interval == interval]
        one = indicators.compute(bars.lazy(), alone, carry=("session",)).collect()
        assert_frame_equal(out.filter(pl.col("interval") == interval), one, check_exact=True)


def test_values_of_a_shuffled_input_equal_those_of_sorted_input() -> None:
    bars = _chunk()
    shuffled = indicators.compute(bars.sample(fraction=1.0, seed=11).lazy(), SPECS).collect()
    assert_frame_equal(shuffled, indicators.compute(bars.lazy(), SPECS).collect(), check_exact=True)


def test_derive_drops_bars_of_a_session_missing_from_the_calendar() -> None:
    base = _chunk("A").filter(pl.col("interval") == "1m").lazy()
    both = derive.derive(base, DAYS, "5m", "1m").collect()
    first = derive.derive(base, DAYS.head(1), "5m", "1m").collect()
    assert first.height * 2 == both.height
    assert_frame_equal(first, both.filter(pl.col("session") == DAYS["session"][0]))
    assert derive.derive(base, DAYS.clear(), "5m", "1m").collect().is_empty()
