"""Private helpers of `pipeline.catalog`: frame conforming, the session index, SQL guards.

The only module-level state is `SINGLETON`, the process-wide slot of the catalog. It
lives here (always imported under its canonical name) so that even a second import of
``catalog.py`` under another module name finds the same instance.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline import schema
from pipeline.errors import ConfigError, QueryError, closest
from pipeline.intervals import Interval

T = TypeVar("T")

#: The catalog tables the flow writes most, by name.
HISTORY, SESSION, INDICATORS, QUALITY = "history_bars", "session_bars", "indicators", "quality"
BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")
OPTIONAL_BAR_FIELDS = ("session", "ts_close", "available_at", "n_src", "complete")
SORT = ["available_at", "symbol", "interval"]
_SHOWN_SYMBOLS = 20


@dataclass
class Slot(Generic[T]):
    """A lazily filled, lock-protected slot for one process-wide object."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    value: T | None = None


SINGLETON: Slot[Any] = Slot()


def universe_text(universe: Sequence[str]) -> str:
    """Return the universe as a short list for messages (the first 20 symbols and a count)."""
    shown = ", ".join(universe[:_SHOWN_SYMBOLS])
    more = len(universe) - _SHOWN_SYMBOLS
    return shown + (f" and {more} more" if more > 0 else "")


def unknown_symbols(symbols: Sequence[str], universe: Sequence[str], where: str) -> str:
    """Build the message for symbols outside the run's universe."""
    names = ", ".join(repr(s) for s in symbols[:_SHOWN_SYMBOLS])
    hint = closest(symbols[0], list(universe))
    hint = hint[0].upper() + hint[1:] + " " if hint.startswith("did you mean") else ""
    return (
        f"{where}: symbol {names} is not in the run's universe ({universe_text(universe)}). "
        f"{hint}Add it to the universe or fix the symbol."
    )


def interval_key(interval: str | Interval) -> str:
    """Return the canonical text of an interval (``60m`` -> ``1h``)."""
    return str(Interval.parse(interval))


def conform(
    frame: pl.DataFrame, table_schema: Mapping[str, pl.DataType], enum: pl.Enum | None, what: str
) -> pl.DataFrame:
    """Return `frame` with exactly the columns of `table_schema`, symbols in the universe dtype.

    Raise `SchemaMismatchError` on a missing, mistyped or extra column and `ConfigError`
    on a symbol outside the universe.
    """
    schema.check(frame, table_schema, what)
    extra = [c for c in frame.columns if c not in table_schema]
    if extra:
        raise schema.SchemaMismatchError(
            f"{what}: unexpected columns {extra}; a catalog table holds exactly the columns "
            "that schema.py gives it."
        )
    have = frame.schema
    if frame.columns != list(table_schema):
        # Columns picked as Series, not by a query: a query waits for Polars' thread
        # pool, which a chunk loading in the background may keep busy for a while.
        frame = pl.DataFrame([frame.get_column(c) for c in table_schema])
    strings = [
        pl.col(c).cast(pl.String)
        for c, dtype in table_schema.items()
        if dtype == pl.String and have[c] != pl.String and c != "symbol"
    ]
    if strings:
        frame = frame.with_columns(strings)
    return cast_symbols(frame, enum, what)


def cast_symbols(frame: pl.DataFrame, enum: pl.Enum | None, what: str) -> pl.DataFrame:
    """Cast the ``symbol`` column to the universe Enum (String when there is no universe)."""
    if "symbol" not in frame.columns:
        return frame
    target: pl.DataType = pl.String() if enum is None else enum
    if frame.schema["symbol"] == target:
        return frame
    as_text = frame.get_column("symbol").cast(pl.String)
    if enum is not None:
        found = as_text.unique().drop_nulls()
        bad = found.filter(~found.is_in(enum.categories.implode())).sort().to_list()
        if bad:
            raise ConfigError(unknown_symbols(bad, enum.categories.to_list(), what))
    return frame.with_columns(as_text.cast(target))


