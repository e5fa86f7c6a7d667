"""One session of the flow, phases 1.2 to 6 (see `pipeline.runner` for the overview)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

from pipeline import hist_indicators, schema
from pipeline.intervals import Interval
from pipeline.loader import GAPS, INDICATORS, QUALITY, TABLE
from pipeline.scanner import scan
from pipeline.stream import SessionQuality, Step, StreamStats, Subscriber, stream

if TYPE_CHECKING:
    from pipeline.runner import Coordinator

log = logging.getLogger("pipeline.flow")
FLOW = "[SESSION_FLOW] "


@dataclass(frozen=True)
class SessionDay:
    """What an engine hook learns of a session around phase 5.

    `table` is the whole session table as loaded in phase 4 (sorted by available_at,
    symbol): an engine may precompute per-row codes from it, never show it to a strategy.
    `picked` is the scanner's pick for the session, best first (None: no scanner).
    `quality(clock, symbol)` gives a symbol's session quality so far (None before a
    base slot has closed), straight from the stream's counters (the same figures the
    catalog's ``quality`` table shows). `ahead()` gives the tables of this session and
    the later ones already loaded, ``(session, table)`` in order: the tables those
    sessions will stream (an engine may plan from them, never show them to a strategy).
    """

    session: dt.date
    open: dt.datetime
    close: dt.datetime
    base: str
    table: pl.DataFrame
    picked: tuple[str, ...] | None = None
    quality: Callable[[dt.datetime, str], float | None] | None = None
    ahead: Callable[[], list[tuple[dt.date, pl.DataFrame]]] | None = None


class EngineHook(Protocol):
    """A stream subscriber that also hears when each session starts and ends, and the run."""

    def __call__(self, step: Step, /) -> None: ...

    def on_session_start(self, day: SessionDay, /) -> None: ...

    def on_session_end(self, day: SessionDay, /) -> None: ...

    def on_run_end(self) -> None: ...


class SessionRun:
    """The state of one session while its phases run."""

    def __init__(self, coordinator: Coordinator, day: dict[str, Any]) -> None:
        self.c = coordinator
        self.day: dt.date = day["session"]
        self.hours = day  # the session's row of `calendar.sessions`, as a dict
        self.seconds: dict[str, float] = {}
        self.bars: dict[str, int] = {}
        self.history_days: dict[Interval, list[dt.date]] = {}
        self.picked: tuple[str, ...] | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase into `seconds`."""
        started = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def execute(
        self,
        subscribers: Sequence[Subscriber],
        *,
        speed: float | None,
        engine: EngineHook | None = None,
    ) -> dict[str, Any]:
        """Run phases 1.2 to 6; return the session's figures.

        `engine` (optional) streams first among the subscribers and is told when the
        session starts (after phase 4) and ends (after phase 5).
        """
        catalog = self.c.catalog
        table, values = self.prepare()
        with self.phase("4"):
            catalog.load_session(table, values, conformed=True)
        with self.phase("5"):
            tracker = self._quality(table)
            if engine is not None:
                engine.on_session_start(self._day(table, tracker))
                subscribers = [engine, *subscribers]
            stats = stream(catalog, tracker, subscribers, speed=speed)
            if engine is not None:
                engine.on_session_end(self._day(table, tracker))
        return self._record(table, stats, tracker)

    def prepare(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Run phases 1.2 to 3; return the session table and its indicator values."""
        catalog = self.c.catalog
        with self.phase("1"):
            catalog.clear_session_bars()
            catalog.clear_historical_bars()
            self._log_hours()
        if self.c.scanner is not None:
            with self.phase("1.4"):
                self.picked = self._scan()
        with self.phase("2.1"):
            loaded = self._load_history()
        with self.phase("2.4"):
            derived = self._derive_history()
        parts = loaded + derived
        catalog.set_table_source("history_bars", lambda: _concat(parts), conformed=True)
        with self.phase("2.2"):
            self._historical_indicators(parts)
        with self.phase("2.3"):
            self._assess()
        with self.phase("3"):
            return self._build()

    # -- phases ----------------------------------------------------------------------
    def _day(self, table: pl.DataFrame, tracker: SessionQuality) -> SessionDay:
        r, base = self.hours, self.c.streams.base
        ahead = functools.partial(self.c.caches[base].ahead, self.day)
        return SessionDay(
            self.day, r["open"], r["close"], str(base), table, self.picked, tracker.value, ahead
        )

    def _scan(self) -> tuple[str, ...]:
        """Phase 1.4: run the scanner over the bars before the session date."""
        assert self.c.scanner is not None
        assert self.c.config.scanner is not None
        source, query = self.c.scanner
        picked = scan(source, query, self.day, self.c.config.scanner.params)
        self.c.record_scan(self.day, picked)
        self.bars["1.4"] = len(picked)
        log.info(
            "%sPHASE_1.4: Scanner %s picked %d symbols: %s",
            FLOW,
            query.name,
            len(picked),
            ", ".join(picked) or "none",
        )
        return tuple(picked)

    def _log_hours(self) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        r = self.hours
        early = " (early close)" if r["early_close"] else ""
        log.info(
            "%sPHASE_1.3: Session %s %s–%s UTC%s",  # noqa: RUF001 - the design's dash
            FLOW,
            self.day,
            f"{r['open']:%H:%M}",
            f"{r['close']:%H:%M}",
            early,
        )

    def _load_history(self) -> list[pl.DataFrame]:
        frames = []
        for iv, (sessions, names) in self.c.history_plan.items():
            bars = self.c.caches[iv].window(self.day, sessions, include_day=False, symbols=names)
            self.history_days[iv] = self.c.sessions_before(self.day, sessions)
            frames.append(bars)
            self._log_loaded(bars, iv)
        self.bars["2.1"] = sum(f.height for f in frames)
        return frames

    def _log_loaded(self, bars: pl.DataFrame, iv: Interval) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        counts = bars.group_by("symbol").len().sort("symbol")
        for symbol, n in counts.iter_rows():
            log.info("%sPHASE_2.1: Loaded %d bars for %s %s", FLOW, n, symbol, iv)

    def _derive_history(self) -> list[pl.DataFrame]:
        base, targets = self.c.streams.base, self.c.streams.derived
        if base not in self.history_days or not targets:
            self.bars["2.4"] = 0
            return []
        sessions, names = self.c.history_plan[base]
        frames = []
        for iv in targets:
            cache = self.c.caches[base]
            bars = cache.window(self.day, sessions, include_day=False, part=str(iv), symbols=names)
            log.info("%sPHASE_2.4: Derived %d %s bars", FLOW, bars.height, iv)
            frames.append(bars)
        self.bars["2.4"] = sum(f.height for f in frames)
        return frames

    def _historical_indicators(self, parts: list[pl.DataFrame]) -> None:
        specs = self.c.config.historical_indicators
        if not specs:
            self.c.catalog.set_table_source("indicators", _no_indicators)
            log.info("%sPHASE_2.2: Computed 0 indicators for 0 symbols", FLOW)
            return
        blocks = self.c.daily_blocks
        frames = [] if blocks is None else [blocks.of(self.day)]
        rest = specs if blocks is None else [s for s in specs if s.granularity == "minute"]
        if rest:
            frames.append(
                hist_indicators.compute(
                    _concat(parts).lazy(),
                    rest,
                    self.day,
                    self.hours["open"],
                    sessions=self._calendar_rows(self._all_days()),
                ).collect(engine="in-memory")
            )
        values = frames[0] if len(frames) == 1 else pl.concat(frames).sort("symbol", "name", "ts")
        self.c.catalog.set_table("indicators", values)
        # Counted in NumPy: a Polars n_unique waits for the thread pool, which the next
        # chunk's background load may hold.
        symbols = np.unique(values["symbol"].to_physical().to_numpy()).size
        log.info("%sPHASE_2.2: Computed %d indicators for %d symbols", FLOW, len(specs), symbols)

    def _assess(self) -> None:
        if not self.c.config.quality.enabled or not self.bars.get("2.1"):
            return
        rows: list[tuple[pl.DataFrame, str | None]] = []
        holes = []
        base = self.c.streams.base
        for iv, days in self.history_days.items():
            cache = self.c.caches[iv]
            q = cache.window(self.day, len(days), include_day=False, part=QUALITY)
            rows.append((q, None))
            if iv == base:  # derived intervals inherit the base's quality
                rows += [(q, str(d)) for d in self.c.streams.derived]
            holes.append(cache.window(self.day, len(days), include_day=False, part=GAPS))
        catalog = self.c.catalog
        catalog.set_table_source("quality", lambda: _inherited(rows), conformed=True)
        catalog.set_table_source("gaps", lambda: _sorted(holes, "start"), conformed=True)
        if not log.isEnabledFor(logging.INFO):
            return
        quality = catalog.table("quality")
        log.info(
            "%sPHASE_2.3: Assigned quality to %d symbol/interval pairs (avg %s)",
            FLOW,
            quality.select("symbol", "interval").n_unique(),
            "n/a" if (average := _mean(quality)) is None else f"{average:.1f}%",
        )

    def _build(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Phase 3: the session table and its indicator values, sliced from the chunk."""
        cache = self.c.caches[self.c.streams.base]
        table = cache.window(self.day, 0, include_day=True, part=TABLE)
        values = cache.window(self.day, 0, include_day=True, part=INDICATORS)
        self.bars["3"] = table.height
        streams = 1 + len(self.c.streams.derived)
        log.info("%sPHASE_3.2: Loaded %d bars across %d streams", FLOW, table.height, streams)
        return table, values

    def _quality(self, table: pl.DataFrame) -> SessionQuality:
        closes = self.c.slot_closes(self.day)
        base = str(self.c.streams.base)
        return SessionQuality(table, closes, base, self.day, self.c.catalog.universe)

    def record(self, table: pl.DataFrame, values: pl.DataFrame) -> dict[str, Any]:
        """Record a session that stopped after phase 3 (`prepare`): nothing streamed."""
        return self._record(table, StreamStats(0, 0, values.height, 0.0), None)

    def _record(
        self, table: pl.DataFrame, stats: StreamStats, tracker: SessionQuality | None
    ) -> dict[str, Any]:
        steps, values = stats.timestamps, stats.indicator_values
        last = stats.last
        average = tracker.mean(last) if tracker is not None and last is not None else None
        self.c.record_figures(
            [
                (self.c.run_id, self.day, phase, self.bars.get(phase, 0), seconds, average)
                for phase, seconds in self.seconds.items()
            ]
        )
        log.info(
            "%sPHASE_6: Session %s done: %d bars, %d timestamps, %d indicator values",
            FLOW,
            self.day,
            table.height,
            steps,
            values,
        )
        return {
            "session": self.day,
            "history_bars": self.bars.get("2.1", 0) + self.bars.get("2.4", 0),
            "session_bars": table.height,
            "timestamps": steps,
            "indicator_values": values,
            "quality": average,
            "seconds": sum(self.seconds.values()),
        }

    # -- helpers ---------------------------------------------------------------------
    @property
    def _emit(self) -> bool:
        return self.c.config.quality.emit_incomplete

    def _calendar_rows(self, days: Sequence[dt.date]) -> pl.DataFrame:
        """Calendar rows of `days` (history sessions, all strictly before the day)."""
        wanted = pl.Series(list(days), dtype=pl.Date).implode()
        return self.c.all_days.filter(pl.col("session").is_in(wanted))

    def _all_days(self) -> list[dt.date]:
        return sorted({d for days in self.history_days.values() for d in days})


def _concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Return the history parts as one frame (the empty history when there are none)."""
    return pl.concat(parts) if parts else schema.empty(schema.CATALOG_BARS)


def _inherited(parts: list[tuple[pl.DataFrame, str | None]]) -> pl.DataFrame:
    """Return the quality rows, each part relabelled to its interval when one is given."""
    frames = [q if iv is None else q.with_columns(interval=pl.lit(iv)) for q, iv in parts]
    return _sorted(frames, "session")


def _sorted(parts: list[pl.DataFrame], last: str) -> pl.DataFrame:
    """Return the quality or gaps parts as one frame sorted by symbol, interval, `last`."""
    return pl.concat(parts).sort("symbol", "interval", last)


def _no_indicators() -> pl.DataFrame:
    return schema.empty(schema.INDICATORS)


def _mean(quality: pl.DataFrame) -> float | None:
    """Return the mean of the ``quality`` column, or None when there is none."""
    value = quality.select(pl.col("quality").mean()).item() if quality.height else None
    return None if value is None else float(value)
