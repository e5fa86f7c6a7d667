"""Phase 5: stream a session, one timestamp at a time.

The session table is already in the catalog, sorted by ``available_at``; streaming
moves its cursor. At each time T the stream reveals the rows with
``available_at == T`` (bars and indicator values), updates the session's quality
(expected = base slots closed by T, present = base bars revealed), and calls each
subscriber with the step. Cost per timestamp is O(rows revealed): counters live in
NumPy arrays, and the quality rows are only built when someone reads them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline import schema
from pipeline.catalog import Catalog

log = logging.getLogger("pipeline.flow")


@dataclass(frozen=True)
class Step:
    """What became visible at `clock`: the new bars and indicator values (zero-copy slices)."""

    clock: dt.datetime
    bars: pl.DataFrame
    indicators: pl.DataFrame


Subscriber = Callable[[Step], None]


@dataclass(frozen=True)
class StreamStats:
    """What one session's stream did."""

    timestamps: int
    bars: int
    indicator_values: int
    seconds: float


class SessionQuality:
    """Quality of the base interval so far in the session, per symbol, in NumPy counters."""

    def __init__(
        self,
        table: pl.DataFrame,
        slot_closes: pl.Series,
        base: str,
        day: dt.date,
        symbols: Sequence[str],
    ) -> None:
        self._codes = table.get_column("symbol").to_physical().to_numpy()
        self._is_base = (table.get_column("interval") == base).to_numpy()
        self._closes: npt.NDArray[np.int64] = slot_closes.to_physical().to_numpy()
        self._present = np.zeros(len(symbols), dtype=np.int64)
        self._symbols, self._base, self._day = list(symbols), base, day

    def advance(self, start: int, stop: int) -> None:
        """Count the base bars among table rows [start, stop)."""
        mask = self._is_base[start:stop]
        np.add.at(self._present, self._codes[start:stop][mask], 1)

    def _at(self, clock: dt.datetime) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        micros = int((clock - _EPOCH) / dt.timedelta(microseconds=1))
        expected = int(np.searchsorted(self._closes, micros, side="right"))
        present = np.minimum(self._present, expected)
        quality = np.where(expected > 0, 100.0 * present / max(expected, 1), np.nan)
        return expected, present, quality

    def values(self, clock: dt.datetime) -> dict[str, float]:
        """Return each symbol's quality (0-100) at `clock`; empty before a slot has closed.

        The same figures as `frame`, read from the counters without building a frame:
        the engine's quality gate asks for them before entry orders.
        """
        expected, _, quality = self._at(clock)
        if expected == 0:
            return {}
        return dict(zip(self._symbols, quality.tolist(), strict=True))

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


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
    steps = bars = values = 0
    previous: dt.datetime | None = None
    debug = log.isEnabledFor(logging.DEBUG)
    catalog.set_session_quality_source(quality.frame)
    while (clock := catalog.next_time()) is not None:
        if speed and previous is not None:
            sleep((clock - previous).total_seconds() / speed)
        step = Step(clock, *catalog.reveal_step(clock, quality.advance))
        for subscriber in subscribers:
            subscriber(step)
        if debug:
            _log_step(step)
        steps, bars, values = steps + 1, bars + step.bars.height, values + step.indicators.height
        previous = clock
    if previous is not None:
        catalog.set_session_quality(quality.frame(previous))  # the session's final figures
    return StreamStats(steps, bars, values, time.perf_counter() - started)


def _log_step(step: Step) -> None:
    counts = step.bars.group_by("symbol").len().sort("symbol")
    detail = ", ".join(f"{s}: {n}" for s, n in counts.iter_rows())
    log.debug("[SESSION_FLOW] PHASE_5.2: Next timestamp: %s", f"{step.clock:%H:%M:%S}")
    log.debug("[SESSION_FLOW] PHASE_5.3: Processed %d bars (%s)", step.bars.height, detail)