def check_sorted(frame: pl.DataFrame) -> None:
    """Raise `ValueError` unless `frame` is sorted by (available_at, symbol) without null times."""
    times = frame.get_column("available_at")
    if times.null_count():
        raise ValueError("Session table: available_at has nulls; every bar needs a time.")
    symbols = frame.get_column("symbol")
    if isinstance(symbols.dtype, pl.Enum):  # codes in universe order: one NumPy pass
        when = schema.micros(times)
        sym = symbols.to_physical().to_numpy().astype(np.int64)
        step = np.diff(when)
        bad = np.flatnonzero((step < 0) | ((step == 0) & (np.diff(sym) < 0))) + 1
    else:
        at, name = pl.col("available_at"), pl.col("symbol")
        later = at > at.shift(1)
        tied = (at == at.shift(1)) & (name >= name.shift(1))
        bad = frame.select((later | tied).fill_null(True).not_().arg_true()).to_series().to_numpy()
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"Session table is not sorted by (available_at, symbol): row {row} "
            f"{frame.row(row, named=True)} comes after row {row - 1}. "
            "Sort it with .sort(['available_at', 'symbol', 'interval']) before load_session."
        )


def micros(moment: dt.datetime) -> int:
    """Return `moment` as microseconds since the epoch; refuse naive datetimes."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} is naive: pass a tz-aware datetime (UTC), e.g. tzinfo=UTC.")
    return schema.moment_micros(moment)


class GroupIndex:
    """Row numbers of a frame grouped by (symbol, interval), ascending within each group.

    One UInt32 per row: an index, not a copy of the data. Lookups cost O(1) plus the
    rows returned. `keys` names other grouping columns (``symbol`` first).
    """

    def __init__(self, frame: pl.DataFrame, keys: Sequence[str] = ("symbol", "interval")) -> None:
        groups = (
            frame.select(*keys)
            .with_row_index("row")
            .group_by(*keys)
            .agg(pl.col("row").sort(), n=pl.len())
        )
        self._order: npt.NDArray[np.uint32] = groups.get_column("row").explode().to_numpy()
        ends = groups.get_column("n").cum_sum().to_list()
        names = groups.select(pl.col("symbol").cast(pl.String), *keys[1:]).rows()
        counts = groups.get_column("n").to_list()
        self._bounds: dict[tuple[str, ...], tuple[int, int]] = {
            key: (end - n, end) for key, end, n in zip(names, ends, counts, strict=True)
        }
        self._intervals: dict[str, set[str]] = {}
        for s, i, *_ in self._bounds:
            self._intervals.setdefault(s, set()).add(i)

    def rows(self, key: tuple[str, ...], below: int | None = None) -> npt.NDArray[np.uint32]:
        """Return the row numbers of `key`, only those < `below` when given."""
        start, end = self._bounds.get(key, (0, 0))
        rows = self._order[start:end]
        return rows if below is None else rows[: int(np.searchsorted(rows, below))]

    def intervals(self, symbol: str) -> set[str]:
        """Return the intervals that hold rows of `symbol`."""
        return set(self._intervals.get(symbol, ()))


@dataclass(frozen=True)
class StepPlan:
    """The timestamps left in a session and, per timestamp, where its rows end.

    `ends[k]` is one past the last session-table row of step k, `value_ends[k]` the same
    in the indicator values; `frame` and `values` are the frames those rows belong to.
    """

    clocks: list[dt.datetime]
    ends: list[int]
    value_ends: list[int]
    frame: pl.DataFrame
    values: pl.DataFrame
    #: The tables a step changes: with new indicator values, and without.
    dirty: frozenset[str] = frozenset()
    dirty_bars: frozenset[str] = frozenset()


def plan_steps(bars: SessionTable, values: SessionTable, dirty: Iterable[str] = ()) -> StepPlan:
    """Return the `StepPlan` of the unrevealed rows of `bars` (and of `values` with them).

    `dirty` names the tables every step changes besides the session's own two.
    """
    times = bars.times[bars.cursor :]
    marks = frozenset(("session_bars", *dirty))
    if not times.size:
        return StepPlan([], [], [], bars.frame, values.frame, marks | {"indicators"}, marks)
    change = np.flatnonzero(times[1:] != times[:-1]) + 1
    firsts = times[np.concatenate(([0], change))]
    ends = (np.append(change, times.size) + bars.cursor).tolist()
    value_ends = np.searchsorted(values.times, firsts, side="right").tolist()
    clocks = schema.moments_of(firsts)
    return StepPlan(
        clocks, ends, value_ends, bars.frame, values.frame, marks | {"indicators"}, marks
    )


#: An indicator-values index: rows by (symbol, name, interval), the values, their nulls.
_ValueIndex = tuple[GroupIndex, npt.NDArray[np.float64], npt.NDArray[np.bool_]]


class SessionTable:
    """The session table, its reveal cursor, and bars appended on top (the catalog locks)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.times: npt.NDArray[np.int64] = schema.micros(frame.get_column("available_at"))
        self.cursor = 0
        self.clock: dt.datetime | None = None
        self.buffer: list[dict[str, Any]] = []
        self.appended = frame.clear()
        self._index: GroupIndex | None = None
        self._values: tuple[GroupIndex, npt.NDArray[np.float64], npt.NDArray[np.bool_]] | None = (
            None
        )

    @property
    def index(self) -> GroupIndex:
        """The (symbol, interval) index of the whole session table, built on first use."""
        if self._index is None:
            self._index = GroupIndex(self.frame)
        return self._index

    def latest_value(self, key: tuple[str, str, str]) -> tuple[bool, float | None]:
        """Of an indicator-values table: the revealed value of (symbol, name, interval) last.

        Return (found, value); value is None for a null. The index is built on first use.
        """
        if self._values is None:
            column = self.frame.get_column("value")
            index = GroupIndex(self.frame, ("symbol", "name", "interval"))
            self._values = (index, column.to_numpy(), column.is_null().to_numpy())
        index, values, nulls = self._values
        rows = index.rows(key, below=self.cursor)
        if not rows.size:
            return False, None
        last = int(rows[-1])
        return True, None if nulls[last] else float(values[last])

    def reveal(self, until: dt.datetime) -> pl.DataFrame:
        """Advance the cursor past every row with ``available_at <= until``; return those rows."""
        stop = micros(until)
        if self.clock is not None and until < self.clock:
            raise ValueError(f"reveal({until}) goes back before the clock ({self.clock}).")
        end = max(self.cursor, int(np.searchsorted(self.times, stop, side="right")))
        rows = self.frame.slice(self.cursor, end - self.cursor)
        self.cursor, self.clock = end, until.astimezone(dt.UTC)
        return rows

    def next_time(self) -> dt.datetime | None:
        """Return the next unrevealed ``available_at``, or None at the end."""
        if self.cursor >= len(self.times):
            return None
        return schema.moment_of(int(self.times[self.cursor]))

    def append(self, rows: pl.DataFrame) -> None:
        """Add `rows` to the appended bars, kept sorted by (available_at, symbol, interval)."""
        self.appended = pl.concat([self.appended, rows]).sort(SORT, maintain_order=True)

    def flush(self, enum: pl.Enum | None) -> bool:
        """Move buffered `append_bar` rows into the appended bars; return True if any moved."""
        if not self.buffer:
            return False
        rows, self.buffer = bars_frame(self.buffer, enum), []
        self.append(rows)
        return True

    def snapshot(self) -> pl.DataFrame:
        """Return the revealed slice plus the appended bars, without copying."""
        revealed = self.frame.slice(0, self.cursor)
        if self.appended.is_empty():
            return revealed
        return pl.concat([revealed, self.appended], rechunk=False)

    def bars(self, key: tuple[str, str]) -> pl.DataFrame:
        """Return the visible rows of (symbol, interval) `key`."""
        revealed = take(self.frame, self.index.rows(key, below=self.cursor))
        if self.appended.is_empty():
            return revealed
        return pl.concat([revealed, self.appended.filter(symbol=key[0], interval=key[1])])

    def intervals(self, symbol: str) -> set[str]:
        """Return the intervals holding rows of `symbol` (revealed or not)."""
        if self.appended.is_empty():
            return self.index.intervals(symbol)
        found = self.appended.filter(symbol=symbol).get_column("interval")
        return self.index.intervals(symbol) | set(found.to_list())

    def cast(self, enum: pl.Enum) -> None:
        """Cast the symbol columns to `enum`, all or nothing (the caller flushes first)."""
        frame = cast_symbols(self.frame, enum, "table 'session_bars'")
        self.appended = cast_symbols(self.appended, enum, "table 'session_bars'")
        self.frame = frame


