"""Quality and gaps give the same String-symbol frames for Enum and String input symbols.

Regression tests for the speed-up of issue 3: the stage keeps an Enum ``symbol`` while it
counts and only casts its small result; runs of missing slots are found from slot
positions, so duplicate bars and lunch breaks must not change them.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from pipeline import calendar, quality, schema

DAYS = (dt.date(2024, 7, 1), dt.date(2024, 7, 5))  # 07-03 closes early, 07-04 is a holiday


def _bars(symbol_dtype: pl.DataType) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Bars of three symbols with holes, a duplicate bar, and an off-grid bar; and the slots."""
    slots = calendar.slots(calendar.sessions("XNYS", *DAYS), "1m").collect()
    n = slots.height
    position = pl.int_range(n, eager=True)
    frames = [
        slots.filter(position % 7 != 3).with_columns(symbol=pl.lit("ZED")),
        slots.filter((position < 100) | (position > 140)).with_columns(symbol=pl.lit("ABC")),
        slots.with_columns(symbol=pl.lit("MID")),
        slots.head(5).with_columns(symbol=pl.lit("ABC")),  # duplicates
    ]
    bars = pl.concat(frames).select("symbol", "ts")
    off_grid = pl.DataFrame(
        {"symbol": ["MID"], "ts": [dt.datetime(2024, 7, 2, 3, tzinfo=dt.UTC)]},
        schema={"symbol": pl.String(), "ts": schema.TS},
    )
    bars = pl.concat([bars, off_grid]).with_columns(pl.col("symbol").cast(symbol_dtype))
    return bars.lazy(), slots.lazy()


def test_enum_and_string_symbols_give_the_same_quality_and_gaps() -> None:
    enum = pl.Enum(["ZED", "MID", "ABC"])  # not in lexical order
    (as_enum, slots), (as_string, _) = _bars(enum), _bars(pl.String())
    for step in (quality.quality, quality.gaps):
        got = step(as_enum, slots, "1m").collect()
        want = step(as_string, slots, "1m").collect()
        assert got["symbol"].dtype == pl.String
        assert_frame_equal(got, want)


def test_gaps_count_each_run_once_despite_duplicate_bars() -> None:
    bars, slots = _bars(pl.String())
    holes = quality.gaps(bars, slots, "1m").collect()
    abc = holes.filter(pl.col("symbol") == "ABC")
    assert abc["missing"].to_list() == [41]  # slots 100..140
    assert holes.filter(pl.col("symbol") == "MID").is_empty()
    zed = holes.filter(pl.col("symbol") == "ZED")
    assert zed["missing"].unique().to_list() == [1]
    assert zed.height == slots.collect().height // 7 + (slots.collect().height % 7 > 3)
    rows = quality.quality(bars, slots, "1m").collect()
    assert rows.filter(pl.col("symbol") == "MID")["complete"].all()
