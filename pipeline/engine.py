"""The analysis engine: run an event-style strategy on the stream, through the simulated broker.

An `Engine` is the coordinator's engine hook (``Coordinator.run(engine=...)``). Per session:

1. ``on_session_start``: precompute per-row codes of the session table (symbol,
   interval, "is a regular-hours base bar") once, set ``ctx.session``,
   ``ctx.session_open`` and ``ctx.session_close``, then call the strategy's
   ``on_session_start``;
2. at each timestamp T (``__call__(step)``): pass the base-interval, regular-hours rows
   revealed at T to the broker (orders placed before T fill, positions are marked),
   then call the strategy's ``on_bars(ctx, bars)`` with a `BarsView` of every row
   revealed at T; orders it places are checked at once (quality gate included);
   with a scanner the view holds only the rows of ``ctx.universe``: the session's
   picked symbols and those held from earlier picks (dropped once flat and without
   working orders); the broker still sees every base row;
3. ``on_session_end``: the strategy's ``on_session_end``, then the broker records the
   positions at the session close (they carry over to the next session);
4. ``on_run_end``: the results go to the catalog's ``orders``, ``fills``, ``trades``,
   ``positions`` and ``equity`` tables (`results` returns the same frames, and
   ``scans``: each session's scanner picks).

A vectorised strategy (`pipeline.vectorised.VectorisedStrategy`) runs through a
`pipeline.vectorised.VectorisedRunner` instead of ``on_bars``: its expressions are
evaluated at step 1, and at step 2 the orders of the rows revealed at T are placed
where ``on_bars`` would have run (after the broker's fills and marks). With a scanner
it is kept to the same scope: only the bars of ``ctx.universe`` at the session start
are evaluated, and a row places orders only while its symbol is still in scope.
Without a scanner, the steps where it has nothing to do (no order working, no row
acting) are taken at once (`pipeline.stream.QuietSubscriber`, ``quiet_steps``): the
broker marks them from arrays (`Broker.on_quiet_rows`), with the same equity rows.

The quality gate reads the catalog's quality of the current session and base interval
just before an order is placed (once per timestamp), not at every step.

Examples
--------
>>> from pipeline.config import load_config
>>> from pipeline.store import Store
>>> from pipeline.catalog import reset_catalog
>>> reset_catalog()
>>> report, results = backtest(load_config("configs/sample.toml"), Store("data"))
>>> sorted(results)
['equity', 'fills', 'orders', 'positions', 'scans', 'trades']
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline._broker_models import BarRows
from pipeline.broker import Broker
from pipeline.catalog import Catalog, get_catalog
from pipeline.config import RunConfig, config_hash
from pipeline.errors import ConfigError, PipelineError, StrategyError
from pipeline.intervals import Interval
from pipeline.runner import Coordinator, RunReport, SessionDay
from pipeline.scanner import SCANS, scans_frame
from pipeline.store import Store
from pipeline.strategy import BarsView, Context, SessionColumns, Strategy, load_strategy
from pipeline.stream import Step, Subscriber
from pipeline.vectorised import VectorisedRunner, VectorisedStrategy

__all__ = ["RESULT_TABLES", "Engine", "backtest", "strategy_from_config"]

#: The catalog tables the engine writes, in order.
RESULT_TABLES = ("orders", "fills", "trades", "positions", "equity")
_STRATEGY_KEYS = ("class", "params")
#: The columns a `BarRows` reads (an empty one before the first session).
BAR_ROW_SCHEMA = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    **{c: pl.Float64() for c in ("open", "high", "low", "close", "volume")},
}

log = logging.getLogger(__name__)


def strategy_from_config(section: Mapping[str, Any]) -> Strategy:
    """Build the strategy a config's ``[strategy]`` table names (``class``, ``params``).

    Raise `ConfigError` when ``class`` is missing, a key is unknown or the class
    cannot be loaded.
    """
    unknown = sorted(set(section) - set(_STRATEGY_KEYS))
    if unknown or "class" not in section:
        found = f"unknown keys {unknown}" if unknown else "no 'class'"
        raise ConfigError(
            f'config [strategy] has {found}; write class = "module:Class" and optionally '
            "params = { ... }."
        )
    params = section.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"config [strategy] params must be a table, found {params!r}.")
    spec = str(section["class"])
    try:
        return load_strategy(spec, dict(params))
    except PipelineError:
        raise
    except Exception as exc:  # the strategy's own code: its module or its __init__
        raise StrategyError.raised(spec, _loading_step(exc), exc) from exc


def _check_interval(strategy: Strategy, streams: Sequence[str]) -> None:
    """Warn when the strategy reads an `interval` the run does not stream: it would never trade."""
    wanted = getattr(strategy, "interval", None)
    if not isinstance(wanted, str):
        return
    try:
        name = str(Interval.parse(wanted))
    except PipelineError:
        return  # not an interval name: not ours to judge
    streamed = [str(Interval.parse(s)) for s in streams]
    if name not in streamed:
        log.warning(
            "The strategy reads %s bars, but the run streams %s: it will see none. Add %r to "
            "streams, or give the strategy one of those intervals.",
            name,
            ", ".join(streamed),
            name,
        )


def _loading_step(exc: BaseException) -> str:
    """Return where loading a strategy failed: "while importing it" or "in __init__"."""
    import traceback

    from pipeline import strategy

    steps = [
        frame.f_code.co_name
        for frame, _ in traceback.walk_tb(exc.__traceback__)
        if frame.f_code.co_filename == strategy.__file__
    ]
    return "in __init__" if steps and steps[-1] == "_build" else "while importing it"


class Engine:
    """Drive a strategy and the simulated broker from the session stream.

    Parameters
    ----------
    config
        The run config: its ``[strategy]`` (unless `strategy` is given), ``[broker]``
        and ``quality.min_for_entry``.
    catalog
        Where the strategy reads and the results go (the process-wide one by default).
    strategy
        A strategy object to use instead of the config's.
    """

    def __init__(
        self,
        config: RunConfig,
        catalog: Catalog | None = None,
        *,
        strategy: Strategy | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog or get_catalog()
        self.strategy = strategy if strategy is not None else strategy_from_config(config.strategy)
        label = type(strategy).__name__ if strategy is not None else config.strategy["class"]
        self._label = str(label)
        self._vectorised = None
        if isinstance(self.strategy, VectorisedStrategy):
            with self._strategy_code("in signals"):
                self._vectorised = VectorisedRunner(self.strategy)
        self.run_id = config_hash(config)
        self.broker = Broker(config.broker_config(), run_id=self.run_id)
        finest = min(Interval.parse(s) for s in config.streams)
        _check_interval(self.strategy, config.streams)
        self.ctx = Context(self.catalog, self.broker, base=str(finest), before_order=self._gate)
        self._day: SessionDay | None = None
        self._offset = 0
        self._universe: tuple[str, ...] = ()
        self._intervals: tuple[str, ...] = ()
        self._scodes: npt.NDArray[Any] = np.zeros(0, dtype=np.int64)
        self._icodes: npt.NDArray[Any] = np.zeros(0, dtype=np.int64)
        self._no_rows = self._rows = BarRows(pl.DataFrame(schema=BAR_ROW_SCHEMA))
        self._traded: list[int] = [0]
        self._traded_at: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._columns: SessionColumns | None = None
        self._gated: dt.datetime | None = None
        self._allowed: npt.NDArray[np.bool_] | None = None
        self._dropped: set[str] = set()
        self._scans: list[pl.DataFrame] = []
        self.steps = 0
        #: Hand quiet steps of a vectorised strategy over at once (False: step by step).
        self.quiet_steps = True
        self._final: dict[str, pl.DataFrame] | None = None  # the results once the run ended

    @contextlib.contextmanager
    def _strategy_code(self, where: str) -> Iterator[None]:
        """Turn an exception the strategy's code raises into a `StrategyError` naming it."""
        try:
            yield
        except PipelineError:
            raise
        except Exception as exc:
            raise StrategyError.raised(self._label, where, exc) from exc

    # --- hooks ----------------------------------------------------------------------

    def on_session_start(self, day: SessionDay) -> None:
        """Precompute the session table's row codes; call the strategy's hook."""
        table = day.table
        self._day, self._offset, self._gated, self._final = day, 0, None, None
        self._universe = self.catalog.universe or tuple(
            sorted(set(table.get_column("symbol").cast(pl.String).to_list()))
        )
        symbols = table.get_column("symbol")
        if symbols.dtype != pl.Enum(self._universe):
            symbols = symbols.cast(pl.String).cast(pl.Enum(self._universe))
        self._scodes = symbols.to_physical().to_numpy()
        intervals = table.get_column("interval")
        self._intervals = tuple(
            sorted(set(intervals.unique().to_list()), key=lambda s: Interval.parse(s).seconds)
        )
        self._icodes = intervals.cast(pl.Enum(self._intervals)).to_physical().to_numpy()
        ts = table.get_column("ts")
        trade = ((intervals == day.base) & (ts >= day.open) & (ts < day.close)).to_numpy()
        self._columns = SessionColumns(
            table, self._scodes, self._icodes, self._universe, self._intervals
        )
        picks = None if trade.all() else np.flatnonzero(trade)
        self._rows = BarRows.of_columns(self._columns.array, self._universe, self._scodes, picks)
        # base rows before each table row: as a list for the per-step lookups (cheaper
        # there), as an array for the quiet steps' lookups at once
        self._traded_at = np.concatenate([[0], np.cumsum(trade, dtype=np.int64)])
        self._traded = self._traded_at.tolist()
        self.ctx.base, self.ctx.session = day.base, day.session
        self.ctx.session_open, self.ctx.session_close = day.open, day.close
        self._scope(day)
        with self._strategy_code("in on_session_start"):
            if self._vectorised is not None:
                self._vectorised.start_session(
                    table, self.ctx.scope, session=day.session, ahead=day.ahead
                )
            self.strategy.on_session_start(self.ctx)

    def __call__(self, step: Step) -> None:
        """Fill and mark at `step.clock`, then let the strategy see the new rows."""
        start = self._offset if step.start is None else step.start
        stop = start + step.size
        self._offset = stop
        clock = self.ctx.clock = step.clock
        first, last = self._traded[start], self._traded[stop]
        if last > first:
            self.broker.on_rows(clock, self._rows, first, last)
        else:  # no regular-hours base bar now: orders placed carry this clock
            self.broker.set_clock(clock)
        self.steps += 1
        if self._vectorised is not None:
            if self._allowed is not None and self._dropped:
                self._vectorised.leave(self._release(), start)
            self._vectorised.act(self.ctx, stop)
            return
        view = self._view(start, stop)
        try:  # not a context manager: this runs at every step
            self.strategy.on_bars(self.ctx, view)
        except PipelineError:
            raise
        except Exception as exc:
            raise StrategyError.raised(self._label, "in on_bars", exc) from exc

    # --- quiet steps (a vectorised strategy between its orders) --------------------

    def takes_quiet_steps(self) -> bool:
        """True when the stream may hand over steps where nothing can happen at once.

        Only for a vectorised strategy without a scanner: between its acting rows, with
        no order working, a step only moves closes and adds an equity row
        (`pipeline.stream.QuietSubscriber`).
        """
        return self.quiet_steps and self._vectorised is not None and self._allowed is None

    def quiet_until(
        self,
        clocks: Sequence[dt.datetime],  # noqa: ARG002 (the protocol's)
        ends: Sequence[int],
        k: int,
    ) -> int:
        """Return the first step >= `k` to see on its own: an order works, or a row acts."""
        assert self._vectorised is not None  # takes_quiet_steps
        if self.broker.has_working():
            return k
        row = self._vectorised.next_row()
        return len(ends) if row is None else bisect.bisect_right(ends, row, lo=k)

    def on_quiet(
        self, clocks: Sequence[dt.datetime], ends: Sequence[int], k: int, j: int, start: int
    ) -> None:
        """Take steps `k` to `j` (excluded) at once: marks only (`Broker.on_quiet_rows`)."""
        stops = self._traded_at[ends[k:j]]
        first = int(self._traded_at[start])
        before = np.empty_like(stops)
        before[0], before[1:] = first, stops[:-1]
        marked = np.flatnonzero(stops > before)  # the steps with base rows: the broker's
        if marked.size:
            moments = (
                clocks[k:j] if marked.size == j - k else [clocks[k + i] for i in marked.tolist()]
            )
            self.broker.on_quiet_rows(moments, self._rows, first, stops[marked])
        self.steps += j - k
        self._offset = ends[j - 1]
        self.ctx.clock = clocks[j - 1]
        self.broker.set_clock(clocks[j - 1])  # orders carry it, as after `__call__`

    def _view(self, start: int, stop: int) -> BarsView:
        """Return the step's rows as a `BarsView`, limited to ``ctx.universe`` with a scanner."""
        assert self._columns is not None  # set by on_session_start
        if self._allowed is not None:
            if self._dropped:
                self._release()
            keep = self._allowed[self._scodes[start:stop]]
            if not keep.all():
                return BarsView.window(self._columns, start, stop, np.flatnonzero(keep))
        return BarsView.window(self._columns, start, stop)

    def _scope(self, day: SessionDay) -> None:
        """Set the session's scope: the picked symbols and those still held or ordered."""
        if day.picked is None:
            self._allowed, self._dropped, self.ctx.scope = None, set(), None
            return
        self._scans.append(scans_frame(day.session, day.picked))
        ordered = {o.symbol for o in self.broker.working_orders()}
        self._dropped = (set(self.broker.holdings()) | ordered) - set(day.picked)
        self._set_scope(set(day.picked) | self._dropped)

    def _set_scope(self, names: set[str]) -> None:
        self.ctx.scope = tuple(s for s in self._universe if s in names)
        self._allowed = np.array([s in names for s in self._universe], dtype=bool)

    def _release(self) -> set[str]:
        """Drop held-over symbols that are now flat with no working order from the scope.

        Return the symbols dropped.
        """
        done = {
            s
            for s in self._dropped
            if not self.broker.position(s) and not self.broker.working_orders(s)
        }
        if done:
            self._dropped -= done
            self._set_scope(set(self.ctx.scope or ()) - done)
        return done

    def on_session_end(self, day: SessionDay) -> None:
        """Call the strategy's hook; record the positions at the session close."""
        with self._strategy_code("in on_session_end"):
            self.strategy.on_session_end(self.ctx)
            if self._vectorised is not None:
                self._vectorised.end_session()
        self.broker.end_session(day.close)
        # hold no session data between sessions (it would keep its chunk of bars alive)
        self._day, self._columns, self._rows = None, None, self._no_rows

    def on_run_end(self) -> None:
        """Write the results to the catalog; keep them for `results`."""
        self._final = None
        self._final = self.results()

    # --- results --------------------------------------------------------------------

    def results(self) -> dict[str, pl.DataFrame]:
        """Return the broker's record and write it to the catalog's tables.

        The frames are the catalog tables' (`pipeline.schema`), the broker's extra
        columns (``fills.slippage``, ``orders.filled_quantity`` ...) included, plus
        ``scans``. After the run ends
        (`on_run_end`) the same frames are returned without building them again.
        """
        if self._final is not None:
            return dict(self._final)
        frames = {
            "orders": self.broker.orders(),
            "fills": self.broker.fills(),
            "trades": self.broker.trades(),
            "positions": self.broker.positions(),
            "equity": self.broker.equity(),
            "scans": pl.concat(self._scans) if self._scans else pl.DataFrame(schema=SCANS),
        }
        for name in RESULT_TABLES:
            self.catalog.set_table(name, frames[name])
        return frames

    # --- the quality gate -----------------------------------------------------------

    def _gate(self, symbol: str) -> None:
        """Give the broker the session's base-interval quality of `symbol` now.

        From the stream's counters: that symbol's figure only. Without them (an engine
        driven by hand) every symbol's, from the catalog's ``quality`` table, once per clock.
        """
        day, clock = self._day, self.ctx.clock
        if day is None or clock is None:
            return
        if day.quality is not None:
            value = day.quality(clock, symbol)
            if value is not None:
                self.broker.set_quality({symbol: value})
            return
        if self._gated == clock:
            return
        self._gated = clock
        rows = self.catalog.table("quality").filter(
            (pl.col("session") == day.session)
            & (pl.col("interval") == day.base)
            & pl.col("quality").is_not_null()
        )
        names = rows.get_column("symbol").cast(pl.String).to_list()
        values = rows.get_column("quality").to_list()
        self.broker.set_quality(dict(zip(names, values, strict=True)))


def backtest(
    config: RunConfig,
    store: Store,
    catalog: Catalog | None = None,
    *,
    strategy: Strategy | None = None,
    subscribers: tuple[Subscriber, ...] = (),
) -> tuple[RunReport, dict[str, pl.DataFrame]]:
    """Run `config` over `store` with its strategy; return the run report and the results."""
    catalog = catalog or get_catalog()
    engine = Engine(config, catalog, strategy=strategy)
    report = Coordinator(config, store, catalog).run(subscribers, engine=engine)
    return report, engine.results()
