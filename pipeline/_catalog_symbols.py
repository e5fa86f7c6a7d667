"""The catalog's per-symbol API (DESIGN §3): bars, quotes, quality and indicator values.

`SymbolAPI` is a part of `pipeline.catalog.Catalog`, kept apart to keep each file short:
its methods read and write the catalog's tables under its lock, through the internals
`_CatalogParts` names.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from pipeline import _catalog_tables as _t
from pipeline import schema
from pipeline._catalog_tables import HISTORY, INDICATORS, QUALITY
from pipeline.errors import DataNotFoundError
from pipeline.intervals import Interval


@dataclass(frozen=True, slots=True)
class Quote:
    """A top-of-book quote; in backtests synthesised from the latest visible bar."""

    symbol: str
    ts: dt.datetime
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    source: str


class _CatalogParts(Protocol):
    """What the per-symbol API reads of `pipeline.catalog.Catalog`."""

    _lock: threading.RLock
    _session: _t.SessionTable
    _session_ind: _t.SessionTable

    def table(self, name: str) -> pl.DataFrame: ...
    def get_bars(self, symbol: str, interval: str, n: int | None = None) -> pl.DataFrame: ...
    def get_latest_bar(self, symbol: str, interval: str) -> dict[str, Any] | None: ...
    def _symbol(self, symbol: str) -> str: ...
    def _flush(self) -> None: ...
    def _frame(self, name: str) -> pl.DataFrame: ...
    def _history(self) -> _t.GroupIndex: ...
    def _conform(self, name: str, frame: pl.DataFrame) -> pl.DataFrame: ...
    def _write(self, name: str, frame: pl.DataFrame) -> None: ...


class SymbolAPI:
    """The per-symbol methods of `pipeline.catalog.Catalog` (a base class of it)."""

    def get_bars(
        self: _CatalogParts, symbol: str, interval: str, n: int | None = None
    ) -> pl.DataFrame:
        """Return the visible bars of `symbol` and `interval` (history, then session) by ts.

        Only the last `n` rows when `n` is given. O(rows of that symbol and interval).
        """
        key = (self._symbol(symbol), _t.interval_key(interval))
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        with self._lock:
            self._flush()
            history = _t.take(self._frame(HISTORY), self._history().rows(key))
            session = self._session.bars(key)
        bars = _t.by_ts([history, session])
        return bars if n is None else bars.tail(n)

    def get_latest_bar(self: _CatalogParts, symbol: str, interval: str) -> dict[str, Any] | None:
        """Return the latest visible bar of `symbol` and `interval` as a dict, or None."""
        bars = self.get_bars(symbol, interval, n=1)
        return bars.row(0, named=True) if bars.height else None

    def get_latest_quote(self: _CatalogParts, symbol: str) -> Quote:
        """Return a synthetic quote: bid = ask = close of the latest visible bar, sizes 0.

        The latest bar has the greatest ``available_at`` (the finest interval on ties);
        the quote's ``ts`` is that ``available_at``. Raises `DataNotFoundError` when no
        bar of `symbol` is visible yet: a quote never invents a price.
        """
        sym = self._symbol(symbol)
        with self._lock:
            self._flush()
            intervals = self._history().intervals(sym) | self._session.intervals(sym)
            rows = [r for iv in intervals if (r := self.get_latest_bar(sym, iv)) is not None]
            clock = self._session.clock
        if not rows:
            raise DataNotFoundError(
                f"No bar of {sym!r} is visible {f'at {clock}' if clock else 'yet'}: no quote. "
                "Wait for its first bar or load history for it."
            )
        bar = max(rows, key=lambda r: (r["available_at"], -Interval.parse(r["interval"]).seconds))
        price = float(bar["close"])
        return Quote(sym, bar["available_at"], price, price, 0.0, 0.0, "bar")

    def get_quality(
        self: _CatalogParts, symbol: str, interval: str, session: dt.date | None = None
    ) -> float | None:
        """Return the quality (0-100) of `symbol` `interval` on `session` (latest if None).

        Return None when there is no such row (or its ``expected`` was 0).
        """
        iv = _t.interval_key(interval)
        rows = self.table(QUALITY).filter(symbol=self._symbol(symbol), interval=iv)
        if session is not None:
            rows = rows.filter(session=session)
        return _t.last_value(rows, "quality", order="session")

    def set_quality(
        self: _CatalogParts,
        symbol: str,
        interval: str,
        session: dt.date,
        expected: int,
        present: int,
    ) -> None:
        """Upsert the quality of `symbol` `interval` `session` (null quality if expected is 0)."""
        row = _t.quality_row(
            self._symbol(symbol), _t.interval_key(interval), session, expected, present
        )
        keys = ["symbol", "interval", "session"]
        with self._lock:
            table = _t.upsert(self._frame(QUALITY), self._conform(QUALITY, row), keys)
            self._write("quality", table.sort(keys))

    def get_historical_indicator(
        self: _CatalogParts, symbol: str, name: str, interval: str = "1d"
    ) -> float | None:
        """Return the latest value of indicator `name` visible at the clock, or None.

        A session value revealed for it is the latest (an index lookup, O(log n));
        otherwise the historical values are searched.
        """
        iv = _t.interval_key(interval)
        with self._lock:
            sym = self._symbol(symbol)
            if self._session_ind.cursor:
                found, value = self._session_ind.latest_value((sym, name, iv))
                if found:
                    return value
            rows = self._frame(INDICATORS).filter(symbol=sym, name=name)
            clock = self._session.clock
        rows = rows.filter(interval=iv)
        if clock is not None:
            rows = rows.filter(pl.col("available_at") <= clock)
        return _t.last_value(rows, "value", order="ts")

    def set_historical_indicator(
        self: _CatalogParts,
        symbol: str,
        name: str,
        value: float | None,
        *,
        interval: str = "1d",
        ts: dt.datetime,
        available_at: dt.datetime,
    ) -> None:
        """Upsert one indicator value, keyed by (symbol, name, interval, ts)."""
        values = [self._symbol(symbol), name, _t.interval_key(interval), ts, value, available_at]
        row = pl.DataFrame([values], schema=schema.INDICATORS, orient="row")
        keys = ["symbol", "name", "interval", "ts"]
        with self._lock:
            table = _t.upsert(self._frame(INDICATORS), self._conform(INDICATORS, row), keys)
            self._write("indicators", table)
