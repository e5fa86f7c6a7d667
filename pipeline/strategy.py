"""The event-style strategy API: `Strategy`, what it sees (`Context`, `BarsView`), `load_strategy`.

A strategy is a class with three hooks, called by `pipeline.engine.Engine`:

- ``on_session_start(ctx)`` before a session streams;
- ``on_bars(ctx, bars)`` at each timestamp, with the rows that became visible then
  (base and derived intervals, all symbols) as a `BarsView`;
- ``on_session_end(ctx)`` after the session's last timestamp.

`Context` shows what is visible at its clock and nothing later (it reads the catalog)
and passes orders to the simulated broker. Strategies are named in a run config as
``module:Class`` or ``path/to/file.py:Class`` with their parameters.

Examples
--------
>>> class Buyer(Strategy):
...     def on_bars(self, ctx, bars):
...         if not ctx.position("ACME"):
...             ctx.market("ACME", 10)
>>> Buyer(size=10).params
{'size': 10}
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.catalog import Catalog, Quote
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.broker import Broker

__all__ = ["BarsView", "Context", "SessionColumns", "Strategy", "load_strategy"]


class Strategy:
    """Base class of event-style strategies; every hook is a no-op by default.

    Parameters arrive as keyword arguments (the config's ``params``) and are kept in
    `params`. A subclass names its parameters in its own ``__init__`` and passes them on.
    """

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    def on_session_start(self, ctx: Context) -> None:
        """Prepare for a session (called before its first timestamp)."""

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        """React to the rows that became visible at ``ctx.clock``."""

    def on_session_end(self, ctx: Context) -> None:
        """Finish a session (called after its last timestamp; orders fill next session)."""


# --- the bars of one step ------------------------------------------------------------


class SessionColumns:
    """A session table's columns as NumPy arrays, each made once on first read.

    The engine builds one per session and hands strategies `BarsView` windows on it,
    so a step costs array slices, not a frame. `symbol_codes` and `interval_codes` index
    into `universe` and `intervals`.
    """

    __slots__ = (
        "_arrays",
        "_lists",
        "interval_codes",
        "intervals",
        "symbol_codes",
        "table",
        "universe",
    )

    def __init__(
        self,
        table: pl.DataFrame,
        symbol_codes: npt.NDArray[np.integer[Any]],
        interval_codes: npt.NDArray[np.integer[Any]],
        universe: tuple[str, ...],
        intervals: tuple[str, ...],
    ) -> None:
        self.table = table
        self.symbol_codes, self.interval_codes = symbol_codes, interval_codes
        self.universe, self.intervals = universe, intervals
        self._arrays: dict[str, npt.NDArray[Any]] = {}
        self._lists: dict[str, list[Any]] = {}

    def values(self, name: str) -> list[Any]:
        """Return column `name` of the whole session as a Python list (made once).

        ``symbol`` and ``interval`` give their names; times are tz-aware datetimes.
        """
        found = self._lists.get(name)
        if found is None:
            if name not in self.table.columns:
                _column(self.table, name)  # raises, naming the columns
            found = self._lists[name] = self.table.get_column(name).to_list()
        return found

    def array(self, name: str) -> npt.NDArray[Any]:
        """Return column `name` of the whole session as a NumPy array (a view when it can)."""
        found = self._arrays.get(name)
        if found is None:
            found = _column(self.table, name)
            self._arrays[name] = found
        return found


def _column(df: pl.DataFrame, name: str) -> npt.NDArray[Any]:
    if name not in df.columns:
        raise AttributeError(f"The bars have no column {name!r}; columns: {', '.join(df.columns)}.")
    return df.get_column(name).to_numpy()


class BarsView:
    """The rows revealed at one timestamp: NumPy views of its columns, read lazily.

    ``bars.close`` (any numeric or time column by name) is a read-only NumPy view of the
    frame's buffer, made on first access; ``bars.symbol`` and ``bars.interval`` are
    integer codes into `universe` and `intervals`; ``bars.df`` is the Polars frame
    itself (a zero-copy slice of the session table). Nothing is built per step until
    a strategy reads it.
    """

    __slots__ = (
        "_cache",
        "_df",
        "_hi",
        "_icodes",
        "_intervals",
        "_keep",
        "_lo",
        "_scodes",
        "_src",
        "_universe",
    )

    def __init__(
        self,
        df: pl.DataFrame | None = None,
        *,
        symbol_codes: npt.NDArray[np.integer[Any]] | None = None,
        interval_codes: npt.NDArray[np.integer[Any]] | None = None,
        universe: tuple[str, ...] | None = None,
        intervals: tuple[str, ...] | None = None,
    ) -> None:
        self._df = df
        self._scodes, self._icodes = symbol_codes, interval_codes
        self._universe, self._intervals = universe, intervals
        self._cache: dict[str, npt.NDArray[Any]] = {}
        self._src: SessionColumns | None = None
        self._lo = self._hi = 0
        self._keep: npt.NDArray[np.intp] | None = None

    @classmethod
    def window(
        cls,
        source: SessionColumns,
        start: int,
        stop: int,
        keep: npt.NDArray[np.intp] | None = None,
    ) -> BarsView:
        """Return the view of session rows ``[start, stop)`` (only the `keep` ones of those)."""
        view = cls.__new__(cls)  # no __init__: this runs once per step
        view._df = view._scodes = view._icodes = None
        view._universe, view._intervals, view._cache = source.universe, source.intervals, {}
        view._src, view._lo, view._hi, view._keep = source, start, stop, keep
        return view

    def _rows(self, full: npt.NDArray[Any]) -> npt.NDArray[Any]:
        part = full[self._lo : self._hi]
        return part if self._keep is None else part[self._keep]

    @property
    def df(self) -> pl.DataFrame:
        """The rows as a Polars frame (a zero-copy slice of the session table)."""
        if self._df is None:
            assert self._src is not None
            frame = self._src.table.slice(self._lo, self._hi - self._lo)
            self._df = frame if self._keep is None else frame[self._keep]
        return self._df

    def __len__(self) -> int:
        if self._src is None:
            return self.df.height
        return self._hi - self._lo if self._keep is None else len(self._keep)

    def __getattr__(self, name: str) -> npt.NDArray[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.column(name)

    def column(self, name: str) -> npt.NDArray[Any]:
        """Return column `name` as a NumPy array (a view for numeric and time columns)."""
        found = self._cache.get(name)
        if found is None:
            if self._src is not None:
                found = self._rows(self._src.array(name))
            else:
                found = _column(self.df, name)
            self._cache[name] = found
        return found

    @property
    def open(self) -> npt.NDArray[np.float64]:
        """The rows' opens (a view)."""
        return self.column("open")

    @property
    def high(self) -> npt.NDArray[np.float64]:
        """The rows' highs (a view)."""
        return self.column("high")

    @property
    def low(self) -> npt.NDArray[np.float64]:
        """The rows' lows (a view)."""
        return self.column("low")

    @property
    def close(self) -> npt.NDArray[np.float64]:
        """The rows' closes (a view)."""
        return self.column("close")

    @property
    def volume(self) -> npt.NDArray[np.float64]:
        """The rows' volumes (a view)."""
        return self.column("volume")

    @property
    def universe(self) -> tuple[str, ...]:
        """The symbols `symbol` codes index into."""
        if self._universe is None:
            dtype = self.df.schema["symbol"]
            if isinstance(dtype, pl.Enum):
                self._universe = tuple(dtype.categories.to_list())
            else:
                self._universe = tuple(sorted(set(self.df.get_column("symbol").to_list())))
        return self._universe

    @property
    def intervals(self) -> tuple[str, ...]:
        """The intervals `interval` codes index into."""
        if self._intervals is None:
            self._intervals = tuple(sorted(set(self.df.get_column("interval").to_list())))
        return self._intervals

    @property
    def symbol(self) -> npt.NDArray[np.integer[Any]]:
        """The rows' symbols as codes into `universe`."""
        if self._scodes is None and self._src is not None:
            self._scodes = self._rows(self._src.symbol_codes)
        if self._scodes is None:
            names = self.df.get_column("symbol").cast(pl.String).to_list()
            where = {s: i for i, s in enumerate(self.universe)}
            self._scodes = np.array([where[s] for s in names], dtype=np.int64)
        return self._scodes

    @property
    def interval(self) -> npt.NDArray[np.integer[Any]]:
        """The rows' intervals as codes into `intervals`."""
        if self._icodes is None and self._src is not None:
            self._icodes = self._rows(self._src.interval_codes)
        if self._icodes is None:
            where = {s: i for i, s in enumerate(self.intervals)}
            names = self.df.get_column("interval").to_list()
            self._icodes = np.array([where[s] for s in names], dtype=np.int64)
        return self._icodes

    def values(self, name: str) -> list[Any]:
        """Return column `name` as a Python list (``symbol``, ``interval``: their names).

        For a step of a few rows, cheaper to read one by one than the NumPy view.
        """
        src = self._src
        if src is None:
            return self.df.get_column(name).to_list()
        rows = src.values(name)[self._lo : self._hi]
        return rows if self._keep is None else [rows[i] for i in self._keep.tolist()]

    def symbols(self) -> list[str]:
        """Return the rows' symbols as strings."""
        if self._src is not None:
            return self.values("symbol")
        universe = self.universe
        return [universe[int(c)] for c in self.symbol]

    def rows(self, interval: str | None = None, symbol: str | None = None) -> npt.NDArray[np.intp]:
        """Return the row numbers of `interval` and `symbol` (None: any)."""
        mask = np.ones(len(self), dtype=bool)
        if interval is not None:
            code = self.intervals.index(interval) if interval in self.intervals else -1
            mask &= self.interval == code
        if symbol is not None:
            code = self.universe.index(symbol) if symbol in self.universe else -1
            mask &= self.symbol == code
        return np.flatnonzero(mask)


# --- what a strategy sees and does -----------------------------------------------------


class Context:
    """What is visible at `clock` (read from the catalog) and the broker's order methods.

    `before_order(symbol)` runs before an order that may open or grow a position of
    `symbol` (the engine refreshes the broker's quality gate there).

    Every read is limited to rows with ``available_at <= clock``; the catalog already
    shows only revealed rows, and `bars` drops any appended row stamped later.

    `session` is the current session's date and `session_open` / `session_close` its
    regular hours from the run's exchange calendar (tz-aware UTC; an early close shows
    here), all set by the engine before ``on_session_start`` and None before the first
    session.
    """

    def __init__(
        self,
        catalog: Catalog,
        broker: Broker,
        *,
        base: str,
        before_order: Callable[[str], None] | None = None,
    ) -> None:
        self.catalog, self.broker, self.base = catalog, broker, base
        self.clock: dt.datetime | None = None
        self.session: dt.date | None = None
        self.session_open: dt.datetime | None = None
        self.session_close: dt.datetime | None = None
        self.scope: tuple[str, ...] | None = None
        self._before_order = before_order

    # -- data ----------------------------------------------------------------------

    @property
    def universe(self) -> tuple[str, ...]:
        """The symbols the strategy may act on now: the run's, or with a scanner `scope`.

        With a scanner the engine sets `scope` each session to the symbols picked for it
        and those still held (or with working orders) from earlier picks, until closed.
        """
        return self.catalog.universe if self.scope is None else self.scope

    def bars(self, symbol: str, interval: str, n: int | None = None) -> pl.DataFrame:
        """Return the visible bars of `symbol` `interval` by ts (the last `n` when given)."""
        bars = self.catalog.get_bars(symbol, interval)
        if bars.height and self.clock is not None:
            times = bars.get_column("available_at")
            latest = times.max()
            if isinstance(latest, dt.datetime) and latest > self.clock:
                bars = bars.filter(times <= self.clock)
        return bars if n is None else bars.tail(n)

    def latest(self, symbol: str, interval: str) -> dict[str, Any] | None:
        """Return the latest visible bar of `symbol` `interval` as a dict, or None."""
        bars = self.bars(symbol, interval, n=1)
        return bars.row(0, named=True) if bars.height else None

    def indicator(self, symbol: str, name: str, interval: str) -> float | None:
        """Return the latest visible value of session indicator `name` on `interval`."""
        return self.catalog.get_historical_indicator(symbol, name, interval)

    def historical(self, symbol: str, name: str) -> float | None:
        """Return historical indicator `name` (daily; a ``_profile`` name reads its minutes)."""
        interval = "1m" if name.endswith("_profile") else "1d"
        return self.catalog.get_historical_indicator(symbol, name, interval)

    def quality(self, symbol: str, interval: str | None = None) -> float | None:
        """Return the latest quality (0-100) of `symbol` `interval` (the base by default)."""
        return self.catalog.get_quality(symbol, interval or self.base)

    def quote(self, symbol: str) -> Quote | None:
        """Return the synthetic quote of the latest visible base bar (None before one)."""
        bar = self.latest(symbol, self.base)
        if bar is None:
            return None
        price = float(bar["close"])
        return Quote(symbol, bar["available_at"], price, price, 0.0, 0.0, "bar")

    # -- the account ----------------------------------------------------------------

    def position(self, symbol: str) -> float:
        """Return the signed quantity held in `symbol`."""
        return self.broker.position(symbol)

    @property
    def cash(self) -> float:
        """Cash now."""
        return self.broker.cash

    @property
    def equity(self) -> float:
        """Cash plus positions marked at their last close."""
        return self.broker.equity_value

    # -- orders -----------------------------------------------------------------------

    def market(self, symbol: str, quantity: float) -> int:
        """Place a market order (> 0 buys, < 0 sells); return its id."""
        self._ready(symbol, self.position(symbol) + quantity)
        return self.broker.market(symbol, quantity)

    def limit(self, symbol: str, quantity: float, price: float) -> int:
        """Place a limit order at `price`; return its id."""
        self._ready(symbol, self.position(symbol) + quantity)
        return self.broker.limit(symbol, quantity, price)

    def stop(self, symbol: str, quantity: float, price: float) -> int:
        """Place a stop order triggered at `price`; return its id."""
        self._ready(symbol, self.position(symbol) + quantity)
        return self.broker.stop(symbol, quantity, price)

    def target_quantity(self, symbol: str, quantity: float) -> int | None:
        """Order what moves `symbol` to `quantity` shares; None when already there."""
        self._ready(symbol, quantity)
        return self.broker.target_quantity(symbol, quantity)

    def target_percent(self, symbol: str, percent: float) -> int | None:
        """Order what makes `symbol` `percent` of equity (1.0 = 100%); None when there."""
        self._ready(symbol, math.copysign(math.inf, percent) if percent else 0.0)
        return self.broker.target_percent(symbol, percent)

    def cancel(self, order_id: int) -> int:
        """Cancel a working order; return its id."""
        return self.broker.cancel(order_id)

    def _ready(self, symbol: str, after: float) -> None:
        """Run the pre-order hook (the quality gate) unless the order can only reduce.

        An order that only reduces a position is never gated by the broker, so the
        (costly) quality read is skipped for it.
        """
        if self._before_order is None:
            return
        held = self.position(symbol)
        reduces = abs(after) <= abs(held) and after * held >= 0
        if not reduces or self.broker.has_working(symbol):
            self._before_order(symbol)


# --- naming strategies in config -------------------------------------------------------


def load_strategy(spec: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Import the class `spec` names and return it built with `params`.

    `spec` is ``module:Class`` or ``path/to/file.py:Class``. Raise `ConfigError` naming
    what was tried when the module, the file or the class cannot be found, when the
    class is not a `Strategy`, or when it refuses `params`.

    Examples
    --------
    >>> load_strategy("pipeline.strategies:MovingAverageCross", {"fast": 5}).fast
    5
    """
    where, sep, name = str(spec).rpartition(":")
    if not sep or not where or not name:
        raise ConfigError(
            f"strategy class {spec!r} is not 'module:Class' or 'path/to/file.py:Class'; "
            'write e.g. class = "pipeline.strategies:MovingAverageCross".'
        )
    module = _module(where, spec)
    cls = getattr(module, name, None)
    if cls is None:
        found = [n for n, v in vars(module).items() if inspect.isclass(v) and not n.startswith("_")]
        close = difflib.get_close_matches(name, found, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it defines: {', '.join(found)}"
        raise ConfigError(
            f"strategy {spec!r}: tried {where!r} (found) for class {name!r} (not there); {hint}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise ConfigError(
            f"strategy {spec!r}: {name!r} is not a subclass of pipeline.strategy.Strategy; "
            "derive it from Strategy."
        )
    return _build(cls, dict(params or {}), spec)


def _module(where: str, spec: str) -> Any:
    """Import a module by dotted name or a ``.py`` file by path."""
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(
                f"strategy {spec!r}: tried the file {str(path)!r}, which does not exist; "
                "give a path to a .py file (relative to the working directory) or a module name."
            )
        name = "_pipeline_strategy_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        loader = importlib.util.spec_from_file_location(name, path)
        if loader is None or loader.loader is None:  # pragma: no cover - a .py file loads
            raise ConfigError(f"strategy {spec!r}: cannot load {str(path)!r} as Python.")
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        loader.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"strategy {spec!r}: tried to import module {where!r}: {exc}. "
            "Check the module name, install its package, or give a file path instead."
        ) from exc


def _build(cls: type[Strategy], params: dict[str, Any], spec: str) -> Strategy:
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        accepted = ", ".join(str(p) for p in inspect.signature(cls).parameters.values())
        raise ConfigError(
            f"strategy {spec!r} does not take params {params}: {exc}. It accepts ({accepted})."
        ) from exc
    return cls(**params)
