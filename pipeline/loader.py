"""Loading bars from the store for a run: the session flow's only reader of the store.

A run visits sessions in order and each needs the same trailing window of bars, so
bars are loaded in chunks of consecutive sessions (plus the lookback the first one
needs), annotated once (session, ts_close, available_at: `derive.annotate`), sorted
by (session, symbol, ts), and sliced per session without copying. Memory holds one
chunk, never the whole run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline import calendar, derive, schema
from pipeline.intervals import Interval
from pipeline.store import Store

log = logging.getLogger(__name__)

#: Sessions per chunk: a month of trading keeps memory small and reads few.
CHUNK_SESSIONS = 21


@dataclass(frozen=True)
class LoadSpec:
    """What to load: an interval, from a stored interval (itself, or a finer one to derive from)."""

    interval: Interval
    source: Interval
    symbols: tuple[str, ...]
    lookback: int  # sessions before each run session


class BarCache:
    """Annotated bars of one `LoadSpec`, loaded a chunk of sessions at a time."""

    def __init__(
        self,
        store: Store,
        spec: LoadSpec,
        all_sessions: pl.DataFrame,
        mic: str,
        *,
        extended_hours: bool,
        emit_incomplete: bool,
        symbol_type: pl.Enum,
    ) -> None:
        self._store, self.spec, self._mic = store, spec, mic
        self._sessions = all_sessions
        self._days: list[dt.date] = all_sessions["session"].to_list()
        self._extended, self._emit = extended_hours, emit_incomplete
        self._enum = symbol_type
        self._frame = schema.empty(schema.CATALOG_BARS)
        self._loaded: tuple[int, int] = (0, -1)  # session positions held: [first, last]
        self._offsets = np.zeros(1, dtype=np.int64)

    def window(self, day: dt.date, sessions: int, *, include_day: bool) -> pl.DataFrame:
        """Return the bars of the `sessions` sessions before `day` (and `day` itself if asked).

        Zero-copy: a slice of the loaded chunk, sorted by (session, symbol, ts).
        """
        end = self._days.index(day) + (1 if include_day else 0)
        first = max(0, end - sessions - (1 if include_day else 0))
        if end <= first:
            return self._frame.clear()
        if not (self._loaded[0] <= first and end - 1 <= self._loaded[1]):
            self._load(first, end - 1)
        lo = int(self._offsets[first - self._loaded[0]])
        hi = int(self._offsets[end - self._loaded[0]])
        return self._frame.slice(lo, hi - lo)

    def _load(self, first: int, last: int) -> None:
        stop = min(len(self._days) - 1, max(last, first + self.spec.lookback + CHUNK_SESSIONS))
        days = self._sessions.slice(first, stop - first + 1)
        self._frame = self._read(days)
        counts = (
            self._frame.group_by("session")
            .len()
            .join(days.select("session"), on="session", how="right")
            .sort("session")["len"]
            .fill_null(0)
            .to_numpy()
        )
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._loaded = (first, stop)
        log.debug(
            "Loaded %d %s bars for %d sessions from %s",
            self._frame.height,
            self.spec.interval,
            days.height,
            days["session"][0],
        )

    def _read(self, days: pl.DataFrame) -> pl.DataFrame:
        first, last = days["session"][0], days["session"][-1]
        raw = self._store.read(
            self.spec.source,
            self.spec.symbols,
            first - dt.timedelta(days=1),
            last + dt.timedelta(days=1),
        ).with_columns(pl.col("symbol").cast(self._enum))
        tz = calendar.timezone(self._mic)
        bars = derive.annotate(raw, self.spec.source, days, tz, extended_hours=self._extended)
        if self.spec.source != self.spec.interval:
            bars = derive.derive(
                bars, days, self.spec.interval, self.spec.source, emit_incomplete=self._emit
            )
        keep = pl.col("session").is_between(first, last)
        return (
            bars.filter(keep)
            .sort("session", "symbol", "ts")
            .select(schema.CATALOG_BARS.names())
            .collect(engine="in-memory")
        )


def plan(
    requested: Sequence[tuple[str, int, Sequence[str]]], stored: Sequence[Interval]
) -> list[LoadSpec]:
    """Return one `LoadSpec` per requested interval, from the closest stored source.

    `requested` holds (interval, lookback sessions, symbols). An interval that is not
    stored is generated from the coarsest stored interval it derives from (1d from 1m
    rather than from 1s). Requests for the same interval merge (union of symbols,
    longest lookback).
    """
    from pipeline.errors import DataNotFoundError

    merged: dict[Interval, tuple[int, set[str]]] = {}
    for interval, lookback, symbols in requested:
        iv = Interval.parse(interval)
        n, names = merged.get(iv, (0, set()))
        merged[iv] = (max(n, lookback), names | set(symbols))
    specs = []
    for iv, (lookback, names) in sorted(merged.items()):
        sources = [s for s in stored if iv.derives_from(s)]
        if not sources:
            have = ", ".join(str(s) for s in stored) or "nothing"
            raise DataNotFoundError(
                f"No stored interval can produce {iv} bars (stored: {have}). Import {iv} bars "
                "or a finer interval they derive from (1d from 1m, 1m from 1s)."
            )
        source = iv if iv in sources else max(sources)
        specs.append(LoadSpec(iv, source, tuple(sorted(names)), lookback))
    return specs
