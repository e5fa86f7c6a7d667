"""Loading bars from the store for a run: the session flow's only reader of the store.

A run visits sessions in order and each needs the same trailing window of bars, so
bars are loaded in chunks of consecutive sessions (plus the lookback the first one
needs), annotated once (session, ts_close, available_at: `derive.annotate`), sorted
by (session, symbol, ts), and sliced per session without copying. A chunk's lookback
sessions are the previous chunk's last ones: their parts are copied over from it, not
read and computed again (`BarCache._carry`).

While the run streams one chunk, the next one loads in a background thread (Polars
releases the GIL while it computes, so the load overlaps the Python stream and
engine). Memory holds two chunks at most (one without `prefetch`: the run config's
``load_ahead = false``), never the whole run. A chunk's content depends only on its
sessions, so prefetching changes no value, only when it is computed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline import calendar, derive, history, schema, session
from pipeline.catalog import check_session_order
from pipeline.config import Indicator
from pipeline.intervals import Interval
from pipeline.store import Store

log = logging.getLogger(__name__)

#: Sessions per chunk at least: a month of trading keeps memory bounded and reads few.
CHUNK_SESSIONS = 20
#: Bars per chunk (regular-hours estimate) below which a chunk takes more sessions: a
#: small universe loads a long run in a few reads, a large one in chunks of CHUNK_SESSIONS.
CHUNK_BARS = 200_000
#: Loads the next chunk of every cache while the current one streams: one worker, so
#: caches prefetch one at a time and memory holds at most one chunk ahead per cache.
_PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline-prefetch")
#: Parts of a cache besides the derived intervals.
BARS, QUALITY, GAPS, TABLE, INDICATORS = "bars", "quality", "gaps", "table", "indicators"
#: The catalog table each part feeds (bars of every interval: ``history_bars``).
_TABLES = {QUALITY: "quality", GAPS: "gaps", TABLE: "session_bars", INDICATORS: "indicators"}
#: Parts built only for the sessions a run streams, not carried from one chunk to the next.
_STREAMED = (TABLE, INDICATORS)


@dataclass(frozen=True)
class LoadSpec:
    """What to load: an interval, from a stored interval (itself, or a finer one to derive from)."""

    interval: Interval
    source: Interval
    symbols: tuple[str, ...]
    lookback: int  # sessions before each run session


class BarCache:
    """Annotated bars of one `LoadSpec`, loaded a chunk of sessions at a time.

    With `derive_to`, the chunk's bars of those intervals are derived once when the
    chunk loads; with `assess`, its quality and gaps per session are computed then
    too. With `session_specs` (the base interval's cache), the session tables of the
    chunk's sessions (base and derived bars in stream order) and their indicator
    values are built then as well. Every part is then sliced per session without
    copying.
    """

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
        derive_to: Sequence[Interval] = (),
        assess: bool = False,
        session_specs: Sequence[Indicator] | None = None,
        conform: Callable[[str, pl.DataFrame], pl.DataFrame] | None = None,
        prefetch: bool = True,
    ) -> None:
        self._store, self.spec, self._mic = store, spec, mic
        self._sessions = all_sessions
        self._days: list[dt.date] = all_sessions["session"].to_list()
        self._extended, self._emit = extended_hours, emit_incomplete
        self._enum = symbol_type
        self._derive_to, self._assess = tuple(derive_to), assess
        self._specs = None if session_specs is None else tuple(session_specs)
        self._conform = conform
        self._empties: dict[str, pl.DataFrame] = {}
        self._chunk = chunk_sessions(spec)
        self._parts: dict[str, _BySession] = {}
        self._loaded: tuple[int, int] = (0, -1)  # session positions held: [first, last]
        self._prefetch = prefetch
        self._next: tuple[tuple[int, int], Future[dict[str, _BySession]]] | None = None

    def window(
        self,
        day: dt.date,
        sessions: int,
        *,
        include_day: bool,
        part: str = BARS,
        symbols: Collection[str] | None = None,
    ) -> pl.DataFrame:
        """Return `part` for the `sessions` sessions before `day` (and `day` if asked).

        Parts: `BARS`, each derived interval (``"5m"``), `QUALITY`, `GAPS`, `TABLE`,
        `INDICATORS`. Zero-copy: a slice of the loaded chunk, sorted by session (a
        filtered copy when `symbols` limits it to those). With `conform`, every part
        went through it once (as the catalog table it feeds).
        """
        rows = self._window(day, sessions, include_day=include_day, part=part)
        if symbols is None:
            return rows
        return rows.filter(pl.col("symbol").cast(pl.String).is_in(sorted(symbols)))

    def ahead(self, day: dt.date, part: str = TABLE) -> list[tuple[dt.date, pl.DataFrame]]:
        """Return `part` of `day` and of each later session of the loaded chunk, by session.

        The frames are the ones `window` gives for those sessions while this chunk stays
        loaded (zero-copy slices): what a run will stream next, known up front in a
        backtest. `day` itself is loaded first when it is not.
        """
        self._window(day, 0, include_day=True, part=part)  # loads the chunk holding `day`
        found = self._part(part)
        first, last = self._loaded
        at = self._days.index(day)
        return [
            (self._days[i], found.between(i - first, i + 1 - first)) for i in range(at, last + 1)
        ]

    def _window(self, day: dt.date, sessions: int, *, include_day: bool, part: str) -> pl.DataFrame:
        end = self._days.index(day) + (1 if include_day else 0)
        first = max(0, end - sessions - (1 if include_day else 0))
        if end > first and not (self._loaded[0] <= first and end - 1 <= self._loaded[1]):
            self._load(first, end - 1)
        if end <= first:
            return self._empty(part)
        return self._part(part).between(first - self._loaded[0], end - self._loaded[0])

    def _part(self, part: str) -> _BySession:
        """Return the loaded chunk's `part`, indexed by session."""
        found = self._parts.get(part)
        if found is None:
            raise KeyError(f"{self.spec.interval} cache holds no part {part!r}")
        return found

    def _load(self, first: int, last: int) -> None:
        span = self._span(first, last)
        parts = self._prefetched(span)
        if parts is None:
            carry = self._carry(span, self._loaded, self._parts)
            self._parts = {}  # let the previous chunk go before the next one loads
            parts = self._build(span, carry)
        previous = span, parts
        self._parts, self._loaded = parts, span
        # The next window a run asks for is the session after this chunk with its lookback.
        if self._prefetch and span[1] < len(self._days) - 1:
            ahead = self._span(span[1] + 1 - self.spec.lookback, span[1] + 1)
            self._next = (ahead, _PREFETCH.submit(self._build_after, ahead, *previous))

    def _build_after(
        self, span: tuple[int, int], loaded: tuple[int, int], parts: dict[str, _BySession]
    ) -> dict[str, _BySession]:
        """Build `span`, carrying over what it shares with the chunk `loaded` (`parts`)."""
        return self._build(span, self._carry(span, loaded, parts))

    def _span(self, first: int, last: int) -> tuple[int, int]:
        """Return the session positions [first, stop] a load for sessions [first, last] holds.

        Always the lookback before the last session asked for: the next session's history
        then fits too, and its indicators are warmed up the same way.
        """
        first = max(0, min(first, last - self.spec.lookback))
        stop = min(len(self._days) - 1, max(last, first + self.spec.lookback + self._chunk))
        return first, stop

    def _prefetched(self, span: tuple[int, int]) -> dict[str, _BySession] | None:
        """Return the parts loaded ahead for `span` (raising what that load raised), if any."""
        ahead, self._next = self._next, None
        if ahead is None:
            return None
        if ahead[0] != span:
            ahead[1].cancel()  # a run that skipped ahead: the load, if running, is dropped
            return None
        return ahead[1].result()

    def _carry(
        self, span: tuple[int, int], loaded: tuple[int, int], parts: dict[str, _BySession]
    ) -> _Carry | None:
        """Return copies of the parts of `loaded` sessions that `span` starts with, if any.

        A chunk's first sessions are the lookback, which the previous chunk (its last
        sessions) holds already: their bars, derived bars, quality and gaps are copied
        over instead of read and computed again (each is per session). Not their session
        tables or indicator values: the run streamed those sessions already. Nothing is
        carried when an interval is not intraday (a weekly bar spans sessions).
        """
        first, last = span
        shared = min(last, loaded[1]) - first + 1
        intraday = all(iv.is_intraday for iv in (self.spec.interval, *self._derive_to))
        if not parts or not intraday or first < loaded[0] or shared < 1 or shared > last - first:
            return None
        at = first - loaded[0]
        kept = {k: v.between(at, at + shared) for k, v in parts.items() if k not in _STREAMED}
        # Gathered, not sliced: a slice would keep the whole previous chunk in memory.
        return _Carry(shared, {k: v[np.arange(v.height)] for k, v in kept.items()})

    def _build(self, span: tuple[int, int], carry: _Carry | None = None) -> dict[str, _BySession]:
        """Load the sessions at positions [first, stop] and index every part by session.

        With `carry`, the first sessions' parts come from it (session tables and indicator
        values are built for the other sessions only, the indicators still warmed up over
        all of them).
        """
        first, stop = span
        days = self._sessions.slice(first, stop - first + 1)
        new_days = days if carry is None else days.slice(carry.sessions)
        bars = self._read(new_days)
        before = None if carry is None else carry.parts[BARS]
        parts = {BARS: bars, **self._chunk_parts(bars.lazy(), new_days, before)}
        if carry is not None:
            # The carried parts went through `conform` (their quality symbols are Enums).
            parts = {
                k: pl.concat([carry.parts[k], self._conformed(k, v)]) for k, v in parts.items()
            }
        if self._specs is not None:
            since = None if carry is None else calendar.day_start(self._mic, new_days["session"][0])
            parts.update(self._session_parts(parts, since))
        log.debug("Loaded %d %s bars for %d sessions", bars.height, self.spec.interval, days.height)
        carried = 0 if carry is None else carry.sessions
        return {
            k: self._by_session(k, v, days["session"], carried if k in _STREAMED else 0)
            for k, v in parts.items()
        }

    def _empty(self, part: str) -> pl.DataFrame:
        found = self._empties.get(part)
        if found is None:
            shapes = {QUALITY: schema.QUALITY, GAPS: schema.GAPS, INDICATORS: schema.INDICATORS}
            shape = shapes.get(part, schema.CATALOG_BARS)
            found = schema.empty(shape).with_columns(pl.col("symbol").cast(self._enum))
            self._empties[part] = found
        return found

    def _by_session(
        self, part: str, frame: pl.DataFrame, days: pl.Series, skip: int = 0
    ) -> _BySession:
        """Index `frame` by session; conform it as the catalog table it feeds (if asked).

        `skip`: the first sessions of `days` that `frame` has no rows for, not even empty.
        """
        index = _BySession(frame, days, skip)
        if part == INDICATORS:
            index.frame = frame.drop("session")
        if self._conform is not None:
            index.frame = self._conformed(part, index.frame)
            if part in _STREAMED:  # once per chunk, so each session loads unchecked
                index.frame = check_session_order(index.frame)
        return index

    def _conformed(self, part: str, frame: pl.DataFrame) -> pl.DataFrame:
        """Return `frame` as the catalog table `part` feeds (itself without `conform`)."""
        if self._conform is None:
            return frame
        return self._conform(_TABLES.get(part, "history_bars"), frame)

    def _chunk_parts(
        self, bars: pl.LazyFrame, days: pl.DataFrame, before: pl.DataFrame | None = None
    ) -> dict[str, pl.DataFrame]:
        """Derive the chunk's intervals and assess its quality and gaps (phases 2.3, 2.4).

        `before`: the bars of the chunk's earlier sessions, carried over: quality and gaps
        cover the symbols of those too, as they would in one computation over all.
        The plans are collected together, so Polars computes what they share once.
        """
        plans: dict[str, pl.LazyFrame] = {}
        for target in self._derive_to:
            derived = history.derive_intervals(
                bars, days, self.spec.interval, [target], emit_incomplete=self._emit
            )
            plans[str(target)] = derived.sort("session", "symbol", "ts", maintain_order=True)
        if self._assess:
            symbols = None
            if before is not None:
                both = pl.concat([before.lazy().select("symbol"), bars.select("symbol")])
                symbols = both.unique()
            q, g = history.assess(bars, days, self.spec.interval, (), symbols)
            plans[QUALITY] = q.sort("session", "symbol", maintain_order=True)
            plans[GAPS] = g.sort("session", "symbol", "start", maintain_order=True)
        frames = pl.collect_all(list(plans.values()), engine="in-memory")
        return dict(zip(plans, frames, strict=True))

    def _session_parts(
        self, parts: dict[str, pl.DataFrame], since: dt.datetime | None
    ) -> dict[str, pl.DataFrame]:
        """Build the chunk's session tables and indicator values (phase 3, per chunk).

        Indicators run over the whole chunk, whose first sessions are the warm-up
        (the history lookback), so every value depends only on earlier bars. With
        `since`, only the bars from then on get a session table and indicator values.
        """
        intervals = [self.spec.interval, *self._derive_to]
        both = pl.concat([parts[BARS], *(parts[str(iv)] for iv in self._derive_to)]).lazy()
        streamed = both if since is None else both.filter(pl.col("ts") >= since)
        plans = {TABLE: session.order(streamed, intervals)}
        if self._specs:
            warm_up = both.head(0)  # the chunk's first sessions are the warm-up already
            plans[INDICATORS] = session.session_indicators(
                warm_up, both, self._specs, since, carry=("session",)
            )
        frames = pl.collect_all(list(plans.values()), engine="in-memory")
        out = dict(zip(plans, frames, strict=True))
        if not self._specs:
            empty = schema.empty(schema.INDICATORS).with_columns(pl.col("symbol").cast(self._enum))
            out[INDICATORS] = empty.with_columns(session=pl.lit(None, pl.Date))
        return out

    def _read(self, days: pl.DataFrame) -> pl.DataFrame:
        first, last = days["session"][0], days["session"][-1]
        raw = self._store.read(
            self.spec.source,
            self.spec.symbols,
            first - dt.timedelta(days=1),
            last + dt.timedelta(days=1),
            symbol_type=self._enum,
        ).collect(engine="streaming")  # see `Store.read`: faster, and lean on long reads
        tz = calendar.timezone(self._mic)
        bars = derive.annotate(
            raw.lazy(), self.spec.source, days, tz, extended_hours=self._extended
        )
        if self.spec.source != self.spec.interval:
            bars = derive.derive(
                bars, days, self.spec.interval, self.spec.source, emit_incomplete=self._emit
            )
        keep = pl.col("session").is_between(first, last)
        return (
            bars.filter(keep)
            .sort("session", "symbol", "ts", maintain_order=True)
            .select(schema.CATALOG_BARS.names())
            .collect(engine="in-memory")
        )


def chunk_sessions(spec: LoadSpec) -> int:
    """Return how many sessions a chunk of `spec` holds beyond its lookback.

    `CHUNK_SESSIONS`, or more when that many sessions hold fewer than `CHUNK_BARS`
    bars (6.5 regular hours a session): memory stays bounded by the bars, not the run.
    """
    per_session = max(1, 23_400 // spec.interval.seconds) * max(1, len(spec.symbols))
    return max(CHUNK_SESSIONS, CHUNK_BARS // per_session)


@dataclass(frozen=True)
class _Carry:
    """Parts of a chunk's first `sessions` sessions, copied from the previous chunk."""

    sessions: int
    parts: dict[str, pl.DataFrame]


class _BySession:
    """A frame sorted by ``session``, sliced by session positions without copying.

    The first `skip` sessions were not built (carried into a chunk that has streamed
    them already): asking for them is an error, not an empty frame.
    """

    def __init__(self, frame: pl.DataFrame, days: pl.Series, skip: int = 0) -> None:
        self.frame, self._skip = frame, skip
        # Session i starts at the first row whose session is >= days[i] (a binary search).
        starts = frame["session"].search_sorted(days.sort(), side="left").to_numpy()
        self._offsets = np.append(starts, frame.height).astype(np.int64)

    def between(self, first: int, end: int) -> pl.DataFrame:
        """Return the rows of session positions [first, end)."""
        if first < self._skip and end > first:
            raise LookupError(
                f"Sessions {first}-{self._skip - 1} of this chunk were carried from the "
                "previous one without session tables; a run streams sessions in order."
            )
        lo, hi = int(self._offsets[first]), int(self._offsets[end])
        return self.frame.slice(lo, hi - lo)


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
