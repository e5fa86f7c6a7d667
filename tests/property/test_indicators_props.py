"""Properties of session indicators on random bars: no look-ahead, SMA, OBV steps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline import indicators, schema
from pipeline.config import Indicator

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
SESSION_BARS = 8  # a new session every 8 bars, so VWAP restarts inside the data
#: Every kind, with short periods so random series get past the warm-up.
SPECS = (
    Indicator("sma", "1m", 3),
    Indicator("ema", "1m", 3),
    Indicator("wma", "1m", 4),
    Indicator("rsi", "1m", 3),
    Indicator("atr", "1m", 3),
    Indicator("macd", "1m", params={"fast": 2, "slow": 4, "signal": 3}),
    Indicator("bbands", "1m", 3, {"k": 1.5}),
    Indicator("stddev", "1m", 4),
    Indicator("obv", "1m"),
    Indicator("vwap", "1m"),
)

_prices = st.floats(1.0, 500.0, allow_nan=False).map(lambda p: round(p, 2))
_bar = st.tuples(
    _prices, st.floats(0.0, 0.05), st.floats(0.0, 0.05), st.sampled_from([0.0, 1.0, 250.0, 1e6])
)


@st.composite
def bar_sets(draw: st.DrawFn) -> pl.DataFrame:
    """Catalog bars for 1-3 symbols, 1-40 one-minute bars each, with session breaks."""
    frames = []
    for symbol in draw(st.lists(st.sampled_from("ABC"), min_size=1, max_size=3, unique=True)):
        rows = draw(st.lists(_bar, min_size=1, max_size=40))
        close = [c for c, _, _, _ in rows]
        n = len(rows)
        frames.append(
            pl.DataFrame(
                {
                    "symbol": [symbol] * n,
                    "i": list(range(n)),
                    "close": close,
                    "high": [c * (1 + up) for c, up, _, _ in rows],
                    "low": [c * (1 - down) for c, _, down, _ in rows],
                    "volume": [v for _, _, _, v in rows],
                }
            )
        )
    return _catalog(pl.concat(frames))


def _catalog(raw: pl.DataFrame) -> pl.DataFrame:
    ts = pl.lit(T0) + pl.duration(minutes=pl.col("i"))
    return raw.with_columns(
        interval=pl.lit("1m"),
        session=(pl.lit(T0.date()) + pl.duration(days=pl.col("i") // SESSION_BARS)).cast(pl.Date),
        ts=ts,
        open=pl.col("close"),
        ts_close=ts + pl.duration(minutes=1),
        available_at=ts + pl.duration(minutes=1),
        n_src=pl.lit(1, pl.UInt32),
        complete=pl.lit(True),
    ).select(list(schema.CATALOG_BARS))


def _compute(bars: pl.DataFrame, specs: tuple[Indicator, ...] = SPECS) -> pl.DataFrame:
    return indicators.compute(bars.lazy(), specs).collect()


@st.composite
def cut_bar_sets(draw: st.DrawFn) -> tuple[pl.DataFrame, dt.datetime]:
    """Bars and a clock time that falls inside them (some bars visible, some not)."""
    bars = draw(bar_sets())
    last = bars["available_at"].max()
    assert isinstance(last, dt.datetime)
    minutes = int((last - T0).total_seconds() // 60)
    return bars, T0 + dt.timedelta(minutes=draw(st.integers(1, max(1, minutes - 1))))


@settings(max_examples=60, deadline=None)
@given(case=cut_bar_sets())
def test_values_before_a_cut_do_not_change_when_later_bars_are_removed(
    case: tuple[pl.DataFrame, dt.datetime],
) -> None:
    bars, clock = case
    full = _compute(bars).filter(pl.col("available_at") <= clock)
    truncated = _compute(bars.filter(pl.col("available_at") <= clock))
    assert_frame_equal(truncated, full, check_exact=True)


@settings(max_examples=40, deadline=None)
@given(bars=bar_sets(), period=st.integers(1, 6))
def test_sma_equals_the_rolling_mean(bars: pl.DataFrame, period: int) -> None:
    out = _compute(bars, (Indicator("sma", "1m", period),))
    for (symbol,), group in bars.sort("ts").group_by("symbol"):
        close = group["close"].to_numpy()
        expected = [close[i - period + 1 : i + 1].mean() for i in range(period - 1, len(close))]
        got = out.filter(pl.col("symbol") == symbol)["value"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(bars=bar_sets())
def test_obv_moves_by_plus_or_minus_the_volume_or_not_at_all(bars: pl.DataFrame) -> None:
    out = _compute(bars, (Indicator("obv", "1m"),))
    for (symbol,), group in bars.sort("ts").group_by("symbol"):
        obv = out.filter(pl.col("symbol") == symbol)["value"].to_numpy()
        close, volume = group["close"].to_numpy(), group["volume"].to_numpy()
        assert obv[0] == volume[0]
        step = np.diff(obv)
        sign = np.sign(np.diff(close))
        np.testing.assert_array_equal(step, sign * volume[1:])
