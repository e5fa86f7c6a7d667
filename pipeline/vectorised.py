"""The vectorised strategy style: Polars expressions for entries/exits or a target position.

A vectorised strategy says *what* to hold as expressions over the bars of one
interval (columns of `pipeline.schema.CATALOG_BARS`: ``symbol``, ``ts``, ``open`` ...
``available_at``); `VectorisedRunner` (driven by `pipeline.engine.Engine`) decides
*when* it acts, through the same broker and at the same moments as an event-style
strategy:

1. at each session start the strategy's `Signals` are evaluated once over the bars
   carried from earlier sessions (the last `lookback` per symbol) and the session's
   bars of `interval`, in stream order, each expression wrapped in ``over("symbol")``
   (`evaluate`), so no symbol sees another's rows. With a `lookback` and no scanner,
   the sessions already loaded are evaluated together, each (symbol, session) a group
   of the same rows (`plan_sessions`): the same values, one Polars query per chunk of
   sessions instead of one per session;
2. each row's action stays attached to its bar: the runner acts on it at the stream
   step that reveals that bar (clock == its ``available_at``), after the broker has
   filled and marked that step, exactly where an event strategy's ``on_bars`` runs;
   market orders then fill at the next bar's open;
3. the first session is also evaluated on prefixes of itself (`check_causal`): an
   expression whose past values change when later rows are dropped (``shift(-1)``, a
   whole-column ``mean``) looks ahead and is refused;
4. with a scanner the strategy sees only its scope, as an event strategy does: the
   session's bars of the symbols in scope at its start (picked, or held from earlier
   picks) are evaluated, a row acts only while its symbol is in ``ctx.scope``, and the
   bars of a symbol after it left the scope (flat, no working order) are not carried.

Entries call ``ctx.target_percent(symbol, percent)``; exits call
``ctx.target_quantity(symbol, 0)`` when a position is held (a row with both is an
entry). A target is forward-filled per symbol and ordered where it changes.

Examples
--------
>>> @vectorised(interval="5m", lookback=1)
... def rising(step=0.0):
...     close = pl.col("close")
...     return Signals(entries=close > close.shift(1) + step, exits=close < close.shift(1))
>>> rising(step=0.5).params
{'step': 0.5}
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import operator
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline._crossover import TIE, check_cross, is_whole
from pipeline.errors import ConfigError
from pipeline.intervals import Interval
from pipeline.strategy import Context, Strategy

__all__ = [
    "Signals",
    "VectorisedMovingAverageCross",
    "VectorisedRunner",
    "VectorisedStrategy",
    "check_causal",
    "evaluate",
    "vectorised",
]

TargetKind = Literal["percent", "quantity"]
_ROW = "_row"  # the session-table row a bar came from (-1: carried from earlier sessions)
_ENTRY, _EXIT, _TARGET = "_entry", "_exit", "_target"
_SESSION, _POS = "_session", "_pos"  # a planned session's position; a row's within its symbol
_STATE = "_ma_state"
_CAUSAL_CUTS = 4  # prefixes of the first session checked for look-ahead
#: The per-session plans are small: optimizing them costs more than it saves (~0.25 ms
#: a session at one symbol).
_AS_WRITTEN = pl.QueryOptFlags.none()
#: Rows per session table (all intervals) up to which a strategy with a lookback plans
#: the loaded sessions at once: one query instead of one per session, ~2x faster at one
#: symbol, ~0.8x at 30 (its window functions over many groups cost more than the
#: per-query overhead saved).
PLAN_ROWS = 5_000


@dataclass(frozen=True)
class Signals:
    """What a vectorised strategy computes: `entries` / `exits`, or a `target`.

    `entries` and `exits` are boolean expressions; `target` a numeric one, a fraction
    of equity (``target_kind="percent"``, 1.0 = all-in) or a signed share count
    (``"quantity"``); null keeps the previous target. `columns` are helper columns
    (name -> expression) computed first, per symbol, that the others may read by name:
    an indicator used by both entries and exits is then computed once.
    """

    entries: pl.Expr | None = None
    exits: pl.Expr | None = None
    target: pl.Expr | None = None
    target_kind: TargetKind = "percent"
    columns: Mapping[str, pl.Expr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        has_flags = self.entries is not None or self.exits is not None
        if has_flags == (self.target is not None):
            raise ConfigError(
                "a vectorised strategy returns entries and/or exits, or a target, found "
                f"{'both' if has_flags else 'neither'}; e.g. Signals(entries=..., exits=...)."
            )
        if self.target_kind not in ("percent", "quantity"):
            raise ConfigError(
                f"Signals target_kind must be 'percent' or 'quantity', found {self.target_kind!r}."
            )


class VectorisedStrategy(Strategy):
    """Base class of vectorised strategies: override `entries`/`exits` or `target`.

    Class attributes (a subclass may set them per instance in ``__init__``):
    `interval` the bars the expressions read; `lookback` how many bars per symbol to
    carry into the next session (None: every bar so far; a strategy whose windows are
    bounded sets it to its longest window, e.g. ``slow`` for SMA(slow) crossings);
    `percent` the target of an entry; `target_kind` what a `target` means.
    """

    interval: str = "1m"
    lookback: int | None = None
    percent: float = 1.0
    target_kind: TargetKind = "percent"

    def entries(self) -> pl.Expr | None:
        """Return a boolean expression: True where the strategy goes in (None: never)."""
        return None

    def exits(self) -> pl.Expr | None:
        """Return a boolean expression: True where the strategy goes flat (None: never)."""
        return None

    def target(self) -> pl.Expr | None:
        """Return the target position per row (None: this strategy uses entries/exits)."""
        return None

    def columns(self) -> dict[str, pl.Expr]:
        """Return helper columns computed first, per symbol (see `Signals.columns`)."""
        return {}

    def signals(self) -> Signals:
        """Return the strategy's expressions (from `entries`, `exits`, `target`, `columns`)."""
        return Signals(
            self.entries(), self.exits(), self.target(), self.target_kind, self.columns()
        )


