"""Pre-session scanners (phase 1.4): a saved query picks each session's symbols.

A scanner is a saved query (`pipeline.queries`) named in the config's ``[scanner]``
section. Before each session it runs with its ``params`` and ``session`` (the session
date) and returns a ``symbol`` column, best first; the first row is rank 1.

Look-ahead is ruled out by construction, not by the query's care: the query runs on
a private DuckDB connection (`ScanSource`) with no file access, where ``bars`` (also
named ``scan_bars``) is a Polars frame of the candidates' stored bars filtered per
session and registered again before each scan:

- intraday bars (seconds to hours) with ``ts`` before midnight of the session date in
  the exchange's time zone (so no pre-market bar of the session day);
- daily and longer bars that end by the session date (``ts + interval <= session``;
  a 1d bar is stamped at its session's date, 00:00 UTC).

``bars_<interval>`` views and ``calendar_sessions`` (the calendar is known in advance)
are there too, so the same SQL also runs under ``pipeline query``.

Examples
--------
>>> from pipeline.queries import get_query
>>> from pipeline.store import Store
>>> source = ScanSource(Store("data"), ["ACME", "BOLT", "TINY"], "XNYS")
>>> scan(source, get_query("most_active"), dt.date(2024, 7, 8), {"top": 2, "sessions": 5})
['ACME', 'BOLT']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl

from pipeline import calendar
from pipeline.errors import QueryError
from pipeline.intervals import Interval
from pipeline.queries import SavedQuery
from pipeline.store import Store

__all__ = ["SCANS", "ScanSource", "scan", "scans_frame", "visible"]

#: Columns of the ``scans`` table: one row per session and picked symbol.
SCANS = pl.Schema({"session": pl.Date, "rank": pl.Int32, "symbol": pl.String})
_BAR_COLUMNS = ("interval", "symbol", "ts", "open", "high", "low", "close", "volume")


class ScanSource:
    """The candidates' stored bars and a private, file-less DuckDB connection to scan them.

    The bars of every stored interval are read once; `scan` shows each session only the
    part `visible` keeps.
    """

    def __init__(self, store: Store, symbols: Sequence[str], mic: str) -> None:
        self.mic, self.symbols = mic, tuple(sorted(symbols))
        frames = []
        for iv in store.intervals():
            held = [s for s in self.symbols if s in store.symbols(iv)]
            if held:
                lazy = store.read(iv, held).with_columns(interval=pl.lit(str(iv)))
                frames.append(lazy.select(_BAR_COLUMNS).collect())
        self.bars = pl.concat(frames) if frames else _empty_bars()
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        self.con.execute("SET enable_external_access = false")
        self.intervals = sorted({str(iv) for iv in store.intervals()})
        first, last = _range(self.bars)
        self._calendar = calendar.sessions(mic, first, last).to_arrow()
        self.con.register("calendar_sessions", self._calendar)
        self._shown: Any = None

    def show(self, session: dt.date) -> None:
        """Register the bars visible before `session` as ``bars`` and ``scan_bars``."""
        self._shown = visible(self.bars, session, self.mic).to_arrow()
        self.con.register("scan_bars", self._shown)
        self.con.execute("CREATE OR REPLACE VIEW bars AS SELECT * FROM scan_bars")
        for iv in self.intervals:
            self.con.execute(
                f"CREATE OR REPLACE VIEW bars_{iv} AS SELECT symbol, ts, open, high, low, close, "
                f"volume FROM scan_bars WHERE interval = '{iv}'"
            )


def visible(bars: pl.DataFrame, session: dt.date, mic: str) -> pl.DataFrame:
    """Return the rows of `bars` a scan for `session` may see (see the module docstring)."""
    midnight = calendar.day_start(mic, session)
    day = dt.datetime.combine(session, dt.time(), dt.UTC)
    keep = pl.lit(False)
    for name in bars.get_column("interval").unique().sort().to_list():
        iv = Interval.parse(name)
        if iv.unit in ("d", "w"):
            rule = pl.col("ts") + pl.duration(seconds=_days(iv) * 86_400) <= day
        else:
            rule = pl.col("ts") < midnight
        keep = keep | ((pl.col("interval") == name) & rule)
    return bars.filter(keep)


def scan(
    source: ScanSource, query: SavedQuery, session: dt.date, params: Mapping[str, Any]
) -> list[str]:
    """Run scanner `query` for `session` over the bars visible then; return its symbols.

    `params` are the query's named parameters besides ``session``. Raise `QueryError`
    for an unknown or missing parameter, a failing query, or a result without a
    ``symbol`` column. Symbols outside the candidates are dropped; order is kept.
    """
    given = {k: _text(v) for k, v in params.items()}
    given["session"] = session.isoformat()
    bound = query.bind(given)
    source.show(session)
    try:
        arrow = source.con.sql(query.sql, params=bound).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise QueryError(
            f"Scanner query {query.name!r} failed for session {session}: {first}. Fix {query.path}."
        ) from None
    result = pl.DataFrame(pl.from_arrow(arrow))
    if "symbol" not in result.columns:
        raise QueryError(
            f"Scanner query {query.name!r} returned columns {result.columns}, no 'symbol': "
            "select the picked symbols as a column named symbol."
        )
    names = result.get_column("symbol").cast(pl.String).to_list()
    wanted = set(source.symbols)
    return list(dict.fromkeys(s for s in names if s in wanted))


def scans_frame(session: dt.date, picked: Sequence[str]) -> pl.DataFrame:
    """Return the ``scans`` rows of one session: (session, rank from 1, symbol)."""
    return pl.DataFrame(
        {
            "session": [session] * len(picked),
            "rank": list(range(1, len(picked) + 1)),
            "symbol": list(picked),
        },
        schema=SCANS,
    )


def _text(value: Any) -> str:
    """Return a config value as the text `SavedQuery.bind` takes."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _days(iv: Interval) -> int:
    return iv.count * (7 if iv.unit == "w" else 1)


def _range(bars: pl.DataFrame) -> tuple[dt.date, dt.date]:
    if bars.is_empty():
        today = dt.datetime.now(dt.UTC).date()
        return today, today
    first, last = bars.get_column("ts").min(), bars.get_column("ts").max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    return first.date() - dt.timedelta(days=7), last.date() + dt.timedelta(days=7)


def _empty_bars() -> pl.DataFrame:
    prices: dict[str, pl.DataType] = {c: pl.Float64() for c in _BAR_COLUMNS[3:]}
    return pl.DataFrame(
        schema={
            "interval": pl.String,
            "symbol": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            **prices,
        }
    )
