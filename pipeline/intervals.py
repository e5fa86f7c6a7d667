"""Bar intervals: parsing, ordering, derivability and the base-interval rule.

An interval is written ``N`` followed by a unit: ``s`` (seconds), ``m`` (minutes),
``h`` (hours, = 60N minutes), ``d`` (trading sessions) or ``w`` (weeks).
Intraday intervals (s, m, h) are fixed lengths of time; ``1d`` is one trading
session and ``1w`` one calendar week of sessions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import total_ordering

from pipeline.errors import IntervalError

_PATTERN = re.compile(r"^\s*([1-9][0-9]*)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_UNIT_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_DAY_SECONDS = 86_400


@total_ordering
@dataclass(frozen=True, slots=True)
class Interval:
    """A parsed bar interval such as ``5m``.

    Examples
    --------
    >>> Interval.parse("5m").seconds
    300
    >>> Interval.parse("1h") == Interval.parse("60m")
    True
    """

    count: int
    unit: str  # one of "s", "m", "d", "w"; hours are normalised to minutes

    @classmethod
    def parse(cls, text: str | Interval) -> Interval:
        """Parse ``30s``, ``1m``, ``1h``, ``1d``, ``1w`` ...; raise `IntervalError` otherwise."""
        if isinstance(text, Interval):
            return text
        match = _PATTERN.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise IntervalError(
                f"Interval {text!r} is not valid: write a whole number and a unit, one of "
                "s (seconds), m (minutes), h (hours), d (sessions), w (weeks), e.g. '30s', '1m', "
                "'5m', '1h', '1d', '1w'."
            )
        count, unit = int(match.group(1)), match.group(2)
        if unit == "h":
            count, unit = count * 60, "m"
        if unit == "s" and count % 60 == 0:
            count, unit = count // 60, "m"
        if unit in ("d", "w") and count != 1:
            raise IntervalError(
                f"Interval {text!r} is not supported: multi-{_UNIT_NAMES[unit]} bars are not "
                f"stored or derived; use '1{unit}'."
            )
        if unit == "m" and count > 24 * 60:
            raise IntervalError(f"Interval {text!r} is longer than a day: use '1d' or '1w'.")
        return cls(count, unit)

    @property
    def is_intraday(self) -> bool:
        """True for second, minute and hour intervals."""
        return self.unit in ("s", "m")

    @property
    def seconds(self) -> int:
        """Length in seconds (a session counts as a day, a week as seven days)."""
        if self.unit == "d":
            return _DAY_SECONDS
        if self.unit == "w":
            return 7 * _DAY_SECONDS
        return self.count * _UNIT_SECONDS[self.unit]

    @property
    def duration(self) -> dt.timedelta:
        """Length as a `timedelta` (see `seconds`)."""
        return dt.timedelta(seconds=self.seconds)

    @property
    def polars(self) -> str:
        """The interval as a Polars duration string, e.g. ``5m`` or ``30s``."""
        if self.unit == "d":
            return "1d"
        if self.unit == "w":
            return "1w"
        return f"{self.seconds}s" if self.unit == "s" else f"{self.count}m"

    @property
    def grid_seconds(self) -> int:
        """Spacing of valid stamps for an intraday interval: gcd(interval, 15 min).

        A 1m bar starts on a whole minute, a 5m bar on a multiple of 5 minutes, a
        1h bar on a quarter hour (09:30 ET is a valid hourly start). Daily and weekly
        bars are labelled by date, so their grid is one day.
        """
        import math

        if not self.is_intraday:
            return _DAY_SECONDS
        return math.gcd(self.seconds, 900)

    def derives_from(self, base: Interval) -> bool:
        """True when bars of this interval can be built from bars of `base`.

        Intraday intervals derive from a finer intraday interval that divides them;
        ``1d`` derives from any intraday interval; ``1w`` from ``1d`` or intraday.
        """
        if self == base:
            return True
        if self.is_intraday:
            return base.is_intraday and self.seconds % base.seconds == 0
        if self.unit == "d":
            return base.is_intraday
        return base.is_intraday or base.unit == "d"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Interval):
            return NotImplemented
        return self.seconds < other.seconds

    def __str__(self) -> str:
        if self.unit == "m" and self.count % 60 == 0:
            return f"{self.count // 60}h"
        return f"{self.count}{self.unit}"


def base_interval(
    requested: Sequence[str | Interval], available: Sequence[str | Interval]
) -> Interval:
    """Pick the interval to stream: the finest available one every requested interval derives from.

    Raise `IntervalError` naming the requested intervals that no available interval
    can produce.

    Examples
    --------
    >>> str(base_interval(["5m", "15m"], ["1m", "1d"]))
    '1m'
    >>> str(base_interval(["15m", "1h"], ["5m", "15m", "1d"]))
    '5m'
    """
    wanted = sorted({Interval.parse(r) for r in requested})
    stored = sorted({Interval.parse(a) for a in available})
    if not wanted:
        raise IntervalError("No interval requested: name at least one, e.g. streams = ['1m'].")
    candidates = [b for b in stored if all(w.derives_from(b) for w in wanted)]
    if not candidates:
        have = ", ".join(str(s) for s in stored) or "nothing"
        orphans = [str(w) for w in wanted if not any(w.derives_from(b) for b in stored)]
        missing = ", ".join(orphans) if orphans else ", ".join(str(w) for w in wanted)
        raise IntervalError(
            f"No stored interval can produce {missing} (stored: {have}). Import bars at an "
            "interval that divides every requested interval, e.g. 1m for 5m and 15m."
        )
    # The finest candidate: every coarser bar is then derived the same way, from the
    # most detailed data stored (a vendor's own 15m file is not preferred over 1m).
    return candidates[0]
