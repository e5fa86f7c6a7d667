"""The coordinator: replays the run's sessions in order, the only place that collects.

For each trading session of the date range:

1.1 resolve the streams once: the base interval and the derived ones
    (`intervals.base_interval`), and check every symbol has the base in range;
1.2 clear the session state (`catalog`);
1.3 take the session's regular hours from the calendar (`calendar`);
1.4 with a ``[scanner]``, pick the session's symbols from the candidates with a saved
    query over the bars before the session date (`scanner`); the picks go to the
    ``scans`` table (a catalog extra) and to the engine hook;
2.1 load the trailing history of each config entry (`loader`: chunks of sessions
    read once, sliced per session);
2.4 derive the historical bars of the derived streams (`history.derive_intervals`,
    applied per chunk by the loader);
2.2 compute the historical indicators (`hist_indicators`);
2.3 assess the history's quality and gaps (`history.assess`, per chunk);
3   build the session table and its indicators (`session`);
4   activate: hand the session to the catalog (`catalog.load_session`);
5   stream it, timestamp by timestamp (`stream`); an engine hook (`engine.Engine`),
    when given, hears the session start and end and trades at each timestamp;
6   record the session's figures in the ``sessions`` table, and go on.

Phase 2.4 runs before 2.2 and 2.3 so they see the derived bars too. Every phase logs
one ``[SESSION_FLOW] PHASE_x.y`` line at INFO (per-timestamp lines at DEBUG).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline import calendar, schema
from pipeline._daily_blocks import DailyBlocks
from pipeline._session_run import EngineHook, SessionDay, SessionRun
from pipeline.catalog import Catalog, get_catalog
from pipeline.config import RunConfig, config_hash
from pipeline.errors import DataNotFoundError
from pipeline.intervals import Interval, base_interval
from pipeline.loader import BarCache, LoadSpec, plan
from pipeline.queries import SavedQuery, get_query
from pipeline.scanner import SCANS, ScanSource, scans_frame
from pipeline.store import Store
from pipeline.stream import Subscriber

__all__ = [
    "Coordinator",
    "EngineHook",
    "RunReport",
    "SessionDay",
    "Streams",
    "resolve_streams",
    "run",
]

log = logging.getLogger("pipeline.flow")
FLOW = "[SESSION_FLOW] "


@dataclass(frozen=True)
class Streams:
    """Phase 1.1's answer: what is streamed and what is derived from it."""

    base: Interval
    derived: tuple[Interval, ...]


@dataclass(frozen=True)
class RunReport:
    """What a run did: its id and one row of figures per session."""

    run_id: str
    sessions: pl.DataFrame
    seconds: float


def resolve_streams(config: RunConfig, store: Store, run_days: pl.DataFrame) -> Streams:
    """Phase 1.1: pick the base interval and check every symbol has it over the run."""
    base = base_interval(list(config.streams), store.intervals())
    derived = tuple(sorted(Interval.parse(s) for s in config.streams if Interval.parse(s) != base))
    inventory = store.inventory().filter(pl.col("interval") == str(base))
    have = {r["symbol"]: r for r in inventory.iter_rows(named=True)}
    first_close, last_open = run_days["close"][0], run_days["open"][-1]
    problems = []
    for symbol in config.symbols:
        row = have.get(symbol)
        if row is None:
            stored = sorted(str(iv) for iv in store.intervals() if symbol in store.symbols(iv))
            problems.append(f"{symbol} has no {base} bars (stored: {', '.join(stored) or 'none'})")
        elif row["first"] >= first_close or row["last"] < last_open:
            problems.append(
                f"{symbol} {base} bars run {row['first']:%Y-%m-%d} to {row['last']:%Y-%m-%d}"
            )
    if problems:
        start, end = run_days["session"][0], run_days["session"][-1]
        raise DataNotFoundError(
            f"The run needs {base} bars for every symbol from {start} to {end}: "
            + "; ".join(problems)
            + ". Import the missing bars or narrow the run's symbols or dates."
        )
    names = ", ".join(str(d) for d in derived) or "nothing"
    log.info("%sPHASE_1.1: Streaming %s, deriving %s", FLOW, base, names)
    return Streams(base, derived)


class Coordinator:
    """Runs a config's sessions against a store, writing into the catalog."""

    def __init__(self, config: RunConfig, store: Store, catalog: Catalog | None = None) -> None:
        self.config, self.store = config, store
        self.catalog = catalog or get_catalog()
        self.mic = config.calendar
        self.days = calendar.sessions(self.mic, config.start, config.end)
        if self.days.is_empty():
            raise DataNotFoundError(
                f"{config.start}..{config.end} holds no {self.mic} session: widen the dates."
            )
        self.streams = resolve_streams(config, store, self.days)
        self.run_id = config_hash(config)
        self.catalog.set_universe(config.symbols)
        lookback = max([h.sessions for h in config.history], default=0)
        first = calendar.sessions_before(self.mic, config.start, lookback)[:1] or [config.start]
        self.all_days = calendar.sessions(self.mic, first[0], self.days["session"][-1])
        self.caches = {spec.interval: self._cache(spec) for spec in self._plan()}
        self._closes = _SlotCloses(self.days, self.streams.base)
        self._day_list: list[dt.date] = self.all_days.get_column("session").to_list()
        self._day_index = {d: i for i, d in enumerate(self._day_list)}
        self.history_plan = _history_plan(config)
        self.daily_blocks = self._daily_blocks()
        self._figures: list[tuple[object, ...]] = []
        self.scanner: tuple[ScanSource, SavedQuery] | None = None
        self._scans: list[pl.DataFrame] = []
        if config.scanner is not None:
            chosen = config.scanner.symbols
            candidates = config.symbols if chosen == "all" else chosen
            query = get_query(config.scanner.query)
            self.scanner = (ScanSource(store, candidates, self.mic), query)

    @property
    def scans(self) -> pl.DataFrame:
        """The scan results so far: (session, rank, symbol), empty without a scanner."""
        return pl.concat(self._scans) if self._scans else pl.DataFrame(schema=SCANS)

    def sessions_before(self, day: dt.date, n: int) -> list[dt.date]:
        """Return the `n` sessions strictly before `day` (`calendar.sessions_before`)."""
        i = self._day_index.get(day, -1)
        if i < n:
            return calendar.sessions_before(self.mic, day, n)
        return self._day_list[i - n : i]

    def slot_closes(self, session: dt.date) -> npt.NDArray[np.int64]:
        """Return when each base slot of `session` closes (microseconds since the epoch)."""
        return self._closes.of(session)

    def record_figures(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Add a session's rows to the catalog's ``sessions`` table (`schema.SESSIONS`)."""
        self._figures.extend(rows)
        self.catalog.set_table_source("sessions", partial(_figures, tuple(self._figures)))

    def record_scan(self, session: dt.date, picked: Sequence[str]) -> None:
        """Keep a session's picks and show them all to SQL as the catalog extra ``scans``."""
        self._scans.append(scans_frame(session, picked))
        self.catalog.register_extra("scans", self.scans)

    def _plan(self) -> list[LoadSpec]:
        everyone = list(self.config.symbols)
        wanted = [
            (h.interval, h.sessions, everyone if h.symbols == "all" else list(h.symbols))
            for h in self.config.history
        ]
        wanted.append((str(self.streams.base), 0, everyone))
        return plan(wanted, self.store.intervals())

    def _daily_blocks(self) -> DailyBlocks | None:
        """Phase 2.2's daily indicators by blocks of sessions, when the history allows it.

        Their input must be exactly the 1d history entry's bars: not when 1d bars are
        also streamed or derived in session (they would join the history too).
        """
        daily = [s for s in self.config.historical_indicators if s.granularity != "minute"]
        day = Interval.parse("1d")
        entry = self.history_plan.get(day)
        if not daily or entry is None or day in (self.streams.base, *self.streams.derived):
            return None
        sessions, names = entry
        cache = self.caches[day]
        return DailyBlocks(cache, daily, sessions, names, days=self.days, all_days=self._day_list)

    def _cache(self, spec: LoadSpec) -> BarCache:
        in_history = any(Interval.parse(h.interval) == spec.interval for h in self.config.history)
        is_base = spec.interval == self.streams.base
        return BarCache(
            self.store,
            spec,
            self.all_days,
            self.mic,
            extended_hours=self.config.extended_hours,
            emit_incomplete=self.config.quality.emit_incomplete,
            symbol_type=schema.symbol_dtype(self.config.symbols),
            derive_to=self.streams.derived if is_base else (),
            assess=in_history and self.config.quality.enabled,
            session_specs=self.config.indicators if is_base else None,
            conform=self.catalog.conform,
            prefetch=self.config.load_ahead,
        )

    def run(
        self,
        subscribers: Sequence[Subscriber] = (),
        *,
        speed: float | None = None,
        progress: Callable[[int, int], None] | None = None,
        engine: EngineHook | None = None,
    ) -> RunReport:
        """Run every session in order; return the per-session figures.

        `engine` (an `pipeline.engine.Engine`) streams before the other subscribers,
        hears each session's start and end, and records its results when the run ends.
        """
        started = time.perf_counter()
        rows = []
        days = self.days.rows(named=True)
        for done, day in enumerate(days, start=1):
            rows.append(self.run_session(day, subscribers, speed=speed, engine=engine))
            if progress is not None:
                progress(done, len(days))
        if engine is not None:
            engine.on_run_end()
        figures = pl.DataFrame(rows, orient="row")
        return RunReport(self.run_id, figures, time.perf_counter() - started)

    def run_session(
        self,
        day: dict[str, object],
        subscribers: Sequence[Subscriber] = (),
        *,
        speed: float | None = None,
        engine: EngineHook | None = None,
    ) -> dict[str, object]:
        """Run phases 1.2 to 6 for one session (a row of `calendar.sessions`)."""
        return SessionRun(self, day).execute(subscribers, speed=speed, engine=engine)


def _history_plan(config: RunConfig) -> dict[Interval, tuple[int, set[str] | None]]:
    """Merge history entries per interval: the longest window, the union of symbols."""
    merged: dict[Interval, tuple[int, set[str] | None]] = {}
    for entry in config.history:
        iv = Interval.parse(entry.interval)
        n, names = merged.get(iv, (0, set()))
        wanted = None if entry.symbols == "all" or names is None else names | set(entry.symbols)
        merged[iv] = (max(n, entry.sessions), wanted)
    return merged


class _SlotCloses:
    """The close of every base slot of the run's sessions, computed once, sliced per session."""

    def __init__(self, days: pl.DataFrame, base: Interval) -> None:
        self._days, self._base = days, base
        self._spans: dict[dt.date, tuple[int, int]] = {}
        self._closes: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if base.unit in ("d", "w"):
            return  # daily and weekly slots are few: computed per session
        slots = calendar.slots(days, base).join(
            days.lazy().select("session", "close"), on="session", maintain_order="left"
        )
        frame = slots.select(
            "session", close=pl.min_horizontal(pl.col("ts") + base.duration, pl.col("close"))
        ).collect()
        self._closes = schema.micros(frame.get_column("close"))
        sessions = days.get_column("session")
        starts = frame.get_column("session").search_sorted(sessions, side="left").to_list()
        stops = frame.get_column("session").search_sorted(sessions, side="right").to_list()
        self._spans = dict(zip(sessions.to_list(), zip(starts, stops, strict=True), strict=True))

    def of(self, session: dt.date) -> npt.NDArray[np.int64]:
        span = self._spans.get(session)
        if span is not None:
            return self._closes[span[0] : span[1]]
        row = self._days.filter(pl.col("session") == session)
        slots = calendar.slots(row, self._base).collect()
        closes = (slots["ts"] + self._base.duration).clip(upper_bound=row["close"][0])
        return schema.micros(closes)


def _figures(rows: tuple[tuple[object, ...], ...]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=schema.SESSIONS, orient="row")


def run(
    config: RunConfig,
    store: Store,
    subscribers: Sequence[Subscriber] = (),
    *,
    speed: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Run the session flow for `config` over `store`; see the module docstring."""
    return Coordinator(config, store).run(subscribers, speed=speed, progress=progress)
