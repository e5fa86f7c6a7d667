"""Example strategies shipped with the package (used by the sample config and the tests).

Examples
--------
>>> MovingAverageCross(fast=5, slow=20, interval="5m").params
{'fast': 5, 'slow': 20, 'interval': '5m', 'symbol': None, 'percent': 1.0}
"""

from __future__ import annotations

import math
from collections import deque

from pipeline.errors import ConfigError
from pipeline.intervals import Interval
from pipeline.strategy import BarsView, Context, Strategy

__all__ = ["MovingAverageCross"]

#: Averages closer than this share of the slow average count as equal (a tie).
TIE = 1e-9


class MovingAverageCross(Strategy):
    """Go long `percent` of equity when SMA(fast) crosses above SMA(slow); exit on the cross down.

    The averages are simple moving averages of the closes of `interval` bars as they
    become visible, kept incrementally per symbol (O(1) per bar) and carried across
    sessions; they start once `slow` bars have been seen (history bars are not read).
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
        if not (_whole(fast) and _whole(slow) and 1 <= fast < slow):
            raise ConfigError(
                f"MovingAverageCross needs whole numbers 1 <= fast < slow, found fast={fast!r}, "
                f"slow={slow!r}; e.g. params = {{fast = 10, slow = 30}}."
            )
        if not (isinstance(percent, int | float) and 0 < percent <= 1):
            raise ConfigError(
                f"MovingAverageCross percent must be in (0, 1], found {percent!r}; 1.0 is all-in."
            )
        Interval.parse(interval)
        super().__init__(fast=fast, slow=slow, interval=interval, symbol=symbol, percent=percent)
        self.fast, self.slow, self.interval = int(fast), int(slow), str(Interval.parse(interval))
        self.symbol, self.percent = symbol, float(percent)
        self._averages: dict[str, _Averages] = {}

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        """Update the averages of each new bar of `interval`; trade on a cross."""
        if self.interval not in bars.intervals:
            return
        rows = (bars.interval == bars.intervals.index(self.interval)).nonzero()[0]
        if not rows.size:
            return
        closes, codes, universe = bars.close, bars.symbol, bars.universe
        for i in rows.tolist():
            name = universe[codes[i]]
            if self.symbol is not None and name != self.symbol:
                continue
            averages = self._averages.get(name)
            if averages is None:
                averages = self._averages[name] = _Averages(self.fast, self.slow)
            cross = averages.push(float(closes[i]))
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
        window = self.window
        if len(window) >= self.fast:
            self.fast_sum -= window[-self.fast]
        if len(window) == self.slow:
            self.slow_sum -= window[0]
        window.append(close)
        self.fast_sum += close
        self.slow_sum += close
        self.pushed += 1
        if self.pushed % self.slow == 0:  # re-add exactly now and then: no drift
            values = list(window)
            self.fast_sum, self.slow_sum = math.fsum(values[-self.fast :]), math.fsum(values)
        if len(window) < self.slow:
            return 0
        fast, slow = self.fast_sum / self.fast, self.slow_sum / self.slow
        diff = fast - slow
        state = 0 if abs(diff) <= TIE * abs(slow) else (1 if diff > 0 else -1)
        previous, self.state = self.state, state
        if previous == -1 and state == 1:
            return 1
        if previous == 1 and state == -1:
            return -1
        return 0


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
