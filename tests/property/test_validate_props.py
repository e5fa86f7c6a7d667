from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline.importing import ImportOptions, read_bars
from pipeline.intervals import Interval
from pipeline.validate import invalid_rows

T0 = dt.datetime(2024, 3, 8, 14, 30, tzinfo=dt.UTC)
OPTIONS = ImportOptions(interval="1m", tz="UTC", stamp="open", skip_invalid=True)
PRICES = st.floats(0.0001, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def valid_bars(draw: st.DrawFn) -> pl.DataFrame:
    """Bars that satisfy every rule: unique (symbol, ts) on the minute grid, ordered OHLC."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(["AAA", "B.B", "C-1"]), st.integers(0, 5000)),
            min_size=1,
            max_size=30,
            unique=True,
        )
    )
    rows = []
    for symbol, minute in keys:
        low, a, b, high = sorted(draw(st.lists(PRICES, min_size=4, max_size=4)))
        open_, close = (a, b) if draw(st.booleans()) else (b, a)
        volume = float(draw(st.integers(0, 10**9)))
        rows.append((symbol, T0 + dt.timedelta(minutes=minute), open_, high, low, close, volume))
    schema = {
        "symbol": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64),
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort("symbol", "ts")


def round_trip(bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    text = bars.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        text.write_csv(path)
        parsed = read_bars(path, OPTIONS)
    return parsed.bars, parsed.rejected


@settings(max_examples=30, deadline=None)
@given(bars=valid_bars())
def test_valid_bars_round_trip_through_csv_unchanged(bars: pl.DataFrame) -> None:
    back, rejected = round_trip(bars)
    assert rejected.is_empty()
    assert_frame_equal(back, bars)


@settings(max_examples=30, deadline=None)
@given(bars=valid_bars(), data=st.data())
def test_a_bar_with_high_below_low_is_always_rejected(
    bars: pl.DataFrame, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, bars.height - 1))
    gap = data.draw(st.floats(1e-6, 1.0))
    broken = bars.with_columns(
        high=pl.when(pl.int_range(pl.len()) == at).then(pl.col("low") * (1 - gap)).otherwise("high")
    )
    found = invalid_rows(broken.with_row_index("_row").lazy(), Interval.parse("1m")).collect()
    assert found.filter(pl.col("rule") == "ohlc_order")["_row"].to_list() == [at]
    back, rejected = round_trip(broken)
    assert back.height == bars.height - 1
    assert "ohlc_order" in rejected["rule"].to_list()


@settings(max_examples=30, deadline=None)
@given(bars=valid_bars(), seed=st.integers(0, 2**32 - 1))
def test_row_order_of_the_file_does_not_change_the_output(bars: pl.DataFrame, seed: int) -> None:
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=seed)
    assert_frame_equal(round_trip(shuffled)[0], round_trip(bars)[0])
