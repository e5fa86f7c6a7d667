"""Recognise the bar columns of a file: user mapping first, then well-known names.

Names match case-insensitively with surrounding spaces ignored. The stamp comes
from one column (``ts``, ``timestamp``, ``datetime``, or ``time`` alone), from
``date`` and ``time`` together, or from ``date`` alone (daily bars).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError, InputError, closest

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "datetime"),
    "date": ("date",),
    "time": ("time",),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "v", "vol"),
    "symbol": ("symbol", "ticker"),
}
TARGETS = tuple(ALIASES)
REQUIRED = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Columns:
    """Source column per bar field; the stamp is `ts`, or `date` (+ `time`)."""

    prices: Mapping[str, str]
    ts: str | None = None
    date: str | None = None
    time: str | None = None
    symbol: str | None = None


def resolve_columns(found: Sequence[str], mapping: Mapping[str, str], source: str) -> Columns:
    """Return which column of `found` holds each bar field; raise `InputError` if one is missing.

    `mapping` is the user's ``target -> source`` mapping (``--column ts=Time``); a source
    may also be a 1-based column number for files without a header.
    """
    chosen = {t: _user_source(t, s, found, source) for t, s in mapping.items()}
    keys = {}
    for name in reversed(found):
        keys[name.strip().lower()] = name
    used = set(chosen.values())
    for target, aliases in ALIASES.items():
        if target not in chosen:
            hit = next((keys[a] for a in aliases if a in keys and keys[a] not in used), None)
            if hit is not None:
                chosen[target] = hit
    return _assemble(chosen, found, source)


def _user_source(target: str, name: str, found: Sequence[str], source: str) -> str:
    if target not in ALIASES:
        raise ConfigError(f"Cannot map column {name!r} to {target!r}: {closest(target, TARGETS)}")
    if name in found:
        return name
    by_key = {f.strip().lower(): f for f in found}
    if name.strip().lower() in by_key:
        return by_key[name.strip().lower()]
    if name.isdigit() and 1 <= int(name) <= len(found):
        return found[int(name) - 1]
    raise InputError(
        f"Column {name!r} (mapped to {target}) is not in '{source}': found {_listing(found)}. "
        f"Fix the mapping, e.g. --column {target}=NAME."
    )


def _assemble(chosen: dict[str, str], found: Sequence[str], source: str) -> Columns:
    missing = [t for t in REQUIRED if t not in chosen]
    ts, date, time = chosen.get("ts"), chosen.get("date"), chosen.get("time")
    if ts is None and date is None and time is not None:
        ts, time = time, None
    if ts is not None:
        date = time = None
    elif date is None:
        missing.insert(0, "ts")
    if missing:
        raise InputError(_missing_message(missing, found, source))
    prices = {t: chosen[t] for t in REQUIRED}
    return Columns(prices=prices, ts=ts, date=date, time=time, symbol=chosen.get("symbol"))


def _missing_message(missing: list[str], found: Sequence[str], source: str) -> str:
    names = {t: ", ".join(a) for t, a in ALIASES.items()}
    names["ts"] = "ts, timestamp, datetime, date (+ time) or time"
    wanted = "; ".join(f"{t}: {names[t]}" for t in missing)
    fixes = " ".join(f"--column {t}=NAME" for t in missing)
    return (
        f"Bar file '{source}' has no column for {', '.join(missing)} (expected {wanted}); "
        f"found {_listing(found)}. Name the columns with {fixes}."
    )


def _listing(found: Sequence[str]) -> str:
    shown = [f for f in found if f != "_row"]
    return ", ".join(repr(f) for f in shown) if shown else "no columns"
