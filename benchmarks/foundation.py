"""Time the foundation: calendar slots, store writes and reads, the quality check.

Run by hand: ``python benchmarks/foundation.py [--symbols 100] [--year 2024]``.
It generates a synthetic store in a temporary folder (random-walk 1m bars on the
XNYS calendar), times each step after a warm-up, and prints one table. Record the
output in ``benchmarks/RESULTS.md`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _synthetic import minute_bars

from pipeline import calendar
from pipeline.check import check_store
from pipeline.store import Store


def timed(label: str, rows: int, func: Callable[[], object]) -> tuple[str, int, float]:
    start = time.perf_counter()
    func()
    return label, rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--year", type=int, default=2024)
    args = parser.parse_args()
    first, last = dt.date(args.year, 1, 1), dt.date(args.year, 12, 31)
    sessions = calendar.sessions("XNYS", first, last)  # warm-up: imports exchange_calendars
    rows: list[tuple[str, int, float]] = []
    slots = calendar.slots(sessions, "1m").collect()
    rows.append(
        timed(
            "calendar: sessions, 1 year",
            sessions.height,
            lambda: calendar.sessions("XNYS", first, last),
        )
    )
    rows.append(
        timed(
            "calendar: 1m slots, 1 year",
            slots.height,
            lambda: calendar.slots(sessions, "1m").collect(),
        )
    )
    bars = minute_bars(args.symbols, sessions)
    with tempfile.TemporaryDirectory() as root:
        store = Store(Path(root))
        rows.append(
            timed(
                f"store: write {args.symbols} symbols x 1 year",
                bars.height,
                lambda: store.write("1m", bars),
            )
        )
        rows.append(
            timed(
                "store: rewrite (all identical, no-op)",
                bars.height,
                lambda: store.write("1m", bars),
            )
        )
        rows.append(timed("store: read all", bars.height, lambda: store.read("1m").collect()))
        week = dt.date(args.year, 6, 3), dt.date(args.year, 6, 7)
        small = store.read("1m", ["S0000", "S0001"], *week).collect().height
        rows.append(
            timed(
                "store: read 2 symbols x 5 sessions",
                small,
                lambda: store.read("1m", ["S0000", "S0001"], *week).collect(),
            )
        )
        rows.append(timed("check: quality + gaps, all", bars.height, lambda: check_store(store)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'rows':>10}  {'seconds':>8}  {'rows/s':>12}")
    for label, n, secs in rows:
        print(f"{label:<{width}}  {n:>10,}  {secs:>8.3f}  {n / secs:>12,.0f}")
    print(f"peak memory: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
