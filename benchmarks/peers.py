"""Our crossover against other backtesters on one workload: ``python benchmarks/peers.py``.

The workload: SMA(10) x SMA(30) crossover of 1m closes, long only, all-in, market orders
filled at the next bar's open, no costs, cash 100,000; 1 symbol x `--sessions` XNYS
sessions (default 252 = 2024) of regular-hours 1m bars (~98k bars). Prices are a
random walk (`_synthetic.minute_bars`: float prices with many decimals, each bar's open
= the previous close). Conventions, the same everywhere:

- no ties: the generator takes the first seed from 7 whose closes keep
  |SMA(10) - SMA(30)| > 1e-8 x SMA(30) at every bar, 10x wider than our tie band (1e-9)
  and far above float noise, so every engine's cross rule (ours: state -1 then +1;
  backtesting.py ``crossover``; backtrader ``CrossOver``; vectorbt ``crossed_above``)
  gives the same crosses whatever its SMA arithmetic;
- all-in = floor(equity / signal close) whole shares, ordered at the signal bar (our
  broker's ``target_percent``); since each open equals the previous close, the fill at
  the next open always fits in cash, so no engine cuts or refuses an order;
- exits: go flat on a cross down when long; trades still open at the end are left out.

Contestants: ``event`` (`pipeline.strategies.MovingAverageCross` on 1m through
`pipeline.engine.backtest`, as ``pipeline run`` does, minus writing the run folder),
``vectorised`` (`pipeline.vectorised.VectorisedMovingAverageCross`, same path), ``floor``
(our flow alone, phases 1-6 and the stream without an engine: what any strategy of ours
pays first; the report turns it into the ceiling of each ratio), and the
peers ``backtrader`` (``stdstats=False``), ``backtesting`` (backtesting.py) and
``vectorbt`` (``Portfolio.from_signals`` with signals shifted one bar, ``price=open``,
``size=inf``, ``size_granularity=1``). Peers not installed (``pip install -e '.[bench]'``)
show as "not installed".

Each contestant runs in its own process: it loads its input (ours: the pipeline store the
bars were written to; peers: the same bars as a pandas frame from Parquet), runs once to
warm up, then `--repeat` timed runs (best kept); peak memory is the process's
``ru_maxrss``. Trades (entry/exit time and price, quantity) are compared with our event
run's: times and quantities exactly, prices within 1e-9 (backtrader's float timestamps
are rounded to the second first). Then ``vectorised`` and ``vectorbt`` also run once in a
fresh process each (interpreter start + imports + read + numba compile or cache load +
run), timed from outside. Record results in benchmarks/RESULTS.md.

To profile one contestant: write the workload with ``--dir DIR`` once, then
``python -m cProfile -s cumulative benchmarks/peers.py --child event --fresh --dir DIR``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAST, SLOW, CASH = 10, 30, 100_000.0
CONTESTANTS = ("event", "vectorised", "floor", "backtrader", "backtesting", "vectorbt")
#: The module each peer needs (ours need nothing beyond the project).
MODULES = {"backtrader": "backtrader", "backtesting": "backtesting", "vectorbt": "vectorbt"}
LABELS = {
    "event": "ours, event (MovingAverageCross)",
    "vectorised": "ours, vectorised",
    "floor": "ours, flow alone (no engine)",
    "backtrader": "backtrader",
    "backtesting": "backtesting.py",
    "vectorbt": "vectorbt",
}
FRESH = ("vectorised", "vectorbt")
START = dt.date(2024, 1, 1)
SEED = 7
GAP = 1e-8  # smallest |SMA(fast) - SMA(slow)| / SMA(slow) the workload allows
PRICE_TOL = 1e-9
US = 1_000_000

Trades = dict[str, list[Any]]


@dataclass(frozen=True)
class Job:
    """Where a contestant finds its input and writes its trades."""

    folder: Path
    first: dt.date
    last: dt.date


# --- the workload ----------------------------------------------------------------------


def closest_approach(close: Any) -> float:
    """Return the smallest |SMA(fast) - SMA(slow)| / SMA(slow) over `close` (NumPy array)."""
    import numpy as np

    windows = np.lib.stride_tricks.sliding_window_view(close, SLOW)
    slow = windows.mean(axis=1)
    fast = windows[:, -FAST:].mean(axis=1)
    return float(np.min(np.abs(fast - slow) / slow))


def write_workload(folder: Path, sessions: int) -> dict[str, Any]:
    """Write the bars to ``folder/store`` (pipeline store) and ``folder/bars.parquet``."""
    import polars as pl
    from _synthetic import minute_bars

    from pipeline import calendar
    from pipeline.store import Store

    days = calendar.sessions("XNYS", START, START + dt.timedelta(days=2 * sessions + 30))
    days = days.head(sessions)
    for seed in range(SEED, SEED + 1000):
        bars = minute_bars(1, days, seed=seed)
        gap = closest_approach(bars["close"].to_numpy())
        if gap > GAP:
            break
    else:
        raise SystemExit(f"no seed in {SEED}..{SEED + 999} keeps the averages {GAP} apart")
    Store(folder / "store").write("1m", bars)
    pandas_ready = bars.select(
        pl.col("ts").dt.replace_time_zone(None),
        *(pl.col(c).alias(c.capitalize()) for c in ("open", "high", "low", "close", "volume")),
    )
    pandas_ready.write_parquet(folder / "bars.parquet")
    first, last = days["session"][0], days["session"][-1]
    work = {"bars": bars.height, "seed": seed, "gap": gap, "first": str(first), "last": str(last)}
    (folder / "workload.json").write_text(json.dumps(work))
    return work


def load_job(folder: Path) -> Job:
    """Return the job of the workload written to `folder`."""
    work = json.loads((folder / "workload.json").read_text())
    return Job(folder, dt.date.fromisoformat(work["first"]), dt.date.fromisoformat(work["last"]))


def _frame(job: Job) -> Any:
    """Return the bars as backtesting.py, backtrader and vectorbt take them (pandas)."""
    import pandas as pd

    return pd.read_parquet(job.folder / "bars.parquet").set_index("ts")


def _as_trades(entry_us: Any, exit_us: Any, entry: Any, exit_: Any, qty: Any) -> Trades:
    return {
        "entry_ts": [int(x) for x in entry_us],
        "exit_ts": [int(x) for x in exit_us],
        "entry_price": [float(x) for x in entry],
        "exit_price": [float(x) for x in exit_],
        "quantity": [float(x) for x in qty],
    }


def _epoch_us(times: Any) -> Any:
    """Naive UTC pandas times as integer microseconds since the epoch."""
    import numpy as np

    return np.asarray(times).astype("datetime64[us]").astype(np.int64)


# --- the contestants: each returns the timed callable ----------------------------------


def run_config(job: Job, spec: str) -> dict[str, Any]:
    """Return our run config for the workload with strategy class `spec`."""
    return {
        "name": "peers",
        "start": job.first.isoformat(),
        "end": job.last.isoformat(),
        "symbols": ["S0000"],
        "streams": ["1m"],
        "strategy": {"class": spec, "params": {"fast": FAST, "slow": SLOW, "interval": "1m"}},
        "broker": {"cash": CASH, "fill": "next_open"},
    }


def _ours(job: Job, spec: str) -> Callable[[], Trades]:
    from pipeline.catalog import Catalog
    from pipeline.config import parse_config
    from pipeline.engine import backtest
    from pipeline.store import Store

    settings = parse_config(run_config(job, spec))
    store = Store(job.folder / "store")

    def run() -> Trades:
        catalog = Catalog()
        try:
            _, results = backtest(settings, store, catalog)
        finally:
            catalog.close()
        t = results["trades"]
        times = [t[c].dt.epoch("us").to_numpy() for c in ("entry_ts", "exit_ts")]
        return _as_trades(*times, t["entry_price"], t["exit_price"], t["quantity"])

    return run


def prepare_event(job: Job) -> Callable[[], Trades]:
    return _ours(job, "pipeline.strategies:MovingAverageCross")


def prepare_vectorised(job: Job) -> Callable[[], Trades]:
    return _ours(job, "pipeline.vectorised:VectorisedMovingAverageCross")


def prepare_floor(job: Job) -> Callable[[], Trades]:
    """Our flow alone on the workload: phases 1-6 and the stream, no engine, no orders.

    Not a contestant: what any strategy of ours pays before it does anything.
    """
    from pipeline.catalog import Catalog
    from pipeline.config import parse_config
    from pipeline.runner import Coordinator
    from pipeline.store import Store

    settings = parse_config(run_config(job, "pipeline.strategies:MovingAverageCross"))
    store = Store(job.folder / "store")

    def run() -> Trades:
        catalog = Catalog()
        try:
            Coordinator(settings, store, catalog).run(())
        finally:
            catalog.close()
        return _as_trades([], [], [], [], [])

    return run


def prepare_backtesting(job: Job) -> Callable[[], Trades]:
    import warnings

    import backtesting
    import pandas as pd
    from backtesting.lib import crossover

    frame = _frame(job)

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class Cross(backtesting.Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy(size=int(self.equity / self.data.Close[-1]))
            elif crossover(self.slow, self.fast):
                self.position.close()

    def run() -> Trades:
        test = backtesting.Backtest(
            frame, Cross, cash=CASH, commission=0, trade_on_close=False, exclusive_orders=True
        )
        with warnings.catch_warnings():  # trades open at the end; pandas deprecations
            warnings.simplefilter("ignore")
            t = test.run()["_trades"].sort_values("EntryTime")
        times = [_epoch_us(t[c]) for c in ("EntryTime", "ExitTime")]
        return _as_trades(*times, t["EntryPrice"], t["ExitPrice"], t["Size"])

    return run


def prepare_backtrader(job: Job) -> Callable[[], Trades]:
    import backtrader as bt

    frame = _frame(job)

    class Cross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            close = self.data.close
            self.cross = bt.ind.CrossOver(
                bt.ind.SMA(close, period=FAST), bt.ind.SMA(close, period=SLOW)
            )
            self.fills: list[tuple[float, float, float]] = []

        def next(self) -> None:
            if self.cross[0] > 0:
                self.buy(size=int(self.broker.getvalue() / self.data.close[0]))
            elif self.cross[0] < 0 and self.position.size > 0:
                self.close()

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                done = order.executed
                self.fills.append((done.dt, done.price, done.size))

    def run() -> Trades:
        cerebro = bt.Cerebro(stdstats=False)
        feed = bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1)
        cerebro.adddata(feed)
        cerebro.addstrategy(Cross)
        cerebro.broker.setcash(CASH)
        fills = cerebro.run()[0].fills
        return _pair_fills(fills, bt.num2date)

    return run


def _pair_fills(fills: list[tuple[float, float, float]], num2date: Any) -> Trades:
    """Turn alternating buy / sell fills into round trips (an open last buy is left out)."""
    buys, sells = fills[0::2], fills[1::2]
    if any(b[2] <= 0 for b in buys) or any(s[2] >= 0 for s in sells):
        raise SystemExit("backtrader: fills do not alternate buy / sell")

    def us(day_number: float) -> int:
        return round(num2date(day_number).replace(tzinfo=dt.UTC).timestamp()) * US

    pairs = list(zip(buys, sells, strict=False))
    return _as_trades(
        [us(b[0]) for b, _ in pairs],
        [us(s[0]) for _, s in pairs],
        [b[1] for b, _ in pairs],
        [s[1] for _, s in pairs],
        [b[2] for b, _ in pairs],
    )


def prepare_vectorbt(job: Job) -> Callable[[], Trades]:
    import numpy as np
    import vectorbt as vbt

    frame = _frame(job)
    close, opens = frame["Close"], frame["Open"]
    index = _epoch_us(frame.index)

    def next_bar(signal: Any) -> Any:
        flags = np.asarray(signal, dtype=bool).ravel()
        return np.concatenate([[False], flags[:-1]])

    def run() -> Trades:
        fast, slow = vbt.MA.run(close, FAST), vbt.MA.run(close, SLOW)
        entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        folio = vbt.Portfolio.from_signals(
            close,
            entries=next_bar(entries),
            exits=next_bar(exits),
            price=opens,
            size=np.inf,
            size_granularity=1.0,
            init_cash=CASH,
            fees=0.0,
            direction="longonly",
            freq="1min",
        )
        t = folio.trades.records
        t = t[t["status"] == 1]  # closed
        times = [index[t[c]] for c in ("entry_idx", "exit_idx")]
        return _as_trades(*times, t["entry_price"], t["exit_price"], t["size"])

    return run


PREPARE: dict[str, Callable[[Job], Callable[[], Trades]]] = {
    "event": prepare_event,
    "vectorised": prepare_vectorised,
    "floor": prepare_floor,
    "backtrader": prepare_backtrader,
    "backtesting": prepare_backtesting,
    "vectorbt": prepare_vectorbt,
}


# --- one contestant in this process (the child) ----------------------------------------


def child(name: str, job: Job, repeat: int, fresh: bool) -> dict[str, Any]:
    """Run contestant `name`: once cold (`fresh`), else a warm-up and `repeat` timed runs."""
    start = time.perf_counter()
    run = PREPARE[name](job)
    out: dict[str, Any] = {"prepare": time.perf_counter() - start}
    if fresh:
        start = time.perf_counter()
        trades = run()
        out["run"] = time.perf_counter() - start
    else:
        run()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            trades = run()
            times.append(time.perf_counter() - start)
        out["seconds"], out["times"] = min(times), times
        (job.folder / f"trades-{name}.json").write_text(json.dumps(trades))
    out["trades"] = len(trades["entry_ts"])
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def spawn(name: str, job: Job, repeat: int, *, fresh: bool) -> dict[str, Any]:
    """Run `child` for `name` in a new interpreter; add its wall time from outside."""
    from _synthetic import child_env

    command = [sys.executable, __file__, "--child", name, "--dir", str(job.folder)]
    command += ["--repeat", str(repeat), *(["--fresh"] if fresh else [])]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    wall = time.perf_counter() - start
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{name}: child failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


# --- comparing and reporting -----------------------------------------------------------


def compare(ours: Trades, theirs: Trades) -> tuple[bool, str]:
    """Return whether `theirs` equals `ours` trade for trade, and the first difference."""
    if len(ours["entry_ts"]) != len(theirs["entry_ts"]):
        return False, f"{len(theirs['entry_ts'])} trades vs {len(ours['entry_ts'])}"
    for column in ("entry_ts", "exit_ts", "quantity"):
        for i, (a, b) in enumerate(zip(ours[column], theirs[column], strict=True)):
            if a != b:
                return False, f"trade {i}: {column} {_show(column, b)} vs {_show(column, a)}"
    worst = 0.0
    for column in ("entry_price", "exit_price"):
        pairs = zip(ours[column], theirs[column], strict=True)
        worst = max([worst, *(abs(a - b) for a, b in pairs)])
    return worst <= PRICE_TOL, f"max price difference {worst:.1e}"


def _show(column: str, value: float) -> str:
    if column.endswith("_ts"):
        return f"{dt.datetime.fromtimestamp(value / US, dt.UTC):%Y-%m-%d %H:%M:%S}"
    return f"{value:g}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(bars: int, runs: dict[str, dict[str, Any] | None], fresh: dict[str, Any]) -> None:
    """Print the contestants' table, the fresh-process table and the targets."""
    rate = {n: bars / r["seconds"] for n, r in runs.items() if r is not None}
    width = max(len(LABELS[n]) for n in runs)
    print(
        f"{'contestant':<{width}} {'bars/s':>12} {'seconds':>8} {'peak MB':>8} {'trades':>7} "
        f"{'identical':>9} {'event/this':>10} {'vect/this':>9}"
    )
    for name, r in runs.items():
        if r is None:
            print(f"{LABELS[name]:<{width}} {'not installed':>12}")
            continue
        print(
            f"{LABELS[name]:<{width}} {rate[name]:>12,.0f} {r['seconds']:>8.3f} "
            f"{r['peak_mb']:>8,.0f} {r['trades']:>7,} {r['identical']:>9} "
            f"{_ratio(rate.get('event'), rate[name]):>10} "
            f"{_ratio(rate.get('vectorised'), rate[name]):>9}"
        )
    notes = [f"  {LABELS[n]}: {r['note']}" for n, r in runs.items() if r and r.get("note")]
    if notes:
        print("trades vs the reference (ref):", *notes, sep="\n")
    if fresh:
        print(f"\n{'fresh process, once':<{width}} {'wall s':>8} {'run s':>8}")
        for name, r in fresh.items():
            print(f"{LABELS[name]:<{width}} {r['wall']:>8.2f} {r['run']:>8.2f}")
        print("(wall: interpreter start + imports + read + run; run: the cold run alone)")
    _targets(rate, fresh)