def take(frame: pl.DataFrame, rows: npt.NDArray[np.uint32]) -> pl.DataFrame:
    """Return the `rows` of `frame` (a gather; the empty frame when there are none)."""
    return frame[rows] if rows.size else frame.clear()


def by_ts(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate the non-empty `parts` and sort by ts unless already sorted."""
    found = [p for p in parts if p.height] or list(parts[:1])
    bars = found[0] if len(found) == 1 else pl.concat(found)
    return bars if bars.get_column("ts").is_sorted() else bars.sort("ts", maintain_order=True)


def bar_row(symbol: str, interval: str, bar: Mapping[str, Any]) -> dict[str, Any]:
    """Return one `CATALOG_BARS` row from a bar mapping, filling the visibility defaults.

    ``session`` defaults to the UTC date of ``ts``, ``ts_close`` to ``ts`` + interval,
    ``available_at`` to ``ts_close``, ``n_src`` to 1 and ``complete`` to True.
    """
    missing = [f for f in BAR_FIELDS if f not in bar]
    extra = [f for f in bar if f not in BAR_FIELDS + OPTIONAL_BAR_FIELDS]
    if missing or extra:
        raise ValueError(
            f"Bar for {symbol!r} {interval}: missing {missing}, unexpected {extra}; "
            f"give {list(BAR_FIELDS)} and optionally {list(OPTIONAL_BAR_FIELDS)}."
        )
    micros(bar["ts"])
    row: dict[str, Any] = {"symbol": symbol, "interval": interval}
    row.update({f: (bar[f] if f == "ts" else float(bar[f])) for f in BAR_FIELDS})
    row["session"] = bar.get("session", bar["ts"].astimezone(dt.UTC).date())
    row["ts_close"] = bar.get("ts_close", bar["ts"] + Interval.parse(interval).duration)
    row["available_at"] = bar.get("available_at", row["ts_close"])
    row["n_src"] = int(bar.get("n_src", 1))
    row["complete"] = bool(bar.get("complete", True))
    return row


def bars_frame(rows: Iterable[Mapping[str, Any]], enum: pl.Enum | None) -> pl.DataFrame:
    """Return `rows` (from `bar_row`) as a session_bars frame sorted by (available_at, symbol)."""
    frame = pl.DataFrame(list(rows), schema=schema.CATALOG_BARS, orient="row")
    frame = cast_symbols(frame, enum, "append_bar")
    return frame.sort(SORT, maintain_order=True)


def refuse_unless_select(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise `QueryError` unless `query` is exactly one read-only (SELECT-type) statement."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"SQL does not parse: {exc}") from exc
    if len(statements) != 1:
        raise QueryError(
            f"SQL here runs exactly one statement; found {len(statements)}. "
            "Send one SELECT at a time."
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(
            f"SQL here is read-only: {_keyword(statements[0].query, kind.name)} statements are "
            "refused. Use SELECT (or SHOW, DESCRIBE, SUMMARIZE); the pipeline writes its "
            "tables itself."
        )


def _keyword(query: str, kind: str) -> str:
    """Return the statement's first keyword (INSTALL, not DuckDB's kind LOAD), else `kind`."""
    words = query.split(maxsplit=1)
    first = words[0].upper() if words else ""
    return first if first.isalpha() and first != "WITH" else kind


def quality_row(
    symbol: str, interval: str, session: dt.date, expected: int, present: int
) -> pl.DataFrame:
    """Return one `QUALITY` row: quality = 100 * present / expected (null when expected is 0)."""
    if not 0 <= present <= expected:
        raise ValueError(f"present ({present}) must lie in [0, expected ({expected})].")
    quality = 100.0 * present / expected if expected else None
    values = [symbol, interval, session, expected, present, quality, present >= expected]
    return pl.DataFrame([values], schema=schema.QUALITY, orient="row")


def last_value(frame: pl.DataFrame, column: str, order: str) -> float | None:
    """Return `column` of the row with the greatest `order`, as a float (None if none)."""
    if frame.is_empty():
        return None
    value = frame.sort(order, maintain_order=True).get_column(column)[-1]
    return None if value is None else float(value)


def upsert(frame: pl.DataFrame, row: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Return `frame` without the rows matching `row` on `keys`, then `row` appended."""
    match = pl.all_horizontal([pl.col(k) == row.get_column(k)[0] for k in keys])
    return pl.concat([frame.filter(~match), row])


