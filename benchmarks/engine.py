"""Time strategies through the engine over a synthetic year: ``python benchmarks/engine.py``.

Builds (or reuses, with ``--store DIR``) a store of N symbols x 1 year of 1m bars (and their
1d bars), then runs ``pipeline.engine.backtest`` with streams ["1m"], 1 session of 1m history,
no indicators and 1e7 cash, once per variant:

- ``flow``: no strategy (the base `Strategy`, whose hooks do nothing): the baseline;
- ``touch``: an event-style strategy that reads ``bars.close`` at every step and adds every
  row's close to a running sum (NumPy sum of the step's view), no orders;
- ``touch-loop``: the same, but a Python loop over every row (``for x in close.tolist()``);
- ``event-cross``: ``MovingAverageCross(10, 30, "1m")``;
- ``vector-cross``: ``VectorisedMovingAverageCross(10, 30, "1m")``.

Each variant runs in its own process (so peak memory is its own). Prints wall seconds,
base bars/s end to end (timestamps x symbols / wall), the strategy's own cost (wall minus the
baseline's) as bars/s, orders placed and peak memory. ``--profile VARIANT`` runs one variant
under cProfile instead and prints the top costs. Record results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _synthetic import build_store, child_env

from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.engine import backtest
from pipeline.store import Store
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import BarsView, Context, Strategy
from pipeline.vectorised import VectorisedMovingAverageCross

VARIANTS = ("flow", "touch", "touch-loop", "event-cross", "vector-cross")


class TouchEveryBar(Strategy):
    """Read every row's close at every step and keep a running sum (NumPy); no orders."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0.0
        self.rows = 0

    def on_bars(self, ctx: Context, bars: BarsView) -> None:  # noqa: ARG002
        close = bars.close
        self.total += float(close.sum())
        self.rows += close.size


class TouchEveryBarLoop(Strategy):
    """Read every row's close at every step in a Python loop; keep a running sum; no orders."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0.0
        self.rows = 0

    def on_bars(self, ctx: Context, bars: BarsView) -> None:  # noqa: ARG002
        total = self.total
        for x in bars.close.tolist():
            total += x
        self.total = total
        self.rows += len(bars)


def strategy(variant: str) -> Strategy:
    if variant == "flow":
        return Strategy()
    if variant == "touch":
        return TouchEveryBar()
    if variant == "touch-loop":
        return TouchEveryBarLoop()
    if variant == "event-cross":
        return MovingAverageCross(10, 30, "1m")
    if variant == "vector-cross":
        return VectorisedMovingAverageCross(10, 30, "1m")
    raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def window(year: int, fraction: float) -> tuple[dt.date, dt.date]:
    first, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    days = (end - first).days + 1
    return first, min(end, first + dt.timedelta(days=max(1, round(days * fraction)) - 1))


def config(symbols: int, first: dt.date, last: dt.date) -> dict[str, object]:
    return {
        "name": "bench-engine",
        "start": first.isoformat(),
        "end": last.isoformat(),
        "symbols": [f"S{i:04d}" for i in range(symbols)],
        "streams": ["1m"],
        "history": [{"interval": "1m", "sessions": 1}],
        "broker": {"cash": 1e7},
    }


def run_one(root: str, variant: str, symbols: int, first: dt.date, last: dt.date) -> dict[str, Any]:
    settings = parse_config(config(symbols, first, last))
    chosen = strategy(variant)
    catalog = Catalog()
    start = time.perf_counter()
    try:
        report, results = backtest(settings, Store(root), catalog, strategy=chosen)
    finally:
        catalog.close()
    wall = time.perf_counter() - start
    timestamps = int(report.sessions["timestamps"].sum())
    return {
        "variant": variant,
        "wall": wall,
        "sessions": report.sessions.height,
        "base": timestamps * symbols,
        "rows": int(report.sessions["session_bars"].sum()),
        "orders": results["orders"].height,
        "touched": getattr(chosen, "rows", None),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--year-fraction", type=float, default=1.0)
    parser.add_argument("--store", help="reuse (or build into) this store folder")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--profile", help="run this variant under cProfile; print top costs")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # child: one variant, JSON out
    args = parser.parse_args()
    first, last = window(args.year, args.year_fraction)

    if args.run:
        print(json.dumps(run_one(args.store, args.run, args.symbols, first, last)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.store) if args.store else Path(tmp)
        if not (root / "1m").exists() and not any(root.glob("**/*.parquet")):
            start = time.perf_counter()
            rows = build_store(root, args.symbols, dt.date(args.year - 1, 12, 1), last)
            print(f"store: {rows:,} 1m bars written in {time.perf_counter() - start:.1f} s")
        print(f"{args.symbols} symbols, {first} to {last}, streams 1m, 1 session 1m history")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            out = run_one(str(root), args.profile, args.symbols, first, last)
            profiler.disable()
            print(out)
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(25)
            stats.sort_stats("cumulative").print_stats(30)
            return
        runs = []
        for variant in args.variants.split(","):
            child = [sys.executable, __file__, "--run", variant, "--store", str(root)]
            child += ["--symbols", str(args.symbols), "--year", str(args.year)]
            child += ["--year-fraction", str(args.year_fraction)]
            env = child_env()
            done = subprocess.run(child, capture_output=True, text=True, check=True, env=env)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    baseline = next((r["wall"] for r in runs if r["variant"] == "flow"), None)
    print(
        f"{'variant':<13} {'wall s':>7} {'base bars':>11} {'bars/s e2e':>12} "
        f"{'own s':>6} {'own bars/s':>12} {'orders':>7} {'peak MB':>8}"
    )
    for r in runs:
        own = r["wall"] - baseline if baseline is not None and r["variant"] != "flow" else None
        own_rate = f"{r['base'] / own:>12,.0f}" if own and own > 0 else f"{'-':>12}"
        own_s = f"{own:>6.2f}" if own is not None else f"{'-':>6}"
        print(
            f"{r['variant']:<13} {r['wall']:>7.2f} {r['base']:>11,} "
            f"{r['base'] / r['wall']:>12,.0f} "
            f"{own_s} {own_rate} {r['orders']:>7,} {r['peak_mb']:>8,.0f}"
        )
    touched = {r["variant"]: r["touched"] for r in runs if r["touched"] is not None}
    if touched:
        print(f"rows touched: {touched}; sessions: {runs[0]['sessions']}")


if __name__ == "__main__":
    main()