def vectorised(
    interval: str = "1m",
    *,
    lookback: int | None = None,
    percent: float = 1.0,
    target_kind: TargetKind = "percent",
) -> Callable[[Callable[..., Signals]], type[VectorisedStrategy]]:
    """Turn a function returning `Signals` into a `VectorisedStrategy` class.

    The function's keyword parameters become the strategy's ``params`` (so a config
    can name it as ``module:function`` with ``params``).
    """
    Interval.parse(interval)

    def wrap(fn: Callable[..., Signals]) -> type[VectorisedStrategy]:
        signature = inspect.signature(fn)

        def __init__(self: VectorisedStrategy, **params: Any) -> None:
            signature.bind(**params)
            Strategy.__init__(self, **params)

        def signals(self: VectorisedStrategy) -> Signals:
            found = fn(**self.params)
            if not isinstance(found, Signals):
                raise ConfigError(
                    f"vectorised strategy {fn.__name__!r} returned {type(found).__name__}; "
                    "return Signals(entries=..., exits=...) or Signals(target=...)."
                )
            return found

        me = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[me, *signature.parameters.values()], return_annotation=None
        )
        namespace = {
            "__init__": __init__,
            "signals": signals,
            "__doc__": fn.__doc__,
            "__module__": fn.__module__,
            "__qualname__": fn.__qualname__,
            "interval": str(Interval.parse(interval)),
            "lookback": lookback,
            "percent": percent,
            "target_kind": target_kind,
        }
        return type(fn.__name__, (VectorisedStrategy,), namespace)

    return wrap


