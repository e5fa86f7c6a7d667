"""Time every phase of a full run at three sizes: ``python benchmarks/pipeline_phases.py``.

(Not ``benchmarks/pipeline.py``: a module of that name would shadow the `pipeline`
package for every script run from this folder.)

Sizes: ``--size small`` 1 symbol, ``medium`` 100 symbols, ``large`` 500 symbols, each
over the 252 XNYS sessions of 2024 (``--sessions N``: the first N only); ``--symbols N``
sets the count by hand. The store (random-walk 1m bars and their 1d bars from
2023-11-01, `_synthetic`) is generated once into ``--store DIR`` (a folder per symbol
count and date range, with a ``metadata.json``) and reused by later runs; without
``--store`` it goes to a temporary folder.

The run is `flow.py`'s config (stream 1m, derive 5m/15m/1h; 5 sessions of 1m and 20 of
1d history; 3 historical and 4 session indicators) with ``MovingAverageCross(10, 30,
"1m")`` at 1/N of equity per symbol and 1e7 cash (``--strategy touch``: `engine.py`'s
event-style strategy that reads every revealed row's close at every step, no orders),
done as ``pipeline run`` does it:
`pipeline.engine.backtest`, then `results.summary` and `results.write_run` (a temporary
runs folder). ``--phases 2-3`` (the default for ``large``) stops each session after
phase 3 instead: no strategy, no activation, no stream.

It runs in a fresh process (so the peak memory, ``ru_maxrss``, is the run's) and prints,
per phase, the seconds summed over the sessions from the catalog's ``sessions`` table,
the rows the phase handled (history bars loaded for 2.1, derived history for 2.4,
session-table rows for 3, 4 and 5) and base bars/s (symbols x 1m slots of the run / the
phase's seconds), then phases 2-3 together, the run's set-up (wall minus phases), the
results step and the wall time. Record results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flow import PHASES as FLOW_PHASES
from flow import config

SIZES = {"small": 1, "medium": 100, "large": 500}
YEAR = 2024
STORE_FROM = dt.date(YEAR - 1, 11, 1)  # covers 20 sessions of 1d history before 2024
BATCH = 50  # symbols generated and written at a time
SEED = 7
#: ``--strategy``: the crossover, or `engine.py`'s `TouchEveryBar` (every row read, no orders).
STRATEGIES = ("cross", "touch")
PHASES = {**FLOW_PHASES, "5": "5 stream + strategy"}  # flow.py's labels; phase 5 runs the strategy


# --- the store -------------------------------------------------------------------------


def run_days(sessions: int | None) -> Any:
    """Return the calendar rows of the run: 2024's XNYS sessions (the first `sessions`)."""
    from pipeline import calendar

    days = calendar.sessions("XNYS", dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
    return days if sessions is None else days.head(sessions)


def ensure_store(cache: Path, symbols: int, last: dt.date) -> Path:
    """Return the store for `symbols` symbols up to `last` in `cache`, building it once."""
    import polars as pl
    from _synthetic import daily_from_minutes, minute_bars

    from pipeline import calendar
    from pipeline.store import Store

    root = cache / f"{symbols}sym-{STORE_FROM}-{last}"
    meta = root / "metadata.json"
    if meta.exists():
        print(f"store: reusing {root}")
        return root
    start, rows = time.perf_counter(), 0
    sessions = calendar.sessions("XNYS", STORE_FROM, last)
    store = Store(root)
    for first in range(0, symbols, BATCH):
        count = min(BATCH, symbols - first)
        names = {f"S{i:04d}": f"S{first + i:04d}" for i in range(count)}
        bars = minute_bars(count, sessions, seed=SEED + first // BATCH)
        bars = bars.with_columns(pl.col("symbol").replace_strict(names))
        store.write_many({"1m": bars, "1d": daily_from_minutes(bars)})
        rows += bars.height
    facts = {"symbols": symbols, "first": str(STORE_FROM), "last": str(last), "rows_1m": rows}
    meta.write_text(json.dumps({**facts, "generator": "benchmarks/_synthetic.py", "seed": SEED}))
    print(f"store: {rows:,} 1m bars written to {root} in {time.perf_counter() - start:.1f} s")
    return root


# --- the run (in the child process) ----------------------------------------------------


def run_config(
    symbols: int, last: dt.date, strategy: str | None, load_ahead: bool = True
) -> dict[str, Any]:
    """Return flow.py's config over 2024 up to `last`, with `strategy` (`STRATEGIES`) if any."""
    settings: dict[str, Any] = {**config(symbols, YEAR, indicators=True), "end": str(last)}
    settings["name"] = "bench-phases"
    settings["load_ahead"] = load_ahead
    if strategy == "cross":
        params = {"fast": 10, "slow": 30, "interval": "1m", "percent": 1 / symbols}
        settings["strategy"] = {"class": "pipeline.strategies:MovingAverageCross", "params": params}
    elif strategy == "touch":
        here = Path(__file__).resolve().parent
        settings["strategy"] = {"class": f"{here / 'engine.py'}:TouchEveryBar"}
    if strategy is not None:
        settings["broker"] = {"cash": 1e7}
    return settings


def _up_to_phase_3() -> Any:
    """Return a Coordinator whose sessions stop after phase 3 (`SessionRun.prepare`)."""
    from pipeline._session_run import SessionRun
    from pipeline.runner import Coordinator

    class Phases23(Coordinator):
        def run_session(self, day: Any, subscribers: Any = (), **kwargs: Any) -> Any:  # noqa: ARG002
            run = SessionRun(self, day)
            return run.record(*run.prepare())

    return Phases23


def child(
    store: Path,
    symbols: int,
    last: dt.date,
    phases: str,
    *,
    load_ahead: bool = True,
    strategy: str = "cross",
) -> dict[str, Any]:
    """Run once; return per-phase seconds and rows, wall times and peak memory."""
    import polars as pl

    from pipeline import calendar, results
    from pipeline.catalog import Catalog
    from pipeline.config import parse_config
    from pipeline.engine import backtest
    from pipeline.store import Store

    chosen = strategy if phases == "all" else None
    settings = parse_config(run_config(symbols, last, chosen, load_ahead))
    catalog, out = Catalog(), {}
    start = time.perf_counter()
    if phases == "all":
        report, frames = backtest(settings, Store(store), catalog)
        out["wall_run"] = time.perf_counter() - start
        sessions = catalog.table("sessions")
        began = time.perf_counter()
        figures = results.summary(frames, report, settings, sessions=sessions)
        with tempfile.TemporaryDirectory() as runs:
            results.write_run(Path(runs), settings, frames, figures, sessions)
        out["results"] = time.perf_counter() - began
        out["orders"] = frames["orders"].height
    else:
        report = _up_to_phase_3()(settings, Store(store), catalog).run([])
        out["wall_run"] = time.perf_counter() - start
        sessions = catalog.table("sessions")
    out["wall"] = time.perf_counter() - start
    per_phase = sessions.group_by("phase", maintain_order=True).agg(
        pl.col("seconds").sum(), pl.col("bars").sum()
    )
    out["phases"] = {p: [s, int(b)] for p, s, b in per_phase.iter_rows()}
    out["sessions"] = report.sessions.height
    out["streamed"] = int(report.sessions["session_bars"].sum())
    days = settings.start, settings.end
    slots = calendar.slots(calendar.sessions("XNYS", *days), "1m").collect().height
    out["base"] = slots * symbols
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    catalog.close()
    return out


# --- reporting -------------------------------------------------------------------------


def report(symbols: int, phases: str, r: dict[str, Any]) -> None:
    """Print the per-phase table."""
    base = r["base"]
    print(
        f"{symbols} symbols x {r['sessions']} sessions ({base:,} base 1m bars), "
        f"phases {'1-6 + results' if phases == 'all' else '1-3'}"
        + (f", {r['orders']:,} orders" if "orders" in r else "")
    )
    print(f"{'phase':<32} {'seconds':>8} {'rows':>12} {'rows/s':>12} {'base bars/s':>12}")
    for phase, (secs, counted) in r["phases"].items():
        rows = counted or (r["streamed"] if phase in ("4", "5") else 0)
        rate = f"{rows / secs:>12,.0f}" if rows and secs else f"{'':>12}"
        label = PHASES.get(phase, phase)
        print(f"{label:<32} {secs:>8.3f} {rows:>12,} {rate} {base / secs:>12,.0f}")
    both = sum(s for p, (s, _) in r["phases"].items() if p.startswith(("2", "3")))
    setup = r["wall_run"] - sum(s for s, _ in r["phases"].values())
    rows = [("phases 2-3", both), ("run set-up (wall - phases)", setup)]
    if "results" in r:
        rows.append(("results (summary + run folder)", r["results"]))
    rows.append(("wall", r["wall"]))
    for label, secs in rows:
        print(f"{label:<32} {secs:>8.3f} {'':>12} {'':>12} {base / secs:>12,.0f}")
    print(f"peak memory {r['peak_mb']:,.0f} MB")


def measure(
    cache: Path,
    symbols: int,
    sessions: int | None,
    phases: str,
    *,
    load_ahead: bool = True,
    strategy: str = "cross",
) -> None:
    """Build or reuse the store, run in a fresh process, print the table."""
    from _synthetic import child_env

    last = run_days(sessions)["session"][-1]
    store = ensure_store(cache, symbols, last)
    command = [sys.executable, __file__, "--child", str(store), "--symbols", str(symbols)]
    command += ["--last", str(last), "--phases", phases, "--strategy", strategy]
    command += [] if load_ahead else ["--no-load-ahead"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the run failed with exit code {done.returncode}")
    report(symbols, phases, json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--symbols", type=int, help="symbol count (overrides --size)")
    parser.add_argument("--sessions", type=int, help="only the first N sessions of 2024")
    parser.add_argument("--phases", choices=["all", "2-3"], help="default: 2-3 for large")
    parser.add_argument("--store", help="cache folder for the generated stores")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="cross",
        help="the crossover (default) or an event-style strategy touching every row, no orders",
    )
    parser.add_argument(
        "--no-load-ahead", action="store_true", help="run with load_ahead = false (one chunk held)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: the store to run on
    parser.add_argument("--last", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    symbols = args.symbols or SIZES[args.size]
    phases = args.phases or ("2-3" if args.size == "large" and not args.symbols else "all")
    if args.child:
        ahead = not args.no_load_ahead
        found = child(
            Path(args.child), symbols, args.last, phases, load_ahead=ahead, strategy=args.strategy
        )
        print(json.dumps(found))
        return
    if symbols < 1 or (args.sessions is not None and args.sessions < 1):
        raise SystemExit("--symbols and --sessions must be >= 1")
    options = {"load_ahead": not args.no_load_ahead, "strategy": args.strategy}
    if args.store:
        measure(Path(args.store), symbols, args.sessions, phases, **options)
        return
    with tempfile.TemporaryDirectory(prefix="phases-") as tmp:
        measure(Path(tmp), symbols, args.sessions, phases, **options)


if __name__ == "__main__":
    main()
