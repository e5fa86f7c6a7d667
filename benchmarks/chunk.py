"""Time one BarCache chunk stage by stage: ``python benchmarks/chunk.py``.

Builds a store of N symbols x ~4 months of 1m bars in a temporary folder, then
times, on one chunk of sessions (the loader's lookback + `CHUNK_SESSIONS`), each
stage of `BarCache._load` separately (each collected on its own), each session
indicator alone, and the whole load as `BarCache` runs it: the first chunk of a run,
and the next one, which carries its lookback sessions over from the first; then two
floors: the chunk's Parquet read alone and one plain 1m -> 5m ``group_by_dynamic``
from memory.
Prints seconds and base bars/s per stage (best of `--repeat`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from _synthetic import build_store
from flow import config

from pipeline import calendar, history, indicators, schema, session
from pipeline.config import Indicator, parse_config
from pipeline.intervals import Interval
from pipeline.loader import BARS, CHUNK_SESSIONS, BarCache, LoadSpec
from pipeline.store import Store

DERIVED = (Interval.parse("5m"), Interval.parse("15m"), Interval.parse("1h"))
BASE = Interval.parse("1m")


def best(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    """Return the fastest of `repeat` runs and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    first, last = dt.date(2024, 1, 1), dt.date(2024, 4, 30)
    with tempfile.TemporaryDirectory() as root:
        build_store(Path(root), args.symbols, first, last)
        store = Store(root)
        days = calendar.sessions("XNYS", first, last)
        names = tuple(f"S{i:04d}" for i in range(args.symbols))
        enum = schema.symbol_dtype(names)
        specs = parse_config(config(args.symbols, 2024, indicators=True)).indicators
        spec = LoadSpec(BASE, BASE, names, 5)

        def cache() -> BarCache:
            return BarCache(
                store,
                spec,
                days,
                "XNYS",
                extended_hours=False,
                emit_incomplete=False,
                symbol_type=enum,
                derive_to=DERIVED,
                assess=True,
                session_specs=specs,
                prefetch=False,  # no load in the background while the next one is timed
            )

        chunk = days.slice(0, spec.lookback + CHUNK_SESSIONS + 1)
        c = cache()
        rows: list[tuple[str, float]] = []
        secs, bars = best(args.repeat, lambda: c._read(chunk))
        assert isinstance(bars, pl.DataFrame)
        n = bars.height
        rows.append(("read + annotate + sort", secs))
        lazy = bars.lazy()

        def derive() -> list[pl.DataFrame]:
            plans = [
                history.derive_intervals(lazy, chunk, BASE, [t], emit_incomplete=False)
                for t in DERIVED
            ]
            return pl.collect_all(plans, engine="in-memory")

        secs, frames = best(args.repeat, derive)
        assert isinstance(frames, list)
        derived = pl.concat(frames)
        rows.append(("derive 5m/15m/1h", secs))
        q, g = history.assess(lazy, chunk, BASE, ())
        alone = [
            ("  quality alone", best(args.repeat, lambda: q.collect(engine="in-memory"))[0]),
            ("  gaps alone", best(args.repeat, lambda: g.collect(engine="in-memory"))[0]),
        ]
        secs = best(args.repeat, lambda: pl.collect_all([q, g], engine="in-memory"))[0]
        rows.append(("quality + gaps", secs))
        both = pl.concat([bars, derived]).lazy()
        order = session.order(both, [BASE, *DERIVED])
        values = indicators.compute(both, specs, carry=("session",))
        alone += [
            ("  order alone", best(args.repeat, lambda: order.collect(engine="in-memory"))[0]),
            (
                "  indicators alone",
                best(args.repeat, lambda: values.collect(engine="in-memory"))[0],
            ),
        ]
        alone += _each_indicator(both, specs, args.repeat)
        secs = best(args.repeat, lambda: pl.collect_all([order, values], engine="in-memory"))[0]
        rows.append(("order + indicators", secs))
        floors = _floors(store, chunk, bars, symbol_type=enum, repeat=args.repeat)

        def load() -> None:
            cache().window(chunk["session"][-1], 0, include_day=True, part=BARS)

        whole = best(args.repeat, load)[0]
        carried = _next_chunk(cache, days["session"].to_list(), spec.lookback, args.repeat)
    print(f"chunk: {chunk.height} sessions, {n:,} 1m bars, {args.symbols} symbols")
    total = sum(s for _, s in rows)
    summed = [("sum of stages", total), ("BarCache._load (whole)", whole)]
    _table(n, [*rows, *alone, *summed, ("floors (what no stage can beat):", 0.0), *floors])
    secs, sessions, new = carried
    print(
        f"the next chunk ({sessions} new sessions, {new:,} new 1m bars, the lookback carried): "
        f"{secs:.3f} s, {new / secs:,.0f} new bars/s"
    )


def _next_chunk(
    cache: Callable[[], BarCache], days: list[dt.date], lookback: int, repeat: int
) -> tuple[float, int, int]:
    """Time loading a run's second chunk, which carries its lookback from the first.

    Return the best seconds, its new sessions and its new bars.
    """
    times, c = [], cache()
    for _ in range(repeat):
        c = cache()
        c.window(days[lookback], lookback, include_day=False)  # the first chunk, not timed
        after = days[c._loaded[1] + 1]
        start = time.perf_counter()
        c.window(after, 0, include_day=True, part=BARS)  # the next one
        times.append(time.perf_counter() - start)
    first, last = c._loaded
    new = last - first - lookback + 1
    return min(times), new, c.window(days[last], new, include_day=True).height


def _table(n: int, rows: list[tuple[str, float]]) -> None:
    """Print seconds and base bars/s per row (a row of 0 seconds is a heading)."""
    print(f"{'stage':<26} {'seconds':>8} {'base bars/s':>14}")
    for name, secs in rows:
        print(f"{name:<26} {secs:>8.3f} {n / secs:>14,.0f}" if secs else name)


def _each_indicator(
    both: pl.LazyFrame, specs: tuple[Indicator, ...], repeat: int
) -> list[tuple[str, float]]:
    """Time each session indicator computed alone over the chunk's bars."""
    out = []
    for spec in specs:
        plan = indicators.compute(both, [spec], carry=("session",))
        secs = best(repeat, lambda p=plan: p.collect(engine="in-memory"))[0]
        out.append((f"    {spec.name} {spec.interval}", secs))
    return out


def _floors(
    store: Store, chunk: pl.DataFrame, bars: pl.DataFrame, *, symbol_type: pl.Enum, repeat: int
) -> list[tuple[str, float]]:
    """Time the chunk's Parquet read alone and one plain 1m -> 5m resample from memory."""
    first = chunk["session"][0] - dt.timedelta(days=1)
    last = chunk["session"][-1] + dt.timedelta(days=1)
    names = tuple(symbol_type.categories.to_list())
    plan = store.read(BASE, names, first, last, symbol_type=symbol_type)
    read = best(repeat, lambda: plan.collect(engine="streaming"))[0]
    five = bars.lazy().group_by_dynamic("ts", every="5m", group_by="symbol")
    ohlcv = five.agg(
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
    )
    resample = best(repeat, lambda: ohlcv.collect(engine="in-memory"))[0]
    return [("  Parquet read alone", read), ("  plain 1m->5m resample", resample)]


if __name__ == "__main__":
    main()