class VectorisedMovingAverageCross(VectorisedStrategy):
    """The vectorised twin of `pipeline.strategies.MovingAverageCross` (same orders).

    SMA(fast) and SMA(slow) of the closes of `interval` bars (``rolling_mean`` per
    symbol, across sessions, history not read); ``state`` is the sign of their
    difference, 0 within 1e-9 of SMA(slow); an entry is ``state`` -1 at the previous
    bar and +1 now, an exit +1 then -1. `symbol` limits it to one symbol.
    """

    def __init__(
        self,
        fast: int = 10,
        slow: int = 30,
        interval: str = "1m",
        symbol: str | None = None,
        percent: float = 1.0,
    ) -> None:
        checked = check_cross("VectorisedMovingAverageCross", fast, slow, interval, percent)
        super().__init__(fast=fast, slow=slow, interval=interval, symbol=symbol, percent=percent)
        self.fast, self.slow, self.interval, self.percent = checked
        self.symbol, self.lookback = symbol, self.slow

    def columns(self) -> dict[str, pl.Expr]:
        """Return the crossing state: the sign of SMA(fast) - SMA(slow), 0 on a tie."""
        close = pl.col("close")
        fast, slow = close.rolling_mean(self.fast), close.rolling_mean(self.slow)
        diff = fast - slow
        return {_STATE: pl.when(diff.abs() <= TIE * slow.abs()).then(0).otherwise(diff.sign())}

    def _cross(self, before: int) -> pl.Expr:
        state = pl.col(_STATE)
        cross = (state.shift(1) == before) & (state == -before)
        if self.symbol is not None:
            cross &= pl.col("symbol").cast(pl.String) == self.symbol
        return cross

    def entries(self) -> pl.Expr:
        """Return where SMA(fast) crosses above SMA(slow)."""
        return self._cross(-1)

    def exits(self) -> pl.Expr:
        """Return where SMA(fast) crosses below SMA(slow)."""
        return self._cross(1)


# --- evaluating ------------------------------------------------------------------------


def evaluate(bars: pl.LazyFrame, signals: Signals, by: str | list[str] = "symbol") -> pl.LazyFrame:
    """Add the raw signal columns ``_entry``, ``_exit``, ``_target``, evaluated per symbol.

    `bars` are one interval's bars in stream order; every expression is wrapped in
    ``over(by)`` (the symbol, or the symbol and more), so a row's value only depends on
    its group's rows. The helper `Signals.columns` are added first.
    """

    def per_symbol(expr: pl.Expr | None, dtype: pl.DataType) -> pl.Expr:
        return pl.lit(None, dtype) if expr is None else expr.over(by).cast(dtype)

    helpers = [expr.over(by).alias(name) for name, expr in signals.columns.items()]
    return bars.with_columns(*helpers).with_columns(
        per_symbol(signals.entries, pl.Boolean()).fill_null(False).alias(_ENTRY),
        per_symbol(signals.exits, pl.Boolean()).fill_null(False).alias(_EXIT),
        per_symbol(signals.target, pl.Float64()).alias(_TARGET),
    )


def _actions(
    evaluated: pl.LazyFrame, signals: Signals, by: str | list[str] = "symbol"
) -> pl.LazyFrame:
    """Keep the rows that act, with ``_action``: +1 entry, -1 exit, or the new target."""
    if signals.target is None:
        action = pl.when(pl.col(_ENTRY)).then(1.0).when(pl.col(_EXIT)).then(-1.0).otherwise(None)
    else:
        held = pl.col(_TARGET).forward_fill().over(by)
        before = pl.col(_TARGET).forward_fill().shift(1).over(by)
        changed = held.is_not_null() & held.ne_missing(before)
        action = pl.when(changed).then(held).otherwise(None)
    return evaluated.with_columns(action.alias("_action")).filter(pl.col("_action").is_not_null())


