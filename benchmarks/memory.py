"""Peak memory of a run over 20 vs 200 sessions (issue 7, item 5): ``python benchmarks/memory.py``.

Builds one synthetic store (N symbols of 1m and 1d bars, XNYS) in a temporary folder,
then runs the session flow (`Coordinator.run`, streaming 1m and deriving 5m) over the
first 20 and the first 200 sessions (``--sessions 20,60,200`` for other lengths), each
in a fresh subprocess, and prints each run's
peak resident memory (`peak_mb`) and their ratio. A run that holds only the trailing
window and the current session gives a ratio near 1.

``--symbols`` sets the universe (default 20); ``--minute-history`` and ``--daily-history``
the trailing window of 1m and 1d sessions loaded before each session (default 5 and 20).
The store holds 1m bars from that many sessions before the first run session and 1d
bars far enough back for the daily window (random-walk daily bars before the 1m ones).
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

import numpy as np
import polars as pl
from _synthetic import child_env, daily_from_minutes, minute_bars

from pipeline import calendar
from pipeline.store import Store

FIRST = dt.date(2023, 12, 1)
START = dt.date(2024, 1, 2)
MIC = "XNYS"


def config(
    symbols: int, end: dt.date, root: str, minute_history: int, daily_history: int
) -> dict[str, object]:
    return {
        "name": "memory",
        "start": START.isoformat(),
        "end": end.isoformat(),
        "symbols": [f"S{i:04d}" for i in range(symbols)],
        "streams": ["1m", "5m"],
        "data_root": root,
        "history": [
            {"interval": "1m", "sessions": minute_history},
            {"interval": "1d", "sessions": daily_history},
        ],
        "indicators": [{"name": "sma", "interval": "5m", "period": 10}],
    }


def daily_walk(symbols: int, sessions: pl.DataFrame, seed: int = 11) -> pl.DataFrame:
    """Random-walk 1d bars (labelled at 00:00 UTC of the session date) for `sessions`."""
    rng = np.random.default_rng(seed)
    days = sessions["session"].cast(pl.Datetime("us", "UTC"))
    frames = []
    for i in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, len(days))))
        open_ = np.concatenate([[100.0], close[:-1]])
        frames.append(
            pl.DataFrame(
                {
                    "symbol": f"S{i:04d}",
                    "ts": days,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.005,
                    "low": np.minimum(open_, close) * 0.995,
                    "close": close,
                    "volume": rng.integers(10_000, 1_000_000, len(days)).astype(np.float64),
                }
            )
        )
    return pl.concat(frames)


def build(root: Path, symbols: int, last: dt.date, minute_history: int, daily_history: int) -> int:
    """Write the store for runs up to `last` with these history windows; return the 1m rows."""
    first_minute = min(FIRST, calendar.sessions_before(MIC, START, minute_history)[0])
    first_daily = calendar.sessions_before(MIC, START, max(daily_history, 1))[0]
    minutes = minute_bars(symbols, calendar.sessions(MIC, first_minute, last))
    daily = daily_from_minutes(minutes)
    if first_daily < first_minute:
        early = calendar.sessions(MIC, first_daily, first_minute - dt.timedelta(days=1))
        daily = pl.concat([daily_walk(symbols, early), daily]).sort("symbol", "ts")
    Store(root).write_many({"1m": minutes, "1d": daily})
    return minutes.height


def peak_mb() -> float:
    """Return this process's peak resident memory in MB (``VmHWM``, Linux).

    Not ``ru_maxrss``: Linux keeps it across ``execve``, so a child started by
    `subprocess` reports at least its parent's peak (here the store builder's).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    from pipeline.catalog import get_catalog
    from pipeline.config import parse_config
    from pipeline.runner import Coordinator

    wanted = config(args.symbols, args.end, args.child, args.minute_history, args.daily_history)
    started = time.perf_counter()
    report = Coordinator(parse_config(wanted), Store(args.child), get_catalog()).run([])
    seconds = time.perf_counter() - started
    result = {"sessions": report.sessions.height, "peak_mb": peak_mb(), "seconds": seconds}
    print(json.dumps(result))


def measure(root: str, args: argparse.Namespace, end: dt.date) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", root, "--end", end.isoformat()]
    command += ["--symbols", str(args.symbols), "--minute-history", str(args.minute_history)]
    command += ["--daily-history", str(args.daily_history)]
    out = subprocess.run(command, check=True, capture_output=True, env=child_env())
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--minute-history", type=int, default=5, help="1m sessions of history")
    parser.add_argument("--daily-history", type=int, default=20, help="1d sessions of history")
    parser.add_argument(
        "--sessions", default="20,200", help="comma-separated run lengths, in sessions"
    )
    parser.add_argument("--child")
    parser.add_argument("--end", type=dt.date.fromisoformat)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    lengths = sorted(int(n) for n in args.sessions.split(","))
    days = calendar.sessions(MIC, START, START + dt.timedelta(days=2 * lengths[-1] + 30))
    ends = {n: days["session"][n - 1] for n in lengths}
    with tempfile.TemporaryDirectory() as root:
        last = ends[lengths[-1]]
        rows = build(Path(root), args.symbols, last, args.minute_history, args.daily_history)
        print(
            f"store: {args.symbols} symbols, {rows:,} 1m bars; history: "
            f"{args.minute_history} sessions of 1m, {args.daily_history} of 1d"
        )
        peaks = {}
        for n, end in ends.items():
            result = measure(root, args, end)
            peaks[n] = result["peak_mb"]
            print(
                f"{int(result['sessions'])} sessions: peak memory {peaks[n]:,.1f} MB "
                f"({result['seconds']:.1f} s)"
            )
    first, last = lengths[0], lengths[-1]
    print(f"ratio {last}/{first}: {peaks[last] / peaks[first]:.2f}")


if __name__ == "__main__":
    main()