def select(
    con: duckdb.DuckDBPyConnection, query: str, params: Mapping[str, object]
) -> pl.DataFrame:
    """Run `query` with named `params` and return its result as a frame.

    DuckDB errors, and results a frame cannot hold (repeated column names, INTERVAL or
    UNION columns, dates beyond the years -262143..262142 such as 'infinity'), become a
    `QueryError` that says how to rewrite the query.
    """
    try:
        relation = con.sql(query, params=dict(params))
        if relation is None:  # pragma: no cover - a SELECT-type statement gives a relation
            raise QueryError("SQL returned no result: send a SELECT.")
        _check_columns(relation.columns, relation.types)
        result = relation.to_arrow_table()
    except duckdb.Error as exc:
        hint = (
            "Parameters bind by name only: write $name in the query, pass name=value."
            if "parameter" in str(exc)
            else f"Tables: {', '.join(table_names(con))} ('DESCRIBE <table>' shows its columns)."
        )
        raise QueryError(f"SQL failed: {exc}\n{hint}") from exc
    _check_moments(result)
    try:
        frame = pl.from_arrow(result)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        raise QueryError(
            f"The SQL result cannot be returned ({exc}): cast its unusual columns, e.g. to VARCHAR."
        ) from exc
    if not isinstance(frame, pl.DataFrame):  # pragma: no cover - an Arrow table gives a frame
        raise TypeError(f"DuckDB returned {type(result)}, expected an Arrow table.")
    return frame


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the tables and views SQL on `con` can read, sorted."""
    return sorted(name for (name,) in con.sql("SHOW TABLES").fetchall())


#: DuckDB types a frame cannot hold, and how to rewrite a column of that type.
_UNRETURNABLE = {
    "interval": (
        "cast it, e.g. epoch(<expression>) AS <column> for seconds, or <expression>::VARCHAR"
    ),
    "union": "take one member with union_extract(<column>, '<member>') or cast it to VARCHAR",
}


def _check_columns(names: Sequence[str], types: Sequence[Any]) -> None:
    """Raise `QueryError` for repeated column names or a type a frame cannot hold."""
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise QueryError(
            f"The SQL result has duplicate column names {', '.join(twice)}: give each column "
            "its own alias (SELECT t.x AS t_x, f.x AS f_x, ...), or join with USING (...)."
        )
    for name, kind in zip(names, types, strict=True):
        bad = _unreturnable(kind)
        if bad is not None:
            fix = _UNRETURNABLE[bad].replace("<column>", name)
            raise QueryError(
                f"Column {name} has DuckDB type {kind}, which cannot be returned: {fix}."
            )


def _unreturnable(kind: Any) -> str | None:
    """Return the id of the first type in `kind` (nested ones too) a frame cannot hold."""
    if kind.id in _UNRETURNABLE:
        return str(kind.id)
    if kind.id in ("struct", "list", "map", "array"):
        for _, child in kind.children:
            if not isinstance(child, int):  # an array's size
                found = _unreturnable(child)
                if found is not None:
                    return found
    return None


#: Days from 1970-01-01 to the first and last dates a frame can print (chrono's range).
_FIRST_DAY, _LAST_DAY = -96_465_292, 95_026_236
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000}


def _check_moments(result: Any) -> None:
    """Raise `QueryError` for a date or timestamp outside the range a frame can print."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, column in zip(result.column_names, result.columns, strict=True):
        for array in (a for chunk in column.chunks for a in _moment_arrays(chunk)):
            per_day = _per_day(array.type)
            if per_day is None:
                continue
            steps = array.view(pa.int32() if pa.types.is_date32(array.type) else pa.int64())
            low, high = pc.min_max(steps).values()
            if low.is_valid and (
                low.as_py() < _FIRST_DAY * per_day or high.as_py() >= (_LAST_DAY + 1) * per_day
            ):
                raise QueryError(
                    f"Column {name} holds a date or time outside the years -262143..262142 "
                    f"(DuckDB's 'infinity' is one), which cannot be returned: filter it out "
                    f"(WHERE isfinite({name})) or cast it to VARCHAR."
                )


def _per_day(kind: Any) -> int | None:
    """Return the steps per day of a date or timestamp type (None: always in range)."""
    import pyarrow as pa

    if pa.types.is_date32(kind):
        return 1
    if pa.types.is_date64(kind):
        return _PER_DAY["ms"]
    return _PER_DAY.get(kind.unit)  # nanoseconds are within the years 1677..2262


def _moment_arrays(array: Any) -> Iterator[Any]:
    """Yield the date and timestamp arrays in `array`, nested ones flattened."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        yield array
    elif pa.types.is_map(kind):
        yield from _moment_arrays(array.keys)
        yield from _moment_arrays(array.items)
    elif (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        yield from _moment_arrays(array.flatten())
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _moment_arrays(array.field(i))