def _targets(rate: dict[str, float], fresh: dict[str, Any]) -> None:
    checks = [
        ("event >= 3x backtesting.py", "event", "backtesting", 3.0, rate),
        ("event >= 30x backtrader", "event", "backtrader", 30.0, rate),
        ("vectorised >= vectorbt (warm)", "vectorised", "vectorbt", 1.0, rate),
    ]
    lines = []
    for label, ours, theirs, need, rates in checks:
        if ours in rates and theirs in rates:
            got = rates[ours] / rates[theirs]
            lines.append(f"{label}: {got:.2f}x, {'met' if got >= need else 'NOT met'}")
    if "vectorised" in fresh and "vectorbt" in fresh:
        a, b = fresh["vectorised"]["wall"], fresh["vectorbt"]["wall"]
        lines.append(
            f"vectorised fresh process faster than vectorbt's: {a:.2f} s vs {b:.2f} s, "
            f"{'met' if a < b else 'NOT met'}"
        )
    if "floor" in rate:  # what even a free engine and strategy could reach
        for theirs in ("backtesting", "backtrader", "vectorbt"):
            if theirs in rate:
                lines.append(
                    f"ceiling vs {LABELS[theirs]} (our flow alone, engine and strategy free): "
                    f"{rate['floor'] / rate[theirs]:.2f}x"
                )
    if lines:
        print("\ntargets:", *lines, sep="\n  ")


