"""Peak memory of a run over 20 vs 200 sessions (issue 7, item 5): ``python benchmarks/memory.py``.

Builds one synthetic store (N symbols of 1m and 1d bars, XNYS) in a temporary folder,
then runs the session flow (`Coordinator.run`, streaming 1m and deriving 5m) over the
first 20 and the first 200 sessions, each in a fresh subprocess, and prints each run's
peak resident memory (``resource.getrusage(...).ru_maxrss``) and their ratio. A run
that holds only the trailing window and the current session gives a ratio near 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _synthetic import build_store

from pipeline import calendar

FIRST = dt.date(2023, 12, 1)
START = dt.date(2024, 1, 2)


def config(symbols: int, end: dt.date, root: str) -> dict[str, object]:
    return {
        "name": "memory",
        "start": START.isoformat(),
        "end": end.isoformat(),
        "symbols": [f"S{i:04d}" for i in range(symbols)],
        "streams": ["1m", "5m"],
        "data_root": root,
        "history": [{"interval": "1m", "sessions": 5}, {"interval": "1d", "sessions": 20}],
        "indicators": [{"name": "sma", "interval": "5m", "period": 10}],
    }


def child(root: str, symbols: int, end: dt.date) -> None:
    from pipeline.catalog import get_catalog
    from pipeline.config import parse_config
    from pipeline.runner import Coordinator
    from pipeline.store import Store

    settings = parse_config(config(symbols, end, root))
    report = Coordinator(settings, Store(root), get_catalog()).run([])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sessions": report.sessions.height, "peak_mb": peak}))


def measure(root: str, symbols: int, end: dt.date) -> dict[str, float]:
    args = [sys.executable, __file__, "--child", root, "--symbols", str(symbols)]
    out = subprocess.run([*args, "--end", end.isoformat()], check=True, capture_output=True)
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--child")
    parser.add_argument("--end", type=dt.date.fromisoformat)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.symbols, args.end)
        return
    days = calendar.sessions("XNYS", START, START + dt.timedelta(days=320))["session"]
    ends = {20: days[19], 200: days[199]}
    with tempfile.TemporaryDirectory() as root:
        rows = build_store(Path(root), args.symbols, FIRST, ends[200])
        print(f"store: {args.symbols} symbols, {rows:,} 1m bars")
        peaks = {}
        for n, end in ends.items():
            result = measure(root, args.symbols, end)
            peaks[n] = result["peak_mb"]
            print(f"{int(result['sessions'])} sessions: peak memory {peaks[n]:,.1f} MB")
    print(f"ratio 200/20: {peaks[200] / peaks[20]:.2f}")


if __name__ == "__main__":
    main()
