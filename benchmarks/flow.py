"""Time the session flow, phases 1-6, over a synthetic year: ``python benchmarks/flow.py``.

Builds a store of N symbols x 1 year of 1m bars (and their 1d bars) in a temporary
folder, runs a config that streams 1m and derives 5m, 15m and 1h with 5 sessions of
1m history, 20 of 1d, historical and session indicators, and prints seconds and
bars/s per phase plus peak memory. A subscriber that touches every step is attached
so the stream's cost includes a consumer. Record results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import polars as pl
from _synthetic import build_store

from pipeline.catalog import get_catalog
from pipeline.config import parse_config
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.stream import Step

PHASES = {
    "1": "1.2-1.3 clear, hours",
    "2.1": "2.1 load history",
    "2.4": "2.4 derive history",
    "2.2": "2.2 historical indicators",
    "2.3": "2.3 quality + gaps",
    "3": "3 session table + indicators",
    "4": "4 activate",
    "5": "5 stream",
}


def config(symbols: int, year: int, indicators: bool) -> dict[str, object]:
    return {
        "name": "bench",
        "start": f"{year}-01-01",
        "end": f"{year}-12-31",
        "symbols": [f"S{i:04d}" for i in range(symbols)],
        "streams": ["1m", "5m", "15m", "1h"],
        "history": [{"interval": "1m", "sessions": 5}, {"interval": "1d", "sessions": 20}],
        "historical_indicators": [
            {"name": "avg", "field": "volume", "period": "20d"},
            {"name": "atr", "period": "14d"},
            {"name": "prev", "field": "close"},
        ]
        if indicators
        else [],
        "indicators": [
            {"name": "sma", "interval": "5m", "period": 10},
            {"name": "ema", "interval": "1m", "period": 20},
            {"name": "rsi", "interval": "1m", "period": 14},
            {"name": "vwap", "interval": "1m"},
        ]
        if indicators
        else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--no-indicators", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        rows = build_store(
            Path(root), args.symbols, dt.date(args.year - 1, 11, 1), dt.date(args.year, 12, 31)
        )
        print(f"store: {rows:,} 1m bars written in {time.perf_counter() - start:.1f} s")
        settings = parse_config(config(args.symbols, args.year, not args.no_indicators))
        seen = {"bars": 0}

        def consumer(step: Step) -> None:
            seen["bars"] += step.bars.height

        start = time.perf_counter()
        coordinator = Coordinator(settings, Store(root), get_catalog())
        report = coordinator.run([consumer])
        wall = time.perf_counter() - start
        sessions = get_catalog().table("sessions")
    per_phase = sessions.group_by("phase", maintain_order=True).agg(
        pl.col("seconds").sum(), pl.col("bars").sum()
    )
    streamed = int(report.sessions["session_bars"].sum())
    print(f"{'phase':<30} {'seconds':>8} {'bars':>12} {'bars/s':>12}")
    for phase, secs, bars in per_phase.iter_rows():
        count = bars if bars else (streamed if phase in ("4", "5") else 0)
        rate = f"{count / secs:>12,.0f}" if count and secs else f"{'':>12}"
        print(f"{PHASES.get(phase, phase):<30} {secs:>8.2f} {count:>12,} {rate}")
    base = int(report.sessions["timestamps"].sum()) * args.symbols
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sessions: {report.sessions.height}, streamed rows: {streamed:,}")
    print(f"consumer saw {seen['bars']:,} rows")
    print(f"run: {wall:.1f} s wall, {base / wall:,.0f} base bars/s end to end")
    print(f"peak memory {peak:,.0f} MB")


if __name__ == "__main__":
    main()