# --- command line ----------------------------------------------------------------------


def _installed(name: str) -> bool:
    module = MODULES.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def _chosen(only: str | None) -> list[str]:
    names = [n.strip() for n in only.split(",")] if only else list(CONTESTANTS)
    unknown = sorted(set(names) - set(CONTESTANTS))
    if unknown:
        raise SystemExit(f"unknown contestant {unknown}; choose from {', '.join(CONTESTANTS)}")
    return [n for n in CONTESTANTS if n in names]


def measure(names: list[str], sessions: int, repeat: int, keep: str | None) -> None:
    """Write the workload, run every contestant, compare trades and print the report."""
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        work = write_workload(folder, sessions)
        job = load_job(folder)
        print(
            f"workload: 1 symbol x {sessions} XNYS sessions ({job.first} to {job.last}), "
            f"{work['bars']:,} 1m bars, seed {work['seed']}, closest SMA approach "
            f"{work['gap']:.1e} of SMA({SLOW}); warm-up + best of {repeat}"
        )
        runs: dict[str, dict[str, Any] | None] = {}
        for name in names:
            runs[name] = spawn(name, job, repeat, fresh=False) if _installed(name) else None
        trades = {
            n: json.loads((folder / f"trades-{n}.json").read_text()) for n, r in runs.items() if r
        }
        fresh = {n: spawn(n, job, 1, fresh=True) for n in FRESH if runs.get(n)}
    reference = "event" if "event" in trades else next(iter(trades), None)
    for name, r in runs.items():
        if r is None or reference is None:
            continue
        if name == reference:
            r["identical"] = "ref"
            continue
        if name == "floor":  # places no orders
            r["identical"] = "-"
            continue
        same, note = compare(trades[reference], trades[name])
        r["identical"], r["note"] = ("yes" if same else "no"), note
    report(work["bars"], runs, fresh)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=252, help="XNYS sessions from 2024-01-02")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs after the warm-up")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(CONTESTANTS)}")
    parser.add_argument("--dir", help="write (and keep) the workload in this folder")
    parser.add_argument(
        "--child", metavar="NAME", help="only run NAME in this process on --dir's workload"
    )
    parser.add_argument("--fresh", action="store_true", help="with --child: run once, cold")
    args = parser.parse_args()
    if args.child:
        if not args.dir:
            raise SystemExit("--child needs --dir: the folder a full run wrote its workload to")
        result = child(_chosen(args.child)[0], load_job(Path(args.dir)), args.repeat, args.fresh)
        print(json.dumps(result))
        return
    if args.sessions < 2 or args.repeat < 1:
        raise SystemExit("--sessions must be >= 2 and --repeat >= 1")
    measure(_chosen(args.only), args.sessions, args.repeat, args.dir)


if __name__ == "__main__":
    main()