def check_causal(bars: pl.DataFrame, signals: Signals, cuts: int = _CAUSAL_CUTS) -> None:
    """Raise `ConfigError` when `signals` at a row change once later rows are dropped.

    `bars` (sorted by ``available_at``) are evaluated whole and cut at `cuts` points;
    each cut keeps the rows visible at a time, as the stream would have shown them.
    """
    columns = [_ENTRY, _EXIT, _TARGET]
    full = evaluate(bars.lazy(), signals).collect()
    times = bars.get_column("available_at")
    for k in range(1, cuts + 1):
        cut = times[min(bars.height - 1, k * bars.height // (cuts + 1))]
        part = evaluate(bars.lazy().filter(pl.col("available_at") <= cut), signals).collect()
        seen = full.head(part.height)
        same = functools.reduce(
            operator.and_, (seen.get_column(c).eq_missing(part.get_column(c)) for c in columns)
        )
        bad = seen.select("symbol", "ts").filter(~same)
        if bad.height:
            raise _look_ahead(bad.row(0), cut)


def _look_ahead(row: tuple[Any, ...], cut: dt.datetime) -> ConfigError:
    symbol, ts = row
    return ConfigError(
        f"the vectorised strategy looks ahead: its signal for {symbol} at {ts:%Y-%m-%d %H:%M} "
        f"changes when the bars after {cut:%Y-%m-%d %H:%M} are dropped. Use only past rows "
        "(shift(n) with n >= 0, rolling_*, cum_*), not shift(-n) or whole-column aggregates."
    )


# --- acting ----------------------------------------------------------------------------


class VectorisedRunner:
    """Evaluate a vectorised strategy once per session and place its orders on time.

    `start_session(table, scope)` evaluates the session (the engine passes its session
    table and, with a scanner, the symbols in scope; the strategy only ever sees it
    through its own expressions); `act(ctx, stop)` places the orders of every acting
    row among the table rows revealed so far (rows before `stop`), in table order, of
    the symbols in ``ctx.scope``; `leave(symbols, row)` drops the bars of symbols
    that left the scope from table row `row` on; `end_session` keeps the bars to
    carry. With `check`, the first session is checked for look-ahead (`check_causal`).

    Given `ahead` (the tables of this session and the later ones already loaded), a
    strategy with a `lookback` and no scope plans those sessions at once
    (`plan_sessions`) and takes each session's acting rows from the plan as it starts.
    """

    def __init__(self, strategy: VectorisedStrategy, *, check: bool = True) -> None:
        self.strategy = strategy
        self.signals = strategy.signals()
        if not isinstance(self.signals, Signals):
            raise ConfigError(
                f"{type(strategy).__name__}.signals() returned {type(self.signals).__name__}; "
                "return Signals(entries=..., exits=...) or Signals(target=...)."
            )
        self.interval = str(Interval.parse(strategy.interval))
        self._check = check
        self._tail: pl.DataFrame | None = None  # the bars carried into this session
        self._carry: pl.DataFrame | None = None  # the bars to carry, unless some left the scope
        self._frame: pl.LazyFrame | None = None  # the bars evaluated this session
        self._left: dict[str, int] = {}  # symbol -> the table row it left the scope at
        self._rows: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._values: list[float] = []
        self._symbols: list[str] = []
        self._next = 0
        #: Sessions planned ahead, in order: (session, table height, acting rows).
        self._planned: deque[tuple[dt.date, int, pl.DataFrame]] = deque()
        self._plans: bool = strategy.lookback is not None  # may still plan sessions ahead

    def start_session(
        self,
        table: pl.DataFrame,
        scope: Collection[str] | None = None,
        *,
        session: dt.date | None = None,
        ahead: Callable[[], list[tuple[dt.date, pl.DataFrame]]] | None = None,
    ) -> None:
        """Evaluate the strategy over the carried bars and `table`'s bars of its interval.

        With `scope`, only the session bars of those symbols are evaluated (and carried).
        The acting rows and the bars to carry are computed in one collect. With `ahead`
        (and `session`, the day of `table`), the session comes from a plan of the
        sessions loaded, made now when there is none (`plan_sessions`).
        """
        if self._frame is not None:
            self.end_session()
        if not self._planned and self._plans and ahead is not None and scope is None:
            self._plan_ahead(ahead)
        if self._planned:
            self._take_planned(table, session)
            return
        bars = _rows_of(table, self.interval)
        if scope is not None:
            bars = bars.filter(pl.col("symbol").cast(pl.String).is_in(list(scope)))
        frame = bars if self._tail is None else pl.concat([self._tail.lazy(), bars])
        if self._check:
            evaluated = frame.collect()
            if evaluated.height > (0 if self._tail is None else self._tail.height):
                check_causal(evaluated, self.signals)
                self._check = False
            frame = evaluated.lazy()
        acting_plan = (
            _actions(evaluate(frame, self.signals), self.signals)
            .filter(pl.col(_ROW) >= 0)
            .select(_ROW, pl.col("symbol").cast(pl.String), "_action")
        )
        plans = [acting_plan, _tail(frame, self.strategy.lookback)]
        acting, self._carry = pl.collect_all(plans, engine="in-memory", optimizations=_AS_WRITTEN)
        self._rows = acting.get_column(_ROW).to_numpy()
        self._symbols = acting.get_column("symbol").to_list()
        self._values = acting.get_column("_action").to_list()
        self._next, self._frame, self._left = 0, frame, {}

    def _plan_ahead(self, ahead: Callable[[], list[tuple[dt.date, pl.DataFrame]]]) -> None:
        """Plan the loaded sessions when that is cheaper than one evaluation per session.

        Only while the tables are small (`PLAN_ROWS`): once the loaded sessions hold more
        rows, each session is evaluated on its own for the rest of the run (without a
        scanner its universe stays the same).
        """
        if self._check:  # the first session is evaluated (and checked) on its own
            return
        sessions = ahead()
        if len(sessions) < 2:
            return
        self._plans = sum(t.height for _, t in sessions) <= PLAN_ROWS * len(sessions)
        if self._plans:
            self.plan_sessions(sessions)

    def plan_sessions(self, sessions: Sequence[tuple[dt.date, pl.DataFrame]]) -> None:
        """Evaluate `sessions` (their tables, in order) at once, as many `start_session` calls.

        Each (symbol, session) is a group of the rows a per-session evaluation reads: the
        symbol's last `lookback` bars before the session, then its session bars, in the
        same order, so each expression sees the same values. The bars to carry after the
        last session are kept, as `end_session` would.
        """
        lookback = self.strategy.lookback
        if lookback is None or self._check:
            raise ValueError("plan_sessions needs a lookback and the first session checked")
        parts = [
            _rows_of(table, self.interval).with_columns(pl.lit(i, pl.Int32).alias(_SESSION))
            for i, (_, table) in enumerate(sessions)
        ]
        if self._tail is not None:
            parts.insert(0, self._tail.lazy().with_columns(pl.lit(-1, pl.Int32).alias(_SESSION)))
        seen = (
            pl.concat(parts)
            .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("symbol").alias(_POS))
            .collect(engine="in-memory")
        )
        grouped = _with_lookback(seen, lookback)
        by = ["symbol", _SESSION]
        acting_plan = (
            _actions(evaluate(grouped, self.signals, by), self.signals, by)
            .filter(pl.col(_ROW) >= 0)
            .select(_SESSION, _ROW, pl.col("symbol").cast(pl.String), "_action")
        )
        carry_plan = _tail(seen.lazy().drop(_SESSION, _POS), lookback)
        acting, self._tail = pl.collect_all(
            [acting_plan, carry_plan], engine="in-memory", optimizations=_AS_WRITTEN
        )
        by_session = acting.partition_by(_SESSION, as_dict=True, maintain_order=True)
        empty = acting.clear()
        for i, (day, table) in enumerate(sessions):
            self._planned.append((day, table.height, by_session.get((i,), empty)))

    def _take_planned(self, table: pl.DataFrame, session: dt.date | None) -> None:
        """Start the next planned session: it must be `session`, with `table`'s height."""
        day, height, acting = self._planned.popleft()
        if (session is not None and day != session) or height != table.height:
            self._planned.clear()
            raise RuntimeError(
                f"the vectorised plan expected session {day} ({height} rows), the stream "
                f"started {session} ({table.height} rows): sessions must stream in order."
            )
        self._rows = acting.get_column(_ROW).to_numpy()
        self._symbols = acting.get_column("symbol").to_list()
        self._values = acting.get_column("_action").to_list()
        self._next, self._frame, self._left = 0, None, {}

    def act(self, ctx: Context, stop: int) -> None:
        """Place the orders of the acting rows before table row `stop` not yet acted on.

        A row whose symbol is not in ``ctx.scope`` (when set) places no order.
        """
        rows, i = self._rows, self._next
        if i >= rows.size or rows[i] >= stop:
            return
        scope = None if ctx.scope is None else set(ctx.scope)
        while i < rows.size and rows[i] < stop:
            symbol = self._symbols[i]
            if scope is None or symbol in scope:
                self._place(ctx, symbol, self._values[i])
            i += 1
        self._next = i

    def next_row(self) -> int | None:
        """Return the table row of the next acting row not yet acted on (None: no more)."""
        return int(self._rows[self._next]) if self._next < self._rows.size else None

    def leave(self, symbols: Collection[str], row: int) -> None:
        """Forget the session bars of `symbols` from table row `row` on (they left the scope)."""
        for symbol in symbols:
            self._left.setdefault(symbol, row)

    def end_session(self) -> None:
        """Keep the last `lookback` bars per symbol, of those seen, for the next session."""
        frame, self._frame = self._frame, None
        if frame is None:
            return
        if not self._left:
            self._tail = self._carry  # computed with the session's actions
            return
        cut = (
            pl.col("symbol")
            .cast(pl.String)
            .replace_strict(self._left, default=None, return_dtype=pl.Int64())
        )
        seen = frame.filter(cut.is_null() | (pl.col(_ROW) < cut))
        self._tail = _tail(seen, self.strategy.lookback).collect()

    def _place(self, ctx: Context, symbol: str, value: float) -> None:
        if self.signals.target is not None:
            if self.signals.target_kind == "quantity" or value == 0:
                ctx.target_quantity(symbol, value)
            else:
                ctx.target_percent(symbol, value)
        elif value > 0:
            ctx.target_percent(symbol, self.strategy.percent)
        elif ctx.position(symbol) != 0:
            ctx.target_quantity(symbol, 0)


def _rows_of(table: pl.DataFrame, interval: str) -> pl.LazyFrame:
    """Return the session table's bars of `interval`, each with its table row (``_row``)."""
    return (
        table.lazy()
        .with_row_index(_ROW)
        .with_columns(pl.col(_ROW).cast(pl.Int64))
        .filter(pl.col("interval") == interval)
    )


def _with_lookback(seen: pl.DataFrame, lookback: int) -> pl.LazyFrame:
    """Return each planned session's rows after its symbol's `lookback` bars before it.

    `seen` holds the carried bars (session -1) and the planned sessions' bars in stream
    order, with each row's position within its symbol (``_pos``, dropped). The bars
    before a session are copied into its group (as carried rows, ``_row`` -1), first.
    """
    first = pl.col(_POS)
    before = (
        seen.lazy()
        .filter(pl.col(_SESSION) >= 0)
        .group_by("symbol", _SESSION, maintain_order=True)
        .agg(first.min())
        .select("symbol", _SESSION, pl.int_ranges(pl.max_horizontal(first - lookback, 0), first))
        .explode(_POS)
        .drop_nulls(_POS)
        .join(seen.lazy().drop(_SESSION), on=["symbol", _POS], maintain_order="left")
        .with_columns(pl.lit(-1, pl.Int64).alias(_ROW))
        .select(seen.columns)
    )
    return pl.concat([before, seen.lazy().filter(pl.col(_SESSION) >= 0)]).drop(_POS)


def _tail(frame: pl.LazyFrame, lookback: int | None) -> pl.LazyFrame:
    """Return the last `lookback` rows of each symbol (all rows when None), to carry.

    Rows stay in `frame`'s order within each symbol (what the per-symbol expressions
    read); carried rows are marked as coming from no table row (-1).
    """
    if lookback is not None and not (is_whole(lookback) and lookback >= 0):
        raise ConfigError(
            f"a vectorised strategy's lookback must be a whole number >= 0 or None, found "
            f"{lookback!r}; set it to the longest window its expressions read."
        )
    if lookback is not None:  # signed: a symbol with fewer rows keeps them all
        rank = pl.int_range(pl.len(), dtype=pl.Int64).over("symbol")
        frame = frame.filter(rank >= pl.len().over("symbol").cast(pl.Int64) - lookback)
    return frame.with_columns(pl.lit(-1, pl.Int64).alias(_ROW))
