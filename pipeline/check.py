"""The store's data check: quality and gaps of stored bars against the exchange calendar.

For every stored interval and symbol, the sessions between the symbol's first and
last bar are compared with the calendar's expected slots (`pipeline.quality`).
This module composes the lazy stages and is the one place here that collects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from pipeline import calendar, quality, schema
from pipeline.errors import CalendarError, DataNotFoundError, closest
from pipeline.intervals import Interval
from pipeline.store import Store


@dataclass(frozen=True)
class CheckResult:
    """Quality per symbol/interval/session, its summary, and the gaps."""

    sessions: pl.DataFrame
    summary: pl.DataFrame
    gaps: pl.DataFrame


def check_store(
    store: Store,
    mic: str = "XNYS",
    *,
    intervals: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> CheckResult:
    """Return quality and gaps for the stored bars, per symbol, interval and session.

    Each symbol is checked over the sessions from its first to its last stored bar
    (clipped to `start`/`end`), so data that simply begins later is not a gap. With
    `symbols`, each interval is checked for those of them it holds; a symbol that no
    checked interval holds raises `DataNotFoundError`.
    """
    store.check_root()
    stored = store.intervals()
    if not stored:
        raise DataNotFoundError(
            f"The store at '{store.root}' holds no bars. Import some with `pipeline data import "
            "FILE --interval 1m ...`, or pass --root DIR to point at another store."
        )
    wanted = [Interval.parse(i) for i in intervals] if intervals else stored
    for iv in wanted:
        if iv not in stored:
            have = ", ".join(str(s) for s in stored)
            raise DataNotFoundError(f"No {iv} bars are stored (stored: {have}).")
    held = {iv: store.symbols(iv) for iv in stored}
    if symbols:
        _require_symbols(list(dict.fromkeys(symbols)), wanted, held)
    per_session, gaps = [], []
    for iv in wanted:
        names = [s for s in dict.fromkeys(symbols) if s in held[iv]] if symbols else held[iv]
        if not names:
            continue
        bars = store.read(iv, names, start, end).collect()
        if bars.is_empty():
            continue
        q, g = _check_interval(bars, iv, mic, start, end)
        per_session.append(q)
        gaps.append(g)
    sessions_frame = _concat(per_session, _SESSION_SCHEMA)
    return CheckResult(
        sessions=sessions_frame,
        summary=quality.summarise(sessions_frame.drop("early_close").lazy()).collect(),
        gaps=_concat(gaps, schema.GAPS),
    )


def _require_symbols(
    symbols: list[str], wanted: list[Interval], held: dict[Interval, list[str]]
) -> None:
    """Raise `DataNotFoundError` for the first of `symbols` that no `wanted` interval holds."""
    for symbol in symbols:
        if any(symbol in held[iv] for iv in wanted):
            continue
        checked = ", ".join(str(iv) for iv in wanted)
        elsewhere = [str(iv) for iv, names in held.items() if symbol in names]
        if elsewhere:
            raise DataNotFoundError(
                f"No bars of symbol {symbol!r} are stored at {checked}: it is stored at "
                f"{', '.join(elsewhere)}. Pass --interval {elsewhere[0]}, or leave --interval out."
            )
        known = sorted({s for names in held.values() for s in names})
        hint = closest(symbol, known)
        hint = f" ({hint})" if hint.startswith("did you mean") else ""
        raise DataNotFoundError(
            f"No bars of symbol {symbol!r} are stored at {checked}{hint}. `pipeline data list` "
            f"shows what is stored; import its bars with `pipeline data import FILE --symbol "
            f"{symbol}`."
        )


_SESSION_SCHEMA = pl.Schema({**schema.QUALITY, "early_close": pl.Boolean()})


def _check_interval(
    bars: pl.DataFrame, iv: Interval, mic: str, start: dt.date | None, end: dt.date | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    stamps = bars.group_by("symbol").agg(first=pl.col("ts").min(), last=pl.col("ts").max())
    earliest, latest = calendar.bounds(mic)
    _require_inside(stamps, iv, mic, earliest, latest)
    lo = max(_day(stamps["first"].min()) - dt.timedelta(days=1), earliest)
    hi = min(_day(stamps["last"].max()) + dt.timedelta(days=1), latest)
    sessions = calendar.sessions(mic, max(lo, start or lo), min(hi, end or hi))
    if sessions.is_empty():
        return schema.empty(_SESSION_SCHEMA), schema.empty(schema.GAPS)
    ranges = _session_ranges(stamps, sessions, iv)
    slots = calendar.slots(sessions, iv)
    in_range = (pl.col("session") >= pl.col("first")) & (pl.col("session") <= pl.col("last"))
    q = (
        quality.quality(bars.lazy(), slots, str(iv))
        .join(ranges.lazy().with_columns(pl.col("symbol").cast(pl.String)), on="symbol")
        .filter(in_range)
        .join(sessions.lazy().select("session", "early_close"), on="session", how="left")
        .select(*_SESSION_SCHEMA.names())
    )
    g = (
        quality.gaps(bars.lazy(), slots, str(iv))
        .join(ranges.lazy().with_columns(pl.col("symbol").cast(pl.String)), on="symbol")
        .filter(in_range)
        .select(*schema.GAPS.names())
    )
    return (
        q.sort("symbol", "session").collect(engine="in-memory"),
        g.sort("symbol", "start").collect(engine="in-memory"),
    )


def _require_inside(
    stamps: pl.DataFrame, iv: Interval, mic: str, earliest: dt.date, latest: dt.date
) -> None:
    """Raise `CalendarError` naming the symbols with bars outside the calendar's range."""
    first, last = pl.col("first").dt.date(), pl.col("last").dt.date()
    outside = stamps.filter((first < earliest) | (last > latest)).sort("symbol")
    if outside.is_empty():
        return
    shown = outside.head(5).select(pl.format("{} ({} to {})", "symbol", first, last))
    more = f" and {outside.height - 5} more" if outside.height > 5 else ""
    raise CalendarError(
        f"{iv} bars of {', '.join(shown.to_series().to_list())}{more} lie outside the {mic} "
        f"calendar ({earliest} to {latest}), so they cannot be checked. Check those bars' "
        "stamps (`pipeline data list` shows each symbol's first and last bar), or check only "
        "the dates inside the calendar with --start and --end."
    )


def _day(value: object) -> dt.date:
    assert isinstance(value, dt.datetime)
    return value.date()


def _session_ranges(stamps: pl.DataFrame, sessions: pl.DataFrame, iv: Interval) -> pl.DataFrame:
    """Return each symbol's first and last session from its first and last bar.

    Intraday bars belong to sessions by the clock: the first session is the first one
    that closes after the first bar, the last the last one that opens before the last
    bar (a 20:00 ET post-market bar is on the next UTC date but in that day's session).
    Daily and weekly bars carry their date.
    """
    if not iv.is_intraday:
        return stamps.select(
            "symbol", first=pl.col("first").dt.date(), last=pl.col("last").dt.date()
        )
    days = sessions["session"]
    first = sessions["close"].search_sorted(stamps["first"], side="right")
    last = sessions["open"].search_sorted(stamps["last"], side="right") - 1
    return stamps.select(
        "symbol",
        first=days.gather(first.clip(0, days.len() - 1)),
        last=days.gather(last.clip(0, days.len() - 1)),
    )


def _concat(frames: list[pl.DataFrame], shape: pl.Schema) -> pl.DataFrame:
    return pl.concat(frames) if frames else schema.empty(shape)
