"""The moving-average crossover example strategy (`pipeline.strategies.MovingAverageCross`).

Its parameter checks (`check_cross`) and tie rule (`TIE`) are shared with the
vectorised crossover (`pipeline.vectorised`), so both accept the same parameters and
see the same crosses.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from pipeline.errors import ConfigError
from pipeline.intervals import Interval
from pipeline.strategy import BarsView, Context, Strategy

#: Averages closer than this share of the slow average count as equal (a tie).
TIE = 1e-9
#: From this many symbols in a session on, `MovingAverageCross` keeps its averages in
#: arrays and updates all of a step's symbols at once (below it, per symbol is cheaper).
_MANY = 8


class MovingAverageCross(Strategy):
    """Go long `percent` of equity when SMA(fast) crosses above SMA(slow); exit on the cross down.

    The averages are simple moving averages of the closes of `interval` bars as they
    become visible, kept incrementally per symbol (O(1) per bar) and carried across
    sessions; they start once `slow` bars have been seen (history bars are not read).
    With 8 or more symbols in a session they live in NumPy arrays and a step's symbols
    are updated together (the same arithmetic, so the same crosses).
    Long only. `symbol` limits it to one symbol (None: every symbol of the run).

    Cross rule (the same as backtesting.py's ``crossover``): with ``state`` = the sign
    of SMA(fast) - SMA(slow), 0 when they differ by at most 1e-9 of SMA(slow), a cross
    up is ``state`` going from -1 at the previous bar to +1 now, a cross down from +1
    to -1. A bar where the averages tie breaks a cross: -1, 0, +1 is not a cross.
    """

    def __init__(
        self,
        fast: int = 10,
        slow: int = 30,
        interval: str = "1m",
        symbol: str | None = None,
        percent: float = 1.0,
    ) -> None:
        checked = check_cross("MovingAverageCross", fast, slow, interval, percent)
        super().__init__(fast=fast, slow=slow, interval=interval, symbol=symbol, percent=percent)
        self.fast, self.slow, self.interval, self.percent = checked
        self.symbol = symbol
        self._averages: dict[str, _Averages] = {}
        self._crosses: _Crosses | None = None  # with many symbols, instead of _averages

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        """Update the averages of each new bar of `interval`; trade on a cross."""
        intervals = bars.intervals
        if self.interval not in intervals:
            return
        universe = bars.universe
        if self._crosses is None and len(universe) >= _MANY:
            self._crosses = _Crosses(self.fast, self.slow)
        if self._crosses is not None:
            self._on_many(ctx, bars, intervals.index(self.interval), universe)
            return
        closes, names = bars.values("close"), bars.symbols()
        if len(intervals) > 1:  # keep the rows of our interval
            rows = (bars.interval == intervals.index(self.interval)).nonzero()[0].tolist()
            closes, names = [closes[i] for i in rows], [names[i] for i in rows]
        for name, close in zip(names, closes, strict=True):
            if self.symbol is not None and name != self.symbol:
                continue
            averages = self._averages.get(name)
            if averages is None:
                averages = self._averages[name] = _Averages(self.fast, self.slow)
            cross = averages.push(close)
            if cross:
                self._trade(ctx, name, cross)

    def _on_many(
        self, ctx: Context, bars: BarsView, interval: int, universe: tuple[str, ...]
    ) -> None:
        """`on_bars` for many symbols: every symbol's averages updated at once, in arrays."""
        assert self._crosses is not None
        closes, codes = bars.close, bars.symbol
        mine = bars.interval == interval if len(bars.intervals) > 1 else None
        if self.symbol is not None:
            code = universe.index(self.symbol) if self.symbol in universe else -1
            mine = codes == code if mine is None else mine & (codes == code)
        if mine is not None:
            closes, codes = closes[mine], codes[mine]
        crosses = self._crosses.push(self._crosses.slots(universe)[codes], closes)
        for row in crosses.nonzero()[0].tolist():
            self._trade(ctx, universe[codes[row]], int(crosses[row]))

    def _trade(self, ctx: Context, name: str, cross: int) -> None:
        if cross > 0:
            ctx.target_percent(name, self.percent)
        elif cross < 0 and ctx.position(name) > 0:
            ctx.target_quantity(name, 0)


class _Averages:
    """Running sums of the last `fast` and `slow` closes and the sign of their difference."""

    __slots__ = ("fast", "fast_sum", "pushed", "slow", "slow_sum", "state", "window")

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.window: deque[float] = deque(maxlen=slow)
        self.fast_sum = self.slow_sum = 0.0
        self.state: int | None = None
        self.pushed = 0

    def push(self, close: float) -> int:
        """Add a close; return +1 on a cross up, -1 on a cross down, else 0."""
        window, n_fast, n_slow = self.window, self.fast, self.slow
        held = len(window)
        fast_sum, slow_sum = self.fast_sum, self.slow_sum
        if held >= n_fast:
            fast_sum -= window[-n_fast]
        if held == n_slow:
            slow_sum -= window[0]
        window.append(close)
        fast_sum += close
        slow_sum += close
        self.pushed = pushed = self.pushed + 1
        if pushed % n_slow == 0:  # re-add exactly now and then: no drift
            values = list(window)
            fast_sum, slow_sum = math.fsum(values[-n_fast:]), math.fsum(values)
        self.fast_sum, self.slow_sum = fast_sum, slow_sum
        if held + 1 < n_slow:
            return 0
        slow = slow_sum / n_slow
        diff = fast_sum / n_fast - slow
        state = 0 if abs(diff) <= TIE * abs(slow) else (1 if diff > 0 else -1)
        previous, self.state = self.state, state
        if previous == -1 and state == 1:
            return 1
        if previous == 1 and state == -1:
            return -1
        return 0


class _Crosses:
    """`_Averages` for many symbols at once: one row of arrays per symbol (its slot).

    The arithmetic is `_Averages.push`'s, operation for operation (a value leaves a sum
    before the new close joins it; both sums are re-added exactly every `slow` closes),
    so both give the same crosses. A step must hold each symbol at most once.
    """

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self._slots: dict[str, int] = {}
        self._universe: tuple[str, ...] = ()
        self._codes = np.zeros(0, dtype=np.int64)  # `_universe` code -> slot
        self.window = np.zeros((0, slow))  # slot -> its last `slow` closes, a ring
        self.pushed = np.zeros(0, dtype=np.int64)
        self.fast_sum, self.slow_sum = np.zeros(0), np.zeros(0)
        self.state = np.zeros(0, dtype=np.int8)  # 0 also before the first full window
        self._warm = False  # every slot has had its first full window

    def slots(self, universe: tuple[str, ...]) -> npt.NDArray[np.int64]:
        """Return each `universe` code's slot (symbols keep their slot across sessions)."""
        if universe is not self._universe:
            for name in universe:
                self._slots.setdefault(name, len(self._slots))
            self._grow(len(self._slots))
            self._universe = universe
            self._codes = np.array([self._slots[n] for n in universe], dtype=np.int64)
        return self._codes

    def _grow(self, size: int) -> None:
        extra = size - len(self.pushed)
        if extra > 0:
            self.window = np.vstack([self.window, np.zeros((extra, self.slow))])
            self.pushed = np.append(self.pushed, np.zeros(extra, dtype=np.int64))
            self.fast_sum = np.append(self.fast_sum, np.zeros(extra))
            self.slow_sum = np.append(self.slow_sum, np.zeros(extra))
            self.state = np.append(self.state, np.zeros(extra, dtype=np.int8))
            self._warm = False

    def push(
        self, slots: npt.NDArray[np.int64], closes: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int8]:
        """Add one close per slot; return +1 (cross up), -1 (cross down) or 0 per slot."""
        fast, slow = self.fast, self.slow
        if not slots.size:
            return np.zeros(0, dtype=np.int8)
        window = self.window.reshape(-1)  # a view: slot s, push p is at s * slow + p % slow
        pushed = self.pushed[slots]
        warm = self._warm  # every slot past its first window: no masks below
        row = slots * slow
        ring = pushed % slow
        at = row + ring
        leaving_fast = window[row + (ring - fast) % slow]
        leaving_slow = window[at]
        if not warm:
            leaving_fast[pushed < fast] = 0.0
            leaving_slow[pushed < slow] = 0.0
        window[at] = closes
        fast_sum = (self.fast_sum[slots] - leaving_fast) + closes
        slow_sum = (self.slow_sum[slots] - leaving_slow) + closes
        pushed += 1
        self.pushed[slots] = pushed
        if not self._warm:
            self._warm = bool(self.pushed.min() >= slow)
        again = (ring == slow - 1).nonzero()[0]  # `slow` pushes since: re-add exactly
        if again.size:
            rings = self.window[slots[again]].tolist()  # in push order: `slow` closes just ended
            fast_sum[again] = [math.fsum(ring[slow - fast :]) for ring in rings]
            slow_sum[again] = [math.fsum(ring) for ring in rings]
        self.fast_sum[slots], self.slow_sum[slots] = fast_sum, slow_sum
        average = slow_sum / slow
        diff = fast_sum / fast - average
        band = TIE * np.abs(average)
        state = np.subtract(diff > band, diff < -band, dtype=np.int8)
        if not warm:
            state[pushed < slow] = 0  # no state before the first full window
        previous = self.state[slots]
        self.state[slots] = state
        crosses: npt.NDArray[np.int8] = state * (previous * state == -1)  # -1 -> 1 or 1 -> -1
        return crosses


def is_whole(value: object) -> bool:
    """Return True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_cross(
    name: str, fast: object, slow: object, interval: str, percent: object
) -> tuple[int, int, str, float]:
    """Return a moving-average crossover's (fast, slow, interval, percent), normalised.

    Raise `ConfigError` unless they are usable. Shared by the event and vectorised
    crossovers so both accept, and hold, exactly the same.
    """
    if not (is_whole(fast) and is_whole(slow) and 1 <= fast < slow):  # type: ignore[operator]
        raise ConfigError(
            f"{name} needs whole numbers 1 <= fast < slow, found fast={fast!r}, "
            f"slow={slow!r}; e.g. params = {{fast = 10, slow = 30}}."
        )
    if not (isinstance(percent, int | float) and 0 < percent <= 1):
        raise ConfigError(f"{name} percent must be in (0, 1], found {percent!r}; 1.0 is all-in.")
    return int(fast), int(slow), str(Interval.parse(interval)), float(percent)  # type: ignore[call-overload]
