"""Daily historical indicators of many sessions at once equal `compute`, session by session."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar, schema
from pipeline.config import HistoricalIndicator
from pipeline.hist_indicators import compute, daily_values

SPECS = [
    HistoricalIndicator("avg", "close", "5d"),
    HistoricalIndicator("avg", "volume", "20d"),
    HistoricalIndicator("max", "high", "2w"),
    HistoricalIndicator("min", "low", "1y"),
    HistoricalIndicator("prev", "close", "1d"),
    HistoricalIndicator("atr", "close", "3d"),
]
LOOKBACK = 30  # sessions of daily history per session, as a history entry would load


def _bars(days: list[dt.date]) -> pl.DataFrame:
    """Random daily bars of three symbols; B misses some sessions, C starts late."""
    rng = np.random.default_rng(3)
    rows = []
    for symbol in ("A", "B", "C"):
        close = 50.0
        for i, day in enumerate(days):
            close = round(close * (1 + rng.normal(0, 0.02)), 2)
            if (symbol == "B" and i % 7 == 3) or (symbol == "C" and i < 40):
                continue
            spread = round(abs(rng.normal(0, 0.5)), 2)
            rows.append(
                {
                    "symbol": symbol,
                    "session": day,
                    "ts": dt.datetime.combine(day, dt.time(), dt.UTC),
                }
                | {"open": close, "high": close + spread, "low": close - spread, "close": close}
                | {"volume": float(rng.integers(1_000, 9_000))}
            )
    frame = pl.DataFrame(rows).with_columns(
        interval=pl.lit("1d"),
        ts_close=pl.col("ts") + dt.timedelta(days=1),
        available_at=pl.col("ts") + dt.timedelta(days=1),
        n_src=pl.lit(1, pl.UInt32),
        complete=pl.lit(True),
    )
    frame = frame.select(pl.col(k).cast(v) for k, v in schema.CATALOG_BARS.items())
    return frame.with_columns(pl.col("symbol").cast(schema.symbol_dtype(["A", "B", "C"])))


def test_a_block_of_sessions_equals_each_session_alone() -> None:
    sessions = calendar.sessions("XNYS", dt.date(2023, 11, 1), dt.date(2024, 4, 30))
    days = sessions["session"].to_list()
    bars = _bars(days)
    targets = []
    for i in range(LOOKBACK, len(days)):  # also sessions around 29 February 2024
        day, first = days[i], days[i - LOOKBACK]
        targets.append({"session": day, "first": first, "open": sessions["open"][i]})
    block = pl.DataFrame(targets).cast({"open": schema.TS})
    # In memory, as the coordinator collects: the streaming engine may split a group's
    # rows between threads, and a mean's last digit then changes from run to run.
    batch = daily_values(bars.lazy(), SPECS, block).collect(engine="in-memory")
    assert batch["ts"].n_unique() == block.height
    for row in block.iter_rows(named=True):
        history = bars.filter(pl.col("session").is_between(row["first"], row["session"], "left"))
        alone = compute(history.lazy(), SPECS, row["session"], row["open"])
        alone = alone.collect(engine="in-memory")
        midnight = dt.datetime.combine(row["session"], dt.time(), dt.UTC)
        mine = batch.filter(pl.col("ts") == midnight).sort("symbol", "name", "ts")
        assert_frame_equal(mine, alone, check_exact=True)
        assert mine.height >= 2 * len(SPECS)  # C has none until its bars begin


def test_minute_profiles_are_refused() -> None:
    spec = HistoricalIndicator("avg", "volume", "5d", granularity="minute")
    block = pl.DataFrame({"session": [dt.date(2024, 3, 1)], "first": [dt.date(2024, 2, 1)]})
    with pytest.raises(ValueError, match="minute profile"):
        daily_values(pl.LazyFrame(schema=schema.CATALOG_BARS), [spec], block)
