"""Vendor presets: how to read the bar files of a known source.

A preset fills in what a file does not say about itself: separator, header,
column names, time zone, stamp convention, price scale, and what the file's path
tells (symbol, interval, trading day). Command-line options always win over a
preset. Use `get` to look one up and `describe_all` to list them.

Examples
--------
>>> get("ninjatrader").layout.separator
';'
>>> layout = get("alphavantage").layout_for(Path("SPY_1min.csv"))
>>> (layout.symbol, layout.interval)
('SPY', '1m')
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pipeline.errors import ConfigError, InputError, closest

Stamp = Literal["open", "close"]
BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Layout:
    """What is known about one bar file before reading it (None = detect or ask).

    ``day`` set means the ``ts`` column holds milliseconds since local midnight of
    that day (LEAN). ``price_divisor`` divides open, high, low and close.
    """

    separator: str | None = None
    has_header: bool | None = None
    names: tuple[str, ...] = ()
    tz: str | None = None
    stamp: Stamp | None = None
    symbol: str | None = None
    interval: str | None = None
    day: dt.date | None = None
    price_divisor: int = 1


@dataclass(frozen=True)
class Preset:
    """A named vendor format: a base `Layout` plus what the file's path adds."""

    name: str
    description: str
    layout: Layout
    from_path: Callable[[Path, Layout], Layout] | None = None
    skip_in_folders: str | None = None  # glob of files a folder import passes over

    def layout_for(self, path: Path) -> Layout:
        """Return the layout of the file at `path` (raise `InputError` if the preset refuses it)."""
        return self.from_path(path, self.layout) if self.from_path else self.layout


# ---------------------------------------------------------------- LEAN
_LEAN_RESOLUTIONS = {"minute": "1m", "second": "1s", "daily": "1d"}
_LEAN_DAY_FILE = re.compile(
    r"^(\d{8})_(?:[a-z0-9.^_-]+_(?:minute|second)_)?(trade|quote)\.(zip|csv)$"
)
_LEAN_HINT = (
    "expected .../equity/usa/minute/<sym>/YYYYMMDD_trade.zip, "
    ".../equity/usa/daily/<sym>.zip or .../index/usa/minute/<sym>/YYYYMMDD_trade.zip"
)


def _lean_layout(path: Path, base: Layout) -> Layout:
    parts = [p.lower() for p in path.parts]
    at = max((i for i in range(len(parts) - 3) if parts[i] in ("equity", "index")), default=None)
    if at is None:
        raise InputError(f"File '{path}' is not inside a LEAN data tree: {_LEAN_HINT}.")
    kind, resolution = parts[at], parts[at + 2]
    index = kind == "index"
    layout = replace(
        base,
        tz="America/Chicago" if index else "America/New_York",
        price_divisor=1 if index else 10_000,
    )
    if resolution == "hour":
        raise InputError(
            f"File '{path}' holds LEAN hour bars, which are stamped at the top of the hour "
            "(09:00 covers 09:30-10:00), not at the bar open: they are not supported. "
            "Import the minute bars and derive 1h from them."
        )
    if resolution not in _LEAN_RESOLUTIONS:
        raise InputError(
            f"File '{path}' is in a LEAN '{resolution}' folder: expected minute, second or "
            f"daily ({_LEAN_HINT})."
        )
    interval = _LEAN_RESOLUTIONS[resolution]
    if resolution == "daily":
        return replace(layout, interval=interval, symbol=path.stem.upper())
    return _lean_day_layout(path, replace(layout, interval=interval, symbol=parts[at + 3].upper()))


def _lean_day_layout(path: Path, layout: Layout) -> Layout:
    match = _LEAN_DAY_FILE.match(path.name.lower())
    if match is None:
        raise InputError(f"LEAN file name '{path.name}' is not YYYYMMDD_trade.zip: {_LEAN_HINT}.")
    if match.group(2) == "quote":
        raise InputError(
            f"File '{path}' holds LEAN quotes (bid/ask bars), not trades: import the "
            "matching *_trade.zip file instead."
        )
    try:
        day = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError as exc:
        raise InputError(f"LEAN file name '{path.name}' has no valid YYYYMMDD date.") from exc
    return replace(layout, day=day)


# ---------------------------------------------------------------- Alpha Vantage
_AV_FILE = re.compile(r"^(.+)_(1min|5min|15min|30min|60min|daily)$", re.IGNORECASE)
_AV_INTERVALS = {"1min": "1m", "5min": "5m", "15min": "15m", "30min": "30m", "60min": "1h"}


def _alphavantage_layout(path: Path, base: Layout) -> Layout:
    match = _AV_FILE.match(path.stem)
    if match is None:
        return base
    symbol, name = match.group(1).upper(), match.group(2).lower()
    return replace(base, symbol=symbol, interval=_AV_INTERVALS.get(name, "1d"))


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "lean": Preset(
            name="lean",
            description=(
                "QuantConnect LEAN data tree (AlgoSeek). Minute/second trade zips "
                "equity/usa/{minute,second}/<sym>/YYYYMMDD_trade.zip hold ms since midnight "
                "and deci-cent prices (divided by 10,000); daily zips equity/usa/daily/<sym>.zip "
                "hold 'YYYYMMDD HH:MM' rows; index/usa/minute/<sym>/ holds plain prices. Stamps "
                "are bar opens in America/New_York (index: America/Chicago). Symbol, interval "
                "and day come from the path. Hour files and *_quote.zip are refused; folder "
                "imports skip quote files."
            ),
            layout=Layout(separator=",", has_header=False, names=BAR_COLUMNS, stamp="open"),
            from_path=_lean_layout,
            skip_in_folders="*_quote.*",
        ),
        "ninjatrader": Preset(
            name="ninjatrader",
            description=(
                "NinjaTrader text export (as in PyAlgoTrade's test data): no header, ';' "
                "separator, 'yyyyMMdd HHmmss;open;high;low;close;volume', naive UTC stamps "
                "marking the bar close. Pass --symbol and --interval."
            ),
            layout=Layout(
                separator=";", has_header=False, names=BAR_COLUMNS, tz="UTC", stamp="close"
            ),
        ),
        "alphavantage": Preset(
            name="alphavantage",
            description=(
                "Alpha Vantage CSV download: header 'datetime,open,high,low,close,volume', "
                "newest row first, naive America/New_York stamps marking the bar close. "
                "Symbol and interval come from the file name "
                "<SYM>_<1min|5min|15min|30min|60min|daily>.csv."
            ),
            layout=Layout(tz="America/New_York", stamp="close"),
            from_path=_alphavantage_layout,
        ),
    }
)


def get(name: str) -> Preset:
    """Return the preset called `name`; raise `ConfigError` with the closest name otherwise."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}: {closest(key, sorted(PRESETS))}")
    return PRESETS[key]


def describe_all() -> str:
    """Return one paragraph per preset, for ``--help`` and the docs."""
    return "\n\n".join(f"{p.name}: {p.description}" for p in PRESETS.values())
