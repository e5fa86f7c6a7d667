"""The catalog: the run's tables in memory and one DuckDB connection over them (DESIGN §3).

`get_catalog()` returns the one process-wide `Catalog`. Each table of
`schema.CATALOG_TABLES` is a Polars frame registered zero-copy in DuckDB under its
fixed name; `session_bars` is a zero-copy slice ``[0, cursor)`` of the session table,
advanced by `Catalog.reveal`, plus bars added by `append_bar`. Every write and every
query holds one `threading.RLock`, so a reader in another thread sees a consistent
snapshot. Outside code reads; only the pipeline's own stages write. Registration is
lazy: a write marks its table dirty and the next query re-registers it (~1 ms).
The per-symbol API (`get_bars`, `get_latest_quote`, `get_quality`, ...) lives in
`pipeline._catalog_symbols`, a base class of `Catalog`.

Examples
--------
>>> cat = get_catalog()
>>> cat.sql("SELECT count(*) AS n FROM session_bars")["n"][0]
0
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import duckdb
import polars as pl

from pipeline import _catalog_tables as _t
from pipeline import schema
from pipeline._catalog_symbols import Quote, SymbolAPI
from pipeline._catalog_tables import HISTORY, INDICATORS, QUALITY, SESSION
from pipeline.errors import ConfigError, DataNotFoundError, QueryError, closest

__all__ = ["Catalog", "Quote", "check_session_order", "get_catalog", "reset_catalog"]

_ARROW = pl.CompatLevel.newest()  # string_view: Polars strings leave without a copy


class Catalog(SymbolAPI):
    """The run's tables, one DuckDB connection over them, and the session cursor.

    Use `get_catalog()`; construct one directly only in tests.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone='UTC'")
        self._enum: pl.Enum | None = None
        self._universe: tuple[str, ...] = ()
        self._members: frozenset[str] = frozenset()
        names = [n for n in schema.CATALOG_TABLES if n != SESSION]
        self._frames = {n: schema.empty(schema.CATALOG_TABLES[n]) for n in names}
        self._session = _t.SessionTable(schema.empty(schema.CATALOG_BARS))
        self._session_ind = _t.SessionTable(schema.empty(schema.INDICATORS))
        self._session_quality = schema.empty(schema.QUALITY)
        self._quality_source: Callable[[dt.datetime], pl.DataFrame] | None = None
        self._quality_built: tuple[int, dt.datetime | None] = (-1, None)
        self._history_index: _t.GroupIndex | None = None
        self._pending: dict[str, tuple[Callable[[], pl.DataFrame], bool]] = {}
        self._empties: dict[str, pl.DataFrame] = {}
        self._arrow: dict[str, Any] = {}  # what DuckDB scans: kept alive while registered
        self._extras: dict[str, Any] = {}
        self._dirty: set[str] = set(schema.CATALOG_TABLES)
        self._closed = False

    # -- universe and tables -----------------------------------------------------------

    @property
    def universe(self) -> tuple[str, ...]:
        """The run's symbols, sorted; empty when no universe is set."""
        return self._universe

    def set_universe(self, symbols: Iterable[str]) -> None:
        """Make the Enum of `symbols` the symbol dtype and cast every table to it.

        Raises `ConfigError` when `symbols` is empty or a table holds another symbol.
        """
        enum = schema.symbol_dtype(symbols)
        if enum.categories.len() == 0:
            raise ConfigError("The universe is empty: name at least one symbol.")
        with self._lock:
            self._session.flush(self._enum)
            for name in list(self._pending):
                self._frame(name)
            frames = {n: _t.cast_symbols(f, enum, f"table {n!r}") for n, f in self._frames.items()}
            self._session.cast(enum)
            self._session_ind.cast(enum)
            self._frames, self._enum = frames, enum
            self._empties.clear()
            self._universe = tuple(enum.categories.to_list())
            self._members = frozenset(self._universe)
            self._dirty.update(schema.CATALOG_TABLES)

    def tables(self) -> list[str]:
        """Return the names SQL can query: the catalog's tables, then the extras."""
        with self._lock:
            return [*schema.CATALOG_TABLES, *sorted(self._extras)]

    def table(self, name: str) -> pl.DataFrame:
        """Return a consistent snapshot of table `name` (session_bars: revealed + appended)."""
        _check_name(name)
        with self._lock:
            self._flush()
            return self._current(name).clone()  # shallow: shares buffers, edits stay local

    def set_table(self, name: str, frame: pl.DataFrame) -> None:
        """Replace table `name` by `frame`, schema-checked, symbols cast to the universe.

        `session_bars` is written by `load_session`, `reveal` and `append_bar` instead.
        """
        _check_name(name)
        if name == SESSION:
            raise ValueError("session_bars is written by load_session, reveal and append_bar.")
        with self._lock:
            self._write(name, self._conform(name, frame))

    def set_table_source(
        self, name: str, build: Callable[[], pl.DataFrame], *, conformed: bool = False
    ) -> None:
        """Replace table `name` by what `build()` returns, built on the table's first read.

        The flow hands each session's history, quality and figures this way: a run whose
        tables nobody reads between sessions never materialises them. `conformed` says
        the frame already has the table's schema with the universe's symbols (it is
        sliced from frames passed through `conform`); otherwise it is conformed when built.
        """
        _check_name(name)
        if name == SESSION:
            raise ValueError("session_bars is written by load_session, reveal and append_bar.")
        with self._lock:
            self._pending[name] = (build, conformed)
            self._dirty.add(name)
            if name == HISTORY:
                self._history_index = None

    def conform(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        """Return `frame` as table `name` holds it: checked, columns in order, symbols cast.

        Raise `SchemaMismatchError` on a missing, mistyped or extra column and `ConfigError`
        on a symbol outside the universe.
        """
        _check_name(name)
        with self._lock:
            return self._conform(name, frame)

    def append_table(self, name: str, frame: pl.DataFrame) -> None:
        """Append `frame` to table `name` (to session_bars: joins the appended bars)."""
        _check_name(name)
        with self._lock:
            rows = self._conform(name, frame)
            if name == SESSION:
                self._session.append(rows)
                self._dirty.add(SESSION)
            else:
                self._write(name, pl.concat([self._frame(name), rows], rechunk=False))

    def registered(self, name: str) -> Any:
        """Return the Arrow table DuckDB scans for `name`; it shares the frame's buffers."""
        with self._lock:
            self._sync()
            found = {**self._arrow, **self._extras}
            if name not in found:
                raise QueryError(f"No table {name!r} is registered: {closest(name, list(found))}")
            return found[name]

    # -- the session stream ------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """Rows of the session table revealed so far."""
        return self._session.cursor

    @property
    def clock(self) -> dt.datetime | None:
        """The last time passed to `reveal`; None before the first one."""
        return self._session.clock

    @contextlib.contextmanager
    def hold(self) -> Iterator[tuple[int, dt.datetime | None]]:
        """Hold the catalog still for a block of reads; yield the (cursor, clock) they see.

        `cursor` and `clock` alone are read without the lock, so a reader in another
        thread cannot tell which step a later query saw. Inside the block every read
        (`sql`, `get_bars`, `table` ...) sees the state the yielded pair names: the
        stream waits at its next reveal until the block ends, so keep it short.

        Examples
        --------
        >>> with get_catalog().hold() as (cursor, clock):
        ...     n = get_catalog().sql("SELECT count(*) AS n FROM session_bars")["n"][0]
        >>> n == cursor
        True
        """
        with self._lock:
            yield self._session.cursor, self._session.clock

    def load_session(
        self,
        frame: pl.DataFrame,
        indicators: pl.DataFrame | None = None,
        *,
        conformed: bool = False,
    ) -> None:
        """Take the whole session table (`CATALOG_BARS` sorted by available_at, symbol).

        `indicators` (`INDICATORS`, sorted the same way) are the session's indicator
        values; they join the `indicators` table as `reveal` passes their time. Nothing
        of either is visible before `reveal`; the previous session and appended bars go.
        `conformed`: the frames went through `conform` and `check_session_order` already
        (the loader does it once per chunk). Raises `ValueError` when a frame is not sorted.
        """
        with self._lock:
            self._session = _t.SessionTable(self._sorted(SESSION, frame, conformed))
            empty = self._empty(INDICATORS)
            values = self._sorted(
                INDICATORS, empty if indicators is None else indicators, conformed
            )
            self._session_ind = _t.SessionTable(values)
            self._dirty.update((SESSION, INDICATORS))

    def _sorted(self, name: str, frame: pl.DataFrame, conformed: bool = False) -> pl.DataFrame:
        return frame if conformed else check_session_order(self._conform(name, frame))

    def reveal(self, until: dt.datetime) -> pl.DataFrame:
        """Reveal the session rows with ``available_at <= until`` and return just those rows.

        O(log n + rows revealed): a binary search and a zero-copy slice. `until` must be
        tz-aware and not before `clock`. Session indicator values advance the same way.
        """
        return self.reveal_step(until)[0]

    def reveal_step(
        self, until: dt.datetime, observe: Callable[[int, int], None] | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Reveal bars and session indicators up to `until`; return the new rows of each.

        `observe(start, stop)` is called with the session-table rows just revealed, under
        the catalog's lock, so state it updates (the stream's quality counters) changes
        atomically with the cursor for readers in other threads.
        """
        with self._lock:
            start = self._session.cursor
            rows = self._session.reveal(until)
            values = self._session_ind.reveal(until)
            if observe is not None:
                observe(start, self._session.cursor)
            self._dirty.add(SESSION)
            if values.height:
                self._dirty.add(INDICATORS)
            if self._quality_source is not None:
                self._dirty.add(QUALITY)
            return rows, values

    def steps(self) -> _t.StepPlan:
        """Plan the rest of the session's stream: its timestamps and where their rows end.

        One NumPy pass over the session's times, so that `advance` costs O(1) a step.
        """
        with self._lock:
            quality = (QUALITY,) if self._quality_source is not None else ()
            return _t.plan_steps(self._session, self._session_ind, quality)

    def advance(self, plan: _t.StepPlan, k: int) -> tuple[int, int, int, int]:
        """Reveal step `k` of `plan` (from `steps`): move the cursors and the clock.

        The same as ``reveal(plan.clocks[k])`` without a search. Return the rows revealed:
        (start, stop) in the session table, then (start, stop) in its indicator values.
        """
        clock = plan.clocks[k]
        with self._lock:
            bars, values = self._session, self._session_ind
            if bars.frame is not plan.frame:
                raise ValueError("The step plan is of another session: call steps() again.")
            if bars.clock is not None and clock < bars.clock:
                raise ValueError(f"advance to {clock} goes back before the clock ({bars.clock}).")
            start, stop = bars.cursor, plan.ends[k]
            vstart, vstop = values.cursor, plan.value_ends[k]
            stop, vstop = max(start, stop), max(vstart, vstop)
            bars.cursor, bars.clock = stop, clock
            values.cursor, values.clock = vstop, clock
            self._dirty.update(plan.dirty if vstop > vstart else plan.dirty_bars)
            return start, stop, vstart, vstop

    def next_time(self) -> dt.datetime | None:
        """Return the next unrevealed ``available_at``; None when the session is done."""
        with self._lock:
            return self._session.next_time()

    def append_bar(self, symbol: str, interval: str, bar: Mapping[str, Any]) -> None:
        """Buffer one bar for `session_bars`; it joins the table at the next read.

        `bar` holds ``ts, open, high, low, close, volume``, optionally ``ts_close``
        (default ts + interval), ``available_at`` (default ts_close), ``n_src``, ``complete``.
        """
        row = _t.bar_row(self._symbol(symbol), _t.interval_key(interval), bar)
        with self._lock:
            self._session.buffer.append(row)

    def clear_session_bars(self) -> None:
        """Drop the session table, its indicators and quality, appended bars, cursor, clock."""
        with self._lock:
            self._session = _t.SessionTable(self._empty(SESSION))
            self._session_ind = _t.SessionTable(self._empty(INDICATORS))
            self._session_quality = self._empty(QUALITY)
            self._quality_source = None
            self._dirty.update((SESSION, INDICATORS, QUALITY))

    def clear_historical_bars(self) -> None:
        """Empty `history_bars` and what was computed from it: `quality`, `gaps`, `indicators`.

        Called between sessions, so nothing keeps the previous session's data alive.
        """
        with self._lock:
            for name in (HISTORY, QUALITY, "gaps", INDICATORS):
                self._write(name, self._empty(name))

    def set_session_quality(self, frame: pl.DataFrame) -> None:
        """Replace the current session's quality rows (shown after the history's in `quality`)."""
        with self._lock:
            self._session_quality = self._conform(QUALITY, frame)
            self._quality_source = None
            self._dirty.add(QUALITY)

    def set_session_quality_source(self, source: Callable[[dt.datetime], pl.DataFrame]) -> None:
        """Compute the session's quality rows on read, as ``source(clock)``.

        The stream passes its counters' frame builder, so a timestamp costs nothing
        here; the rows are built only when `quality` is read, once per clock.
        """
        with self._lock:
            self._quality_source = source
            self._quality_built = (-1, None)
            self._dirty.add(QUALITY)

    # -- SQL ---------------------------------------------------------------------------

    def sql(self, query: str, /, **params: object) -> pl.DataFrame:
        """Run one read-only DuckDB statement over every table, `params` bound by name.

        Raises `QueryError` for anything but one SELECT-type statement (SHOW, DESCRIBE
        and SUMMARIZE count as SELECT), or when DuckDB fails. Enum columns (``symbol``)
        come back as String.

        Examples
        --------
        >>> get_catalog().sql("SELECT * FROM session_bars WHERE symbol = $s", s="AAA").height
        0
        """
        with self._lock:
            self._sync()
            _t.refuse_unless_select(self._con, query)
            return _t.select(self._con, query, params)

    def register_extra(self, name: str, frame: pl.DataFrame) -> None:
        """Register `frame` zero-copy as `name` beside the tables (a store view, a calendar)."""
        if name in schema.CATALOG_TABLES:
            raise QueryError(f"{name!r} is a catalog table: give the extra another name.")
        with self._lock:
            self._sync()
            arrow = frame.to_arrow(compat_level=_ARROW)
            self._con.register(name, arrow)
            self._extras[name] = arrow

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield the raw connection, registrations in sync, holding the lock (internal use)."""
        with self._lock:
            self._sync()
            yield self._con

    def close(self) -> None:
        """Close the DuckDB connection and drop the registrations; later SQL is refused."""
        with self._lock:
            self._closed = True
            self._con.close()
            self._arrow.clear()
            self._extras.clear()

    # -- internals ---------------------------------------------------------------------

    def _symbol(self, symbol: str) -> str:
        if self._members and symbol not in self._members:
            raise DataNotFoundError(_t.unknown_symbols([symbol], self._universe, "Catalog"))
        return symbol

    def _conform(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        return _t.conform(frame, schema.CATALOG_TABLES[name], self._enum, f"table {name!r}")

    def _empty(self, name: str) -> pl.DataFrame:
        """Return the empty table `name` in the universe's dtypes (made once per universe)."""
        found = self._empties.get(name)
        if found is None:
            found = self._conform(name, schema.empty(schema.CATALOG_TABLES[name]))
            self._empties[name] = found
        return found

    def _frame(self, name: str) -> pl.DataFrame:
        """Return table `name`'s frame, building it first when a source is pending."""
        pending = self._pending.pop(name, None)
        if pending is not None:
            build, conformed = pending
            frame = build()
            self._frames[name] = frame if conformed else self._conform(name, frame)
        return self._frames[name]

    def _write(self, name: str, frame: pl.DataFrame) -> None:
        self._pending.pop(name, None)
        self._frames[name] = frame
        self._dirty.add(name)
        if name == HISTORY:
            self._history_index = None

    def _history(self) -> _t.GroupIndex:
        if self._history_index is None:
            self._history_index = _t.GroupIndex(self._frame(HISTORY))
        return self._history_index

    def _current(self, name: str) -> pl.DataFrame:
        """Return what table `name` shows now (session parts: revealed rows only)."""
        if name == SESSION:
            return self._session.snapshot()
        if name == QUALITY and self._quality_source is not None:
            self._build_session_quality()
        if name == QUALITY and self._session_quality.height:
            return pl.concat([self._frame(name), self._session_quality], rechunk=False)
        if name == INDICATORS and self._session_ind.cursor:
            revealed = self._session_ind.frame.slice(0, self._session_ind.cursor)
            return pl.concat([self._frame(name), revealed], rechunk=False)
        return self._frame(name)

    def _build_session_quality(self) -> None:
        clock = self._session.clock
        if self._quality_source is None or clock is None:
            return
        if self._quality_built != (self._session.cursor, clock):
            self._session_quality = self._conform(QUALITY, self._quality_source(clock))
            self._quality_built = (self._session.cursor, clock)

    def _flush(self) -> None:
        if self._session.flush(self._enum):
            self._dirty.add(SESSION)

    def _sync(self) -> None:
        if self._closed:
            raise QueryError("This catalog is closed (reset_catalog): call get_catalog() again.")
        self._flush()
        for name in sorted(self._dirty):
            arrow = self._current(name).to_arrow(compat_level=_ARROW)
            self._con.register(name, arrow)
            self._arrow[name] = arrow
        self._dirty.clear()


def check_session_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` in one chunk if sorted by (available_at, symbol) as `load_session` needs.

    One chunk, so the time column is one NumPy view. Raise `ValueError` naming the first
    row out of order, or a null time.
    """
    rows = frame.rechunk() if max(frame.n_chunks("all"), default=1) > 1 else frame
    _t.check_sorted(rows)
    return rows


def _check_name(name: str) -> None:
    if name not in schema.CATALOG_TABLES:
        hint = closest(name, list(schema.CATALOG_TABLES))
        raise QueryError(f"The catalog has no table {name!r}: {hint}")


def get_catalog() -> Catalog:
    """Return the process-wide catalog, creating it on first use (thread-safe)."""
    slot = _t.SINGLETON
    catalog: Catalog | None = slot.value
    if catalog is None:
        with slot.lock:
            if slot.value is None:
                slot.value = Catalog()
            catalog = slot.value
    return catalog


def reset_catalog() -> None:
    """Close the process-wide catalog; the next `get_catalog()` makes a new one (for tests)."""
    slot = _t.SINGLETON
    with slot.lock:
        if slot.value is not None:
            slot.value.close()
        slot.value = None
