"""Saved SQL queries and the SQL environment they run in.

A saved query is a ``.sql`` file in ``queries/`` that starts with a header::

    -- name: gaps
    -- description: Runs of missing bars per symbol and session.
    -- param interval: bar interval, e.g. 1m
    -- param symbol: one symbol, or NULL for all (default: NULL)

Parameters are DuckDB named parameters (``$interval``); values are never formatted
into the SQL text. A parameter with a ``(default: ...)`` may be left out; ``NULL`` as
a value (or default) means SQL NULL.

Queries run on the catalog's DuckDB connection, where `attach_store` has added a
view ``bars`` over every stored bar (interval, symbol, ts, open, high, low, close,
volume), a view ``bars_<interval>`` per stored interval (``bars_1m``, ``bars_1d``,
...), and ``calendar_sessions``: the exchange sessions over the store's range.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipeline.errors import QueryError, closest

if TYPE_CHECKING:
    import duckdb

    from pipeline.catalog import Catalog
    from pipeline.store import Store

_HEADER = re.compile(r"^--\s*(name|description|param)\s*(\w*)\s*:\s*(.*?)\s*$")
_DEFAULT = re.compile(r"\(default:\s*(.*?)\)\s*$")
_BAR_COLUMNS = "interval, symbol, ts, open, high, low, close, volume"


@dataclass(frozen=True)
class Param:
    """A declared parameter of a saved query."""

    name: str
    description: str
    default: str | None = None
    required: bool = True


@dataclass(frozen=True)
class SavedQuery:
    """A parsed ``queries/*.sql`` file."""

    name: str
    description: str
    params: tuple[Param, ...]
    sql: str
    path: Path = field(compare=False)

    def bind(self, given: Mapping[str, str]) -> dict[str, str | None]:
        """Return DuckDB parameters from `given` text values, applying defaults.

        Raise `QueryError` for an unknown or a missing parameter.
        """
        names = [p.name for p in self.params]
        for key in given:
            if key not in names:
                raise QueryError(
                    f"Query {self.name!r} has no parameter {key!r} ({closest(key, names)})."
                )
        bound: dict[str, str | None] = {}
        for p in self.params:
            if p.name in given:
                bound[p.name] = _null(given[p.name])
            elif not p.required:
                bound[p.name] = _null(p.default)
            else:
                raise QueryError(
                    f"Query {self.name!r} needs parameter {p.name!r} ({p.description}): "
                    f"pass --param {p.name}=VALUE."
                )
        return bound


def _null(value: str | None) -> str | None:
    return None if value is None or value.strip().upper() == "NULL" else value


def parse_query(path: Path) -> SavedQuery:
    """Parse one saved query file; raise `QueryError` when its header is incomplete."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(
            f"Saved query '{path}' is not UTF-8 text (byte {exc.start}): save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise QueryError(f"Saved query '{path}' cannot be read: {exc.strerror or exc}.") from exc
    meta: dict[str, str] = {}
    params: list[Param] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        match = _HEADER.match(line)
        if match is None:
            continue
        key, arg, value = match.groups()
        if key == "param":
            default = _DEFAULT.search(value)
            desc = _DEFAULT.sub("", value).strip()
            params.append(Param(arg, desc, default.group(1) if default else None, default is None))
        else:
            meta[key] = value
    missing = [k for k in ("name", "description") if k not in meta]
    if missing:
        raise QueryError(
            f"Saved query '{path}' has no {' or '.join(missing)} in its header: start the file "
            "with '-- name: NAME' and '-- description: TEXT' lines."
        )
    return SavedQuery(meta["name"], meta["description"], tuple(params), text, path)


def default_folder() -> Path:
    """Return the saved-query folder: ``$PIPELINE_QUERIES``, ``./queries`` or the repository's."""
    env = os.environ.get("PIPELINE_QUERIES")
    if env:
        return Path(env)
    local = Path("queries")
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "queries"


def load_queries(folder: Path | None = None) -> dict[str, SavedQuery]:
    """Return every saved query in `folder` by name, sorted by name."""
    folder = folder or default_folder()
    if not folder.is_dir():
        raise QueryError(
            f"No saved-query folder at '{folder}': run from the project folder or set "
            "PIPELINE_QUERIES to the folder that holds the .sql files."
        )
    found: dict[str, SavedQuery] = {}
    for path in sorted(folder.glob("*.sql")):
        query = parse_query(path)
        if query.name in found:
            raise QueryError(
                f"Saved queries '{found[query.name].path}' and '{path}' are both named "
                f"{query.name!r}: rename one (its '-- name:' line)."
            )
        found[query.name] = query
    return dict(sorted(found.items()))


def get_query(name: str, folder: Path | None = None) -> SavedQuery:
    """Return the saved query called `name`; raise `QueryError` naming the closest one."""
    queries = load_queries(folder)
    if name not in queries:
        raise QueryError(f"No saved query named {name!r} ({closest(name, list(queries))}).")
    return queries[name]


def attach_store(catalog: Catalog, store: Store, mic: str = "XNYS") -> None:
    """Add the store's bar views and the calendar's sessions to the catalog's SQL connection."""
    from pipeline import calendar

    intervals = store.intervals()
    with catalog.connection() as con:
        _confine(con, store)
        glob = _quote(str(store.bars_dir / "interval=*" / "symbol=*" / "year=*" / "part-0.parquet"))
        if intervals:
            con.sql(
                f"CREATE OR REPLACE VIEW bars AS SELECT {_BAR_COLUMNS} FROM read_parquet({glob}, "
                "hive_partitioning = true, hive_types = {'interval': VARCHAR, 'symbol': VARCHAR, "
                "'year': INTEGER})"
            )
        else:
            con.sql(
                "CREATE OR REPLACE VIEW bars AS SELECT NULL::VARCHAR AS interval, "
                "NULL::VARCHAR AS symbol, NULL::TIMESTAMPTZ AS ts, NULL::DOUBLE AS open, "
                "NULL::DOUBLE AS high, NULL::DOUBLE AS low, NULL::DOUBLE AS close, "
                "NULL::DOUBLE AS volume WHERE false"
            )
        for iv in intervals:
            con.sql(
                f"CREATE OR REPLACE VIEW bars_{iv} AS SELECT symbol, ts, open, high, low, close, "
                f"volume FROM bars WHERE interval = {_quote(str(iv))}"
            )
    first, last = _store_range(store)
    sessions = calendar.sessions(mic, first, last)
    catalog.register_extra("calendar_sessions", sessions)


def _confine(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """Let SQL read files only under the store's bar folder, for good on this connection.

    Hostile SQL (``SELECT * FROM read_csv('/etc/passwd')``) is then refused by DuckDB
    itself; `Catalog.sql` refuses every statement that is not a SELECT.
    """
    folder = str(store.bars_dir.resolve()) + os.sep
    [row] = con.sql(
        "SELECT current_setting('enable_external_access'), current_setting('allowed_directories')"
    ).fetchall()
    if not row[0]:
        allowed = [d for d in row[1] if d.rstrip(os.sep).endswith("bars")]
        if folder not in allowed:
            raise QueryError(
                f"This process already answers SQL over another store ({', '.join(allowed)}); "
                f"run a new process for '{store.root}'."
            )
        return
    # DuckDB allows its own temp folder too (``./.tmp`` by default): a private one instead,
    # so SQL cannot read what the working directory's .tmp holds
    spill = tempfile.mkdtemp(prefix="pipeline-sql-")
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
    con.sql(f"SET temp_directory = {_quote(spill)}")
    con.sql(f"SET allowed_directories = [{_quote(folder)}]")
    con.sql("SET enable_external_access = false")


def _store_range(store: Store) -> tuple[dt.date, dt.date]:
    inventory = store.inventory()
    if inventory.is_empty():
        today = dt.datetime.now(dt.UTC).date()
        return today, today
    first = inventory["first"].min()
    last = inventory["last"].max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    return first.date() - dt.timedelta(days=1), last.date() + dt.timedelta(days=1)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def run_query(catalog: Catalog, query: SavedQuery, given: Mapping[str, str]) -> pl.DataFrame:
    """Run a saved query with text parameter values; return the result frame."""
    return catalog.sql(query.sql, **query.bind(given))
