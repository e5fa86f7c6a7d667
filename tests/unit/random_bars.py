"""Random base bars for broker tests: three symbols, some steps without some of them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline import schema
from pipeline._broker_models import BarRows

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
SYMBOLS = ("ACME", "BOLT", "CODA")


def random_bars(steps: int, seed: int) -> tuple[BarRows, list[dt.datetime], list[int]]:
    """Return random bars (a symbol missing from ~20% of the steps), each step's time and end.

    Prices rise and fall (so drawdowns move); step ``i`` is at ``T0 + i + 1`` minutes
    and holds rows ``[ends[i - 1], ends[i])`` (from 0 for the first).
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[object, ...]] = []
    ends: list[int] = []
    prices = dict.fromkeys(SYMBOLS, 50.0)
    for i in range(steps):
        for symbol in SYMBOLS:
            if i and rng.random() < 0.2:
                continue
            before = prices[symbol]
            prices[symbol] = close = round(before * (1 + rng.normal(0, 0.01)), 2)
            ts = T0 + dt.timedelta(minutes=i)
            rows.append((symbol, ts, before, max(before, close), min(before, close), close, 1e6))
        ends.append(len(rows))
    frame = pl.DataFrame(
        rows, schema={"symbol": pl.String, "ts": schema.TS, **schema.OHLCV}, orient="row"
    )
    clocks = [T0 + dt.timedelta(minutes=i + 1) for i in range(steps)]
    return BarRows(frame), clocks, ends
