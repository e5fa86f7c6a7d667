"""The run configuration: frozen, validated at load, with a stable hash.

A run is described by one TOML (or JSON) file::

    name = "demo"
    calendar = "XNYS"
    start = "2024-07-01"
    end = "2024-07-10"
    symbols = ["ACME", "BOLT"]
    streams = ["1m", "5m", "15m"]

    [[history]]
    interval = "1m"
    sessions = 5

    [[indicators]]
    name = "sma"
    interval = "5m"
    period = 10

The dataclasses below are the validated form; `load_config` builds them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Session indicator functions (`indicators`).
INDICATOR_NAMES = ("sma", "ema", "wma", "rsi", "macd", "bbands", "atr", "stddev", "obv", "vwap")
#: Historical indicator functions (`historical_indicators`).
HISTORICAL_NAMES = ("avg", "max", "min", "atr", "prev")
#: Bar fields an indicator can read.
FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class HistoryEntry:
    """Trailing history to load before each session: `sessions` sessions of `interval` bars."""

    interval: str
    sessions: int
    symbols: tuple[str, ...] | Literal["all"] = "all"


@dataclass(frozen=True)
class HistoricalIndicator:
    """An indicator computed from history only, once per session (phase 2.2).

    - ``avg``: trailing average of `field` over `period`; with ``granularity =
      "minute"`` a per-minute-of-day profile (one value per minute of the session).
    - ``max`` / ``min``: trailing extreme of `field` over `period`.
    - ``atr``: average true range over `period` daily bars.
    - ``prev``: `field` of the previous session (close, high, low ...).

    `period` is ``Nd`` (N sessions), ``Nw`` (N calendar weeks) or ``Ny`` (N calendar
    years). The stored name is `label`, by default ``{name}_{field}_{period}``.
    """

    name: str
    field: str = "close"
    period: str = "1d"
    granularity: Literal["daily", "minute"] = "daily"
    label: str = ""

    @property
    def output(self) -> str:
        """The name its values carry in the `indicators` table."""
        if self.label:
            return self.label
        if self.name == "prev":
            return f"prev_{self.field}"
        if self.name == "atr":
            return f"atr_{self.period}"
        suffix = "_profile" if self.granularity == "minute" else ""
        return f"{self.name}_{self.field}_{self.period}{suffix}"


@dataclass(frozen=True)
class Indicator:
    """A session indicator on one interval, warmed up from history (phase 3).

    `params` holds what the function needs beyond `period`: ``field`` (default
    ``close``), ``fast``/``slow``/``signal`` for MACD, ``k`` for Bollinger bands.
    Multi-valued indicators store one row per part, named ``{output}.{part}``
    (``macd``, ``signal``, ``hist``; ``upper``, ``middle``, ``lower``).
    """

    name: str
    interval: str
    period: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def output(self) -> str:
        """The name its values carry in the `indicators` table."""
        if self.label:
            return self.label
        return self.name if self.period is None else f"{self.name}_{self.period}"

    def param(self, key: str, default: Any) -> Any:
        """Return a parameter, or `default` when it is not set."""
        return self.params.get(key, default)


@dataclass(frozen=True)
class QualityConfig:
    """Data-quality switches."""

    enabled: bool = True
    emit_incomplete: bool = False
    min_for_entry: float = 95.0


@dataclass(frozen=True)
class RunConfig:
    """A validated, frozen run configuration."""

    name: str
    start: dt.date
    end: dt.date
    symbols: tuple[str, ...]
    streams: tuple[str, ...] = ("1m",)
    calendar: str = "XNYS"
    extended_hours: bool = False
    history: tuple[HistoryEntry, ...] = ()
    historical_indicators: tuple[HistoricalIndicator, ...] = ()
    indicators: tuple[Indicator, ...] = ()
    quality: QualityConfig = QualityConfig()
    strategy: Mapping[str, Any] = field(default_factory=dict)
    broker: Mapping[str, Any] = field(default_factory=dict)
    data_root: str | None = None
