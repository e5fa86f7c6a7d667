"""Phase 5: stream a session, one timestamp at a time.

The session table is already in the catalog, sorted by ``available_at``; streaming
moves its cursor. Before the first timestamp the catalog plans the steps once (each
distinct ``available_at`` and where its rows end, one NumPy pass), so a step costs
O(1) plus what the subscribers read: at each time T the catalog reveals the rows with
``available_at == T`` (bars and indicator values), and each subscriber is called with a
`Step` whose frames are zero-copy slices made only when read. The session's quality
(expected = base slots closed by T, present = base bars revealed) is computed from the
clock when someone asks for it, never per step.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline import schema
from pipeline.catalog import Catalog

log = logging.getLogger("pipeline.flow")


class Step:
    """What became visible at `clock`: the new bars and indicator values.

    Built by the stream as rows ``[start, stop)`` of the session table (and rows of its
    indicator values); `bars` and `indicators` are zero-copy slices made on first read,
    so a subscriber that reads the rows by position pays nothing for them. A step made
    directly from two frames (``Step(clock, bars, indicators)``) has ``start = None``.
    """

    __slots__ = (
        "_bars",
        "_frame",
        "_istart",
        "_values",
        "_vframe",
        "clock",
        "n_values",
        "size",
        "start",
    )

    def __init__(
        self,
        clock: dt.datetime,
        bars: pl.DataFrame | None = None,
        indicators: pl.DataFrame | None = None,
    ) -> None:
        self.clock = clock
        self._bars, self._values = bars, indicators
        self._frame: pl.DataFrame | None = None
        self._vframe: pl.DataFrame | None = None
        self.start: int | None = None
        self._istart = 0
        self.size = 0 if bars is None else bars.height
        self.n_values = 0 if indicators is None else indicators.height

    @classmethod
    def of_rows(
        cls,
        clock: dt.datetime,
        frame: pl.DataFrame,
        rows: tuple[int, int],
        values: pl.DataFrame,
        value_rows: tuple[int, int],
    ) -> Step:
        """Return the step of rows ``[rows)`` of `frame` and ``[value_rows)`` of `values`."""
        step = cls.__new__(cls)  # no __init__: this runs once per step
        step.clock, step._bars, step._values = clock, None, None
        step._frame, step._vframe = frame, values
        step.start, step.size = rows[0], rows[1] - rows[0]
        step._istart, step.n_values = value_rows[0], value_rows[1] - value_rows[0]
        return step

    @property
    def stop(self) -> int | None:
        """One past the step's last row in the session table (None for a direct step)."""
        return None if self.start is None else self.start + self.size

    @property
    def bars(self) -> pl.DataFrame:
        """The bars revealed at `clock` (a zero-copy slice of the session table)."""
        if self._bars is None:
            assert self._frame is not None
            assert self.start is not None
            self._bars = self._frame.slice(self.start, self.size)
        return self._bars

    @property
    def indicators(self) -> pl.DataFrame:
        """The indicator values revealed at `clock` (a zero-copy slice)."""
        if self._values is None:
            assert self._vframe is not None
            self._values = self._vframe.slice(self._istart, self.n_values)
        return self._values


Subscriber = Callable[[Step], None]


@runtime_checkable
class QuietSubscriber(Protocol):
    """A subscriber that can take a run of steps where it has nothing to do at once.

    When every subscriber is one (and nothing paces the stream or logs DEBUG step
    lines) and each one's `takes_quiet_steps` says so for the session, the stream asks
    each `quiet_until(clocks, ends, k)` before step k: the first step >= k it must see
    on its own (k: this one). Steps k up to the earliest answer (excluded), j, are then
    revealed together and handed to each `on_quiet(clocks, ends, k, j, start)`: step
    i is at ``clocks[i]`` and its rows end at ``ends[i]``; the first starts at `start`.
    """

    def __call__(self, step: Step, /) -> None: ...

    def takes_quiet_steps(self) -> bool: ...

    def quiet_until(self, clocks: Sequence[dt.datetime], ends: Sequence[int], k: int, /) -> int: ...

    def on_quiet(
        self, clocks: Sequence[dt.datetime], ends: Sequence[int], k: int, j: int, start: int, /
    ) -> None: ...


@dataclass(frozen=True)
class StreamStats:
    """What one session's stream did."""

    timestamps: int
    bars: int
    indicator_values: int
    seconds: float
    last: dt.datetime | None = None  # the last timestamp streamed


