"""What the store tests share: small bar frames and a snapshot of a store's files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)


def bars(
    symbol: str = "AAA", start: dt.datetime = T0, n: int = 5, close: float = 1.5
) -> pl.DataFrame:
    """`n` one-minute bars of `symbol` from `start` (valid OHLC, rising volume)."""
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": [start + dt.timedelta(minutes=i) for i in range(n)],
            "open": [1.0] * n,
            "high": [2.0] * n,
            "low": [0.5] * n,
            "close": [close] * n,
            "volume": [100.0 + i for i in range(n)],
        }
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file (with its content hash) and folder under `root`, but the lock."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }
