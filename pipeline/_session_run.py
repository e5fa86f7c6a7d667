"""One session of the flow, phases 1.2 to 6 (see `pipeline.runner` for the overview)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from pipeline import calendar, hist_indicators, schema
from pipeline.intervals import Interval
from pipeline.loader import GAPS, INDICATORS, QUALITY, TABLE
from pipeline.scanner import scan
from pipeline.stream import SessionQuality, Step, Subscriber, stream

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
    `quality(clock)` gives each symbol's session quality so far, straight from the
    stream's counters (the same figures the catalog's ``quality`` table shows).
    """

    session: dt.date
    open: dt.datetime
    close: dt.datetime
    base: str
    table: pl.DataFrame
    picked: tuple[str, ...] | None = None
    quality: Callable[[dt.datetime], dict[str, float]] | None = None


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
        self.row = coordinator.days.filter(pl.col("session") == self.day)
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
        hist = pl.concat([loaded, derived]) if derived.height else loaded
        catalog.set_table("history_bars", hist)
        with self.phase("2.2"):
            self._historical_indicators(hist)
        with self.phase("2.3"):
            self._assess(loaded)
        with self.phase("3"):
            table, values = self._build()
        with self.phase("4"):
            catalog.load_session(table, values)
        with self.phase("5"):
            tracker = self._quality(table)
            if engine is not None:
                engine.on_session_start(self._day(table, tracker))
                subscribers = [engine, *subscribers]
            stats = stream(catalog, tracker, subscribers, speed=speed)
            if engine is not None:
                engine.on_session_end(self._day(table, tracker))
        return self._record(table, stats.timestamps, values.height)

    # -- phases ----------------------------------------------------------------------
    def _day(self, table: pl.DataFrame, tracker: SessionQuality) -> SessionDay:
        r = self.row.row(0, named=True)
        base = str(self.c.streams.base)
        return SessionDay(self.day, r["open"], r["close"], base, table, self.picked, tracker.values)

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
        r = self.row.row(0, named=True)
        early = " (early close)" if r["early_close"] else ""
        log.info(
            "%sPHASE_1.3: Session %s %s–%s UTC%s",  # noqa: RUF001 - the design's dash
            FLOW,
            self.day,
            f"{r['open']:%H:%M}",
            f"{r['close']:%H:%M}",
            early,
        )

    def _load_history(self) -> pl.DataFrame:
        frames = []
        for iv, (sessions, names) in self._history_plan().items():
            bars = self.c.caches[iv].window(self.day, sessions, include_day=False)
            if names is not None:
                bars = bars.filter(pl.col("symbol").cast(pl.String).is_in(sorted(names)))
            self.history_days[iv] = calendar.sessions_before(self.c.mic, self.day, sessions)
            frames.append(bars)
            self._log_loaded(bars, iv)
        self.bars["2.1"] = sum(f.height for f in frames)
        return pl.concat(frames) if frames else schema.empty(schema.CATALOG_BARS)

    def _history_plan(self) -> dict[Interval, tuple[int, set[str] | None]]:
        """Merge history entries per interval: the longest window, the union of symbols."""
        merged: dict[Interval, tuple[int, set[str] | None]] = {}
        for entry in self.c.config.history:
            iv = Interval.parse(entry.interval)
            n, names = merged.get(iv, (0, set()))
            wanted = None if entry.symbols == "all" or names is None else names | set(entry.symbols)
            merged[iv] = (max(n, entry.sessions), wanted)
        return merged

    def _log_loaded(self, bars: pl.DataFrame, iv: Interval) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        counts = bars.group_by("symbol").len().sort("symbol")
        for symbol, n in counts.iter_rows():
            log.info("%sPHASE_2.1: Loaded %d bars for %s %s", FLOW, n, symbol, iv)

    def _derive_history(self) -> pl.DataFrame:
        base, targets = self.c.streams.base, self.c.streams.derived
        if base not in self.history_days or not targets:
            self.bars["2.4"] = 0
            return schema.empty(schema.CATALOG_BARS)
        sessions, names = self._history_plan()[base]
        frames = []
        for iv in targets:
            bars = self.c.caches[base].window(self.day, sessions, include_day=False, part=str(iv))
            if names is not None:
                bars = bars.filter(pl.col("symbol").cast(pl.String).is_in(sorted(names)))
            log.info("%sPHASE_2.4: Derived %d %s bars", FLOW, bars.height, iv)
            frames.append(bars)
        out = pl.concat(frames)
        self.bars["2.4"] = out.height
        return out

    def _historical_indicators(self, hist: pl.DataFrame) -> None:
        specs = self.c.config.historical_indicators
        values = schema.empty(schema.INDICATORS)
        if specs:
            opened = self.row["open"][0]
            values = hist_indicators.compute(
                hist.lazy(), specs, self.day, opened, sessions=self._calendar_rows(self._all_days())
            ).collect(engine="in-memory")
        self.c.catalog.set_table("indicators", values)
        symbols = values["symbol"].n_unique() if values.height else 0
        log.info("%sPHASE_2.2: Computed %d indicators for %d symbols", FLOW, len(specs), symbols)

    def _assess(self, loaded: pl.DataFrame) -> None:
        if not self.c.config.quality.enabled or loaded.is_empty():
            return
        rows, holes = [], []
        base = self.c.streams.base
        for iv, days in self.history_days.items():
            cache = self.c.caches[iv]
            q = cache.window(self.day, len(days), include_day=False, part=QUALITY)
            rows.append(q)
            if iv == base:
                rows += [q.with_columns(interval=pl.lit(str(d))) for d in self.c.streams.derived]
            holes.append(cache.window(self.day, len(days), include_day=False, part=GAPS))
        quality = pl.concat(rows).sort("symbol", "interval", "session")
        self.c.catalog.set_table("quality", quality)
        self.c.catalog.set_table("gaps", pl.concat(holes).sort("symbol", "interval", "start"))
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
        base = self.c.streams.base
        slots = calendar.slots(self.row, base).collect()
        closes = (slots["ts"] + base.duration).clip(upper_bound=self.row["close"][0])
        return SessionQuality(table, closes, str(base), self.day, self.c.catalog.universe)

    def _record(self, table: pl.DataFrame, steps: int, values: int) -> dict[str, Any]:
        quality = self.c.catalog.table("quality").filter(
            (pl.col("session") == self.day) & (pl.col("interval") == str(self.c.streams.base))
        )
        average = _mean(quality)
        figures = pl.DataFrame(
            {
                "run_id": self.c.run_id,
                "session": self.day,
                "phase": list(self.seconds),
                "bars": [self.bars.get(p, 0) for p in self.seconds],
                "seconds": list(self.seconds.values()),
                "quality": average,
            },
            schema=schema.SESSIONS,
        )
        self.c.catalog.append_table("sessions", figures)
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


def _mean(quality: pl.DataFrame) -> float | None:
    """Return the mean of the ``quality`` column, or None when there is none."""
    value = quality.select(pl.col("quality").mean()).item() if quality.height else None
    return None if value is None else float(value)