class SessionQuality:
    """Quality of the base interval so far in the session, per symbol, from the clock.

    ``present`` counts the base bars with ``available_at <= clock``; ``expected`` the
    base slots closed by then. Counts are kept in NumPy and advanced only when asked
    (each row is counted once over the session), so streaming a timestamp costs
    nothing here. Safe to read from several threads.
    """

    def __init__(
        self,
        table: pl.DataFrame,
        slot_closes: pl.Series | npt.NDArray[np.int64],
        base: str,
        day: dt.date,
        symbols: Sequence[str],
    ) -> None:
        is_base = (table.get_column("interval") == base).to_numpy()
        self._codes = table.get_column("symbol").to_physical().to_numpy()[is_base]
        self._times = schema.micros(table.get_column("available_at"))[is_base]
        self._closes: npt.NDArray[np.int64] = (
            slot_closes if isinstance(slot_closes, np.ndarray) else schema.micros(slot_closes)
        )
        self._present = np.zeros(len(symbols), dtype=np.int64)
        self._counted = 0
        self._lock = threading.Lock()
        self._symbols, self._base, self._day = list(symbols), base, day
        self._index = {name: i for i, name in enumerate(self._symbols)}
        self._last: tuple[dt.datetime | None, int, npt.NDArray[np.int64]] = (None, 0, self._present)

    def _counts(self, clock: dt.datetime) -> tuple[int, npt.NDArray[np.int64]]:
        """Return the base slots closed by `clock` and each symbol's bars present (capped)."""
        with self._lock:
            last, expected, present = self._last
            if clock == last:
                return expected, present
            micros = schema.moment_micros(clock)
            expected = int(self._closes.searchsorted(micros, side="right"))
            upto = int(self._times.searchsorted(micros, side="right"))
            if upto < self._counted:  # an earlier clock: count from the start
                self._present[:], self._counted = 0, 0
            if upto > self._counted:
                codes = self._codes[self._counted : upto]
                self._present += np.bincount(codes, minlength=self._present.size)
                self._counted = upto
            present = np.minimum(self._present, expected)
            self._last = (clock, expected, present)
        return expected, present

    def _at(self, clock: dt.datetime) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        expected, present = self._counts(clock)
        quality = np.where(expected > 0, 100.0 * present / max(expected, 1), np.nan)
        return expected, present, quality

    def value(self, clock: dt.datetime, symbol: str) -> float | None:
        """Return one symbol's quality at `clock` (`values`' figure; None when it has none).

        The engine's quality gate asks this before an entry order: the counts are
        advanced once per clock, and only the ordered symbol's figure is computed.
        """
        i = self._index.get(symbol)
        expected, present = self._counts(clock)
        if i is None or expected == 0:
            return None
        return 100.0 * int(present[i]) / expected

    def values(self, clock: dt.datetime) -> dict[str, float]:
        """Return each symbol's quality (0-100) at `clock`; empty before a slot has closed.

        The same figures as `frame`, read from the counters without building a frame:
        the engine's quality gate asks for them before entry orders.
        """
        expected, _, quality = self._at(clock)
        if expected == 0:
            return {}
        return dict(zip(self._symbols, quality.tolist(), strict=True))

    def mean(self, clock: dt.datetime) -> float | None:
        """Return the mean quality over the symbols at `clock` (None before a slot closed)."""
        expected, _, quality = self._at(clock)
        known = quality[~np.isnan(quality)]
        return float(known.mean()) if expected and known.size else None

    def frame(self, clock: dt.datetime) -> pl.DataFrame:
        """Return the session's quality rows at `clock` (`schema.QUALITY`)."""
        expected, present, quality = self._at(clock)
        return pl.DataFrame(
            {
                "symbol": self._symbols,
                "interval": self._base,
                "session": self._day,
                "expected": np.full(len(self._symbols), expected),
                "present": present,
                "quality": quality,
                "complete": present == expected,
            },
            schema_overrides={k: v for k, v in schema.QUALITY.items() if k != "symbol"},
        ).with_columns(pl.col("quality").fill_nan(None))


def stream(
    catalog: Catalog,
    quality: SessionQuality,
    subscribers: Sequence[Subscriber] = (),
    *,
    speed: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StreamStats:
    """Reveal the loaded session timestamp by timestamp; call `subscribers` at each.

    `speed` paces the stream at that many times market time (None: as fast as possible).
    """
    started = time.perf_counter()
    bars = values = 0
    previous: dt.datetime | None = None
    debug = log.isEnabledFor(logging.DEBUG)
    catalog.set_session_quality_source(quality.frame)
    plan = catalog.steps()
    frame, value_frame, advance = plan.frame, plan.values, catalog.advance
    quiet = _quiet_subscribers(subscribers, speed, debug)
    n, k = len(plan.clocks), 0
    while k < n:
        if quiet:
            j = min(q.quiet_until(plan.clocks, plan.ends, k) for q in quiet)
            if j > k:  # steps k .. j-1 at once
                start, stop, vstart, vstop = advance(plan, j - 1)
                for q in quiet:
                    q.on_quiet(plan.clocks, plan.ends, k, j, start)
                bars, values = bars + stop - start, values + vstop - vstart
                previous, k = plan.clocks[j - 1], j
                continue
        clock = plan.clocks[k]
        if speed and previous is not None:
            sleep((clock - previous).total_seconds() / speed)
        start, stop, vstart, vstop = advance(plan, k)
        step = Step.of_rows(clock, frame, (start, stop), value_frame, (vstart, vstop))
        for subscriber in subscribers:
            subscriber(step)
        if debug:
            _log_step(step)
        bars, values = bars + stop - start, values + vstop - vstart
        previous, k = clock, k + 1
    seconds = time.perf_counter() - started
    return StreamStats(len(plan.clocks), bars, values, seconds, previous)


def _quiet_subscribers(
    subscribers: Sequence[Subscriber], speed: float | None, debug: bool
) -> list[QuietSubscriber]:
    """Return the subscribers when all take quiet steps at once and nothing watches each step."""
    if speed or debug:
        return []
    quiet = [s for s in subscribers if isinstance(s, QuietSubscriber) and s.takes_quiet_steps()]
    return quiet if len(quiet) == len(subscribers) else []


def _log_step(step: Step) -> None:
    counts = step.bars.group_by("symbol").len().sort("symbol")
    detail = ", ".join(f"{s}: {n}" for s, n in counts.iter_rows())
    log.debug("[SESSION_FLOW] PHASE_5.2: Next timestamp: %s", f"{step.clock:%H:%M:%S}")
    log.debug("[SESSION_FLOW] PHASE_5.3: Processed %d bars (%s)", step.bars.height, detail)
