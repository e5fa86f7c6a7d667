"""Properties of derived bars over random one-minute series on real XNYS sessions.

Exact statement of the composition property: derive with ``emit_incomplete=True`` at the
intermediate stage (so every window with a base bar survives), then at the final stage
with or without it. The composed bars then equal the bars derived straight from 1m in
every column but ``n_src`` (which counts 5m or 15m bars instead of minutes, by design):
the same windows, OHLCV, ``ts_close`` and ``complete`` (a composed window is complete when
all its intermediate bars are present and complete, i.e. every minute is present).
Volumes are whole numbers, so sums are exact in any grouping.
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import calendar, schema
from pipeline.derive import annotate, derive

NY = "America/New_York"
# Consecutive XNYS sessions around an early close (2024-11-29 closes at 13:00 ET).
CAL = calendar.sessions("XNYS", dt.date(2024, 11, 25), dt.date(2024, 12, 3))
DAYS = CAL["session"].to_list()
SLOTS = calendar.slots(CAL, "1m").collect()
ENUM = schema.symbol_dtype(["AAA", "BBB"])
OHLCV = ["open", "high", "low", "close", "volume"]


@st.composite
def minute_bars(draw: st.DrawFn) -> pl.DataFrame:
    """Random 1m bars (Enum symbols) over 1-3 sessions, with gaps and extended-hours bars."""
    first = draw(st.integers(0, len(DAYS) - 1))
    count = draw(st.integers(1, 3))
    keep = draw(st.floats(0.3, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    symbols = draw(st.sampled_from([["AAA"], ["AAA", "BBB"]]))
    rng = np.random.default_rng(seed)
    days = DAYS[first : first + count]
    slots = SLOTS.filter(pl.col("session").is_in(days))["ts"]
    # 07:00 and 17:00 ET: pre- and post-market bars, which derive must ignore.
    extra = [dt.datetime.combine(d, dt.time(h), dt.UTC) for d in days for h in (12, 22)]
    stamps = pl.concat([slots, pl.Series(extra, dtype=schema.TS)])
    frames = [_random_bars(rng, stamps, symbol, keep) for symbol in symbols]
    return pl.concat(frames).with_columns(pl.col("symbol").cast(ENUM))


def _random_bars(
    rng: np.random.Generator, stamps: pl.Series, symbol: str, keep: float
) -> pl.DataFrame:
    kept = stamps.filter(pl.Series(rng.random(len(stamps)) < keep))
    n = len(kept)
    opens = 50 + rng.random(n) * 10
    closes = 50 + rng.random(n) * 10
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": kept,
            "open": opens,
            "high": np.maximum(opens, closes) + rng.random(n),
            "low": np.minimum(opens, closes) - rng.random(n),
            "close": closes,
            "volume": rng.integers(0, 10_000, n).astype(float),
        },
        schema=schema.BARS,
    )


def base_of(bars: pl.DataFrame) -> pl.LazyFrame:
    return annotate(bars.lazy(), "1m", CAL, NY, extended_hours=True)


def composed(base: pl.LazyFrame, steps: list[str], emit_final: bool) -> pl.DataFrame:
    """Derive through `steps` (base first), keeping incomplete windows at every inner stage."""
    frame = base
    for finer, coarser in itertools.pairwise(steps):
        last = coarser == steps[-1]
        frame = derive(frame, CAL, coarser, finer, emit_incomplete=emit_final or not last)
    return frame.collect()


@settings(max_examples=30, deadline=None)
@given(minute_bars())
def test_derived_bars_keep_the_ohlc_order(bars: pl.DataFrame) -> None:
    base = base_of(bars)
    for target in ("5m", "15m", "1h", "1d", "1w"):
        out = derive(base, CAL, target, "1m", emit_incomplete=True).collect()
        low_body = pl.min_horizontal("open", "close")
        high_body = pl.max_horizontal("open", "close")
        broken = out.filter(
            (pl.col("low") > low_body) | (high_body > pl.col("high")) | (pl.col("volume") < 0)
        )
        assert broken.is_empty(), target
        assert (out["ts_close"] > out["ts"]).all()


@settings(max_examples=30, deadline=None)
@given(minute_bars())
def test_volume_is_conserved_over_regular_hours(bars: pl.DataFrame) -> None:
    base = base_of(bars)
    regular = annotate(bars.lazy(), "1m", CAL, NY).collect()
    for target in ("5m", "15m", "1h", "1d"):
        out = derive(base, CAL, target, "1m", emit_incomplete=True).collect()
        assert out["volume"].sum() == regular["volume"].sum(), target
        assert out["n_src"].sum() == regular.height, target


@settings(max_examples=30, deadline=None)
@given(minute_bars(), st.booleans())
def test_15m_from_5m_equals_15m_from_1m(bars: pl.DataFrame, emit: bool) -> None:
    base = base_of(bars)
    direct = composed(base, ["1m", "15m"], emit)
    via_5m = composed(base, ["1m", "5m", "15m"], emit)
    assert via_5m.drop("n_src").equals(direct.drop("n_src"))
    complete = via_5m.filter("complete")
    assert (complete["n_src"] * 5 == direct.filter("complete")["n_src"]).all()


@settings(max_examples=30, deadline=None)
@given(minute_bars(), st.booleans())
def test_1h_from_15m_from_1m_equals_1h_from_1m(bars: pl.DataFrame, emit: bool) -> None:
    base = base_of(bars)
    direct = composed(base, ["1m", "1h"], emit)
    via_15m = composed(base, ["1m", "15m", "1h"], emit)
    assert via_15m.drop("n_src").equals(direct.drop("n_src"))
    assert direct.select(OHLCV).equals(via_15m.select(OHLCV))


@settings(max_examples=20, deadline=None)
@given(minute_bars())
def test_1w_through_1d_equals_1w_from_1m(bars: pl.DataFrame) -> None:
    base = base_of(bars)
    direct = composed(base, ["1m", "1w"], emit_final=True)
    via_1d = composed(base, ["1m", "1d", "1w"], emit_final=True)
    assert via_1d.drop("n_src").equals(direct.drop("n_src"))
