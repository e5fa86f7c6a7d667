"""Deterministic synthetic stores for the benchmarks: random-walk 1m bars on the XNYS calendar."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import ALLOCATOR, calendar
from pipeline.store import Store


def child_env() -> dict[str, str]:
    """Return the environment for a measured child process: the allocator setting that
    `pipeline run` gets (`pipeline.ALLOCATOR`). This process imported Polars first, so
    its environment holds Polars' own setting, which the CLI replaces.
    """
    return {**os.environ, "_RJEM_MALLOC_CONF": ALLOCATOR}


def minute_bars(symbols: int, sessions: pl.DataFrame, seed: int = 7) -> pl.DataFrame:
    """Return regular-hours 1m bars for `symbols` symbols over `sessions` (every slot filled)."""
    slots = calendar.slots(sessions, "1m").collect()
    rng = np.random.default_rng(seed)
    n = slots.height
    frames = []
    for i in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0007, n)))
        open_ = np.concatenate([[100.0], close[:-1]])
        frames.append(
            pl.DataFrame(
                {
                    "symbol": f"S{i:04d}",
                    "ts": slots["ts"],
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.0005,
                    "low": np.minimum(open_, close) * 0.9995,
                    "close": close,
                    "volume": rng.integers(100, 10_000, n).astype(np.float64),
                }
            )
        )
    return pl.concat(frames)


def daily_from_minutes(bars: pl.DataFrame) -> pl.DataFrame:
    """Aggregate 1m bars into 1d bars labelled by their (New York) session date."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    return (
        bars.sort("symbol", "ts")
        .group_by("symbol", day.alias("day"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .select(
            "symbol",
            pl.col("day").cast(pl.Datetime("us", "UTC")).alias("ts"),
            "open",
            "high",
            "low",
            "close",
            "volume",
        )
    )


def build_store(root: Path, symbols: int, first: dt.date, last: dt.date) -> int:
    """Write 1m and 1d bars for `symbols` symbols from `first` to `last`; return the 1m rows."""
    sessions = calendar.sessions("XNYS", first, last)
    minutes = minute_bars(symbols, sessions)
    store = Store(root)
    store.write_many({"1m": minutes, "1d": daily_from_minutes(minutes)})
    return minutes.height
