"""Exchange sessions and the bar slots they imply, from `exchange_calendars`.

A session is one trading day of an exchange (a MIC such as ``XNYS``): its regular
open and close in UTC, an optional lunch break, and whether it closes early.
Slots are the bar opens a complete series should hold inside regular hours,
anchored at the session open and restarted after a lunch break.

`exchange_calendars` imports pandas (about half a second), so it is imported
inside the functions that need it: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import warnings
import zoneinfo
from collections.abc import Iterator
from typing import Any

import polars as pl

from pipeline import schema
from pipeline.errors import CalendarError, closest
from pipeline.intervals import Interval

# Widest range asked of a calendar that sets no bounds of its own.
_EARLIEST = dt.date(1900, 1, 1)
_LATEST = dt.date(2099, 12, 31)
# How far a session search looks before falling back to the calendar's bounds.
_LOOK_AHEAD = dt.timedelta(days=30)
_EXAMPLE_MICS = "'XNYS', 'XNAS', 'XLON', 'XHKG', 'XTKS'"


def sessions(mic: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Return the sessions of exchange `mic` from `start` to `end`, both inclusive.

    Parameters
    ----------
    mic
        Calendar name understood by `exchange_calendars`, e.g. ``"XNYS"``.
    start, end
        First and last calendar date of the range; dates that are not sessions
        produce no row.

    Returns
    -------
    pl.DataFrame
        Schema `schema.CALENDAR_SESSIONS`, sorted by ``session``. ``early_close``
        is true when the session closes before the calendar's regular close.

    Examples
    --------
    >>> sessions("XNYS", dt.date(2024, 7, 3), dt.date(2024, 7, 5))["early_close"].to_list()
    [True, False]
    """
    start, end = _as_date(start), _as_date(end)
    if start > end:
        raise CalendarError(
            f"Session range {start} to {end} is empty: start is after end. Swap the dates."
        )
    table = _table(mic, *_span(mic, start, end))
    return table.filter(pl.col("session").is_between(start, end))


def holidays(mic: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Return the trading weekdays from `start` to `end` on which `mic` holds no session.

    Trading weekdays are Monday to Friday for most exchanges (the calendar's
    weekmask decides). Ad-hoc closures count, e.g. XNYS on 2025-01-09.
    """
    open_days = sessions(mic, start, end)["session"]
    weekmask = str(_calendar(mic).weekmask)
    trading = [i + 1 for i, flag in enumerate(weekmask) if flag == "1"]
    days = pl.date_range(_as_date(start), _as_date(end), "1d", eager=True).alias("day")
    frame = days.to_frame().filter(
        pl.col("day").dt.weekday().is_in(trading), ~pl.col("day").is_in(open_days.implode())
    )
    return frame["day"].to_list()


def session_on_or_after(mic: str, day: dt.date) -> dt.date:
    """Return `day` when it is a session of `mic`, else the next session after it.

    Raise `CalendarError` when the calendar has no session from `day` to its upper bound.
    """
    day = _as_date(day)
    _, latest = bounds(mic)
    for horizon in (day + _LOOK_AHEAD, latest):
        if day > latest:
            break
        found = sessions(mic, day, min(horizon, latest))["session"]
        if len(found):
            first: dt.date = found[0]
            return first
    raise CalendarError(
        f"{mic} has no session on or after {day} (its calendar ends {latest}): "
        "choose an earlier date."
    )


def sessions_before(mic: str, day: dt.date, n: int) -> list[dt.date]:
    """Return the `n` sessions of `mic` strictly before `day`, oldest first.

    Raise `CalendarError` when the calendar holds fewer than `n` sessions before `day`.

    Examples
    --------
    >>> [str(d) for d in sessions_before("XNYS", dt.date(2024, 7, 5), 2)]
    ['2024-07-02', '2024-07-03']
    """
    day = _as_date(day)
    if n < 0:
        raise CalendarError(f"Cannot take {n} sessions before {day}: ask for 0 or more.")
    if n == 0:
        return []
    earliest, _ = bounds(mic)
    last = day - dt.timedelta(days=1)
    found: list[dt.date] = []
    for horizon in (day - dt.timedelta(days=2 * n + 30), earliest):
        if last < earliest:
            break
        found = sessions(mic, max(horizon, earliest), last)["session"].tail(n).to_list()
        if len(found) == n:
            return found
    raise CalendarError(
        f"{mic} has only {len(found)} sessions before {day} (its calendar starts {earliest}), "
        f"{n} were asked for: ask for fewer trailing sessions or a later date."
    )


def timezone(mic: str) -> str:
    """Return the exchange's IANA time zone, e.g. ``America/New_York`` for XNYS.

    Examples
    --------
    >>> timezone("XLON")
    'Europe/London'
    """
    return str(_calendar(mic).tz)


def day_start(mic: str, day: dt.date) -> dt.datetime:
    """Return the instant (UTC) the exchange-local date `day` begins: local midnight.

    Every bar of that date, pre-market included, opens at or after it.

    Examples
    --------
    >>> day_start("XNYS", dt.date(2024, 7, 1))
    datetime.datetime(2024, 7, 1, 4, 0, tzinfo=datetime.timezone.utc)
    """
    local = dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(timezone(mic)))
    return local.astimezone(dt.UTC)


def slots(sessions: pl.LazyFrame | pl.DataFrame, interval: str | Interval) -> pl.LazyFrame:
    """Return the expected bar opens of `interval` in the regular hours of `sessions`.

    Intraday slots are anchored at the session open: every ``open + k * interval``
    in [open, close) outside [break_start, break_end); after a lunch break the grid
    restarts at ``break_end``. A ``1d`` slot is the session date at 00:00 UTC; a
    ``1w`` slot is the Monday (00:00 UTC) of each week holding a session, and its
    ``session`` is that Monday, so the slot's date always equals its ``session``.

    Parameters
    ----------
    sessions
        Frame with the columns of `schema.CALENDAR_SESSIONS`, as `sessions` returns.
    interval
        Bar interval, e.g. ``"1m"``, ``"1h"`` or ``"1d"``.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.SLOTS`, sorted by (``session``, ``ts``).
    """
    step = Interval.parse(interval)
    frame = sessions.lazy()
    if step.unit == "d":
        out = frame.select("session", ts=_midnight(pl.col("session")))
    elif step.unit == "w":
        monday = pl.col("session").dt.truncate("1w")
        out = frame.select(session=monday, ts=_midnight(monday)).unique()
    else:
        out = _segments(frame).select(
            "session",
            ts=pl.datetime_ranges("seg_start", "seg_end", step.polars, closed="left"),
        )
        out = out.explode("ts")
    return out.select(pl.col("session"), pl.col("ts").cast(schema.TS)).sort("session", "ts")


def _segments(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Split each session into its trading segments: [open, close) or the two sides of a break."""
    morning = frame.select(
        "session",
        seg_start=pl.col("open"),
        seg_end=pl.coalesce("break_start", "close"),
    )
    afternoon = frame.filter(pl.col("break_end").is_not_null()).select(
        "session", seg_start=pl.col("break_end"), seg_end=pl.col("close")
    )
    return pl.concat([morning, afternoon])


def _midnight(day: pl.Expr) -> pl.Expr:
    """Return the date expression `day` as 00:00 UTC of that date."""
    return day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _as_date(value: dt.date) -> dt.date:
    """Return `value` as a plain date (a `datetime` loses its time)."""
    return value.date() if isinstance(value, dt.datetime) else value


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pandas deprecation warnings raised inside exchange_calendars (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def bounds(mic: str) -> tuple[dt.date, dt.date]:
    """Return the earliest and latest dates the calendar of `mic` can be built for."""
    cls = type(_calendar(mic))
    low, high = cls.bound_min(), cls.bound_max()
    earliest = _EARLIEST if low is None else max(_EARLIEST, low.date())
    latest = _LATEST if high is None else min(_LATEST, high.date())
    return earliest, latest


def _span(mic: str, start: dt.date, end: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """Return the cache key of a calendar covering [start, end]: (None, None) for the default one.

    A wider calendar is built from the start of `start`'s decade to the end of `end`'s,
    so nearby requests share it.
    """
    default = _calendar(mic)
    first, last = default.first_session.date(), default.last_session.date()
    if first <= start and end <= last:
        return None, None
    earliest, latest = bounds(mic)
    if start < earliest or end > latest:
        raise CalendarError(
            f"Dates {start} to {end} are outside the {mic} calendar's bounds "
            f"({earliest} to {latest}): ask for dates inside them."
        )
    low = max(earliest, min(first, dt.date(start.year // 10 * 10, 1, 1)))
    high = min(latest, max(last, dt.date(end.year // 10 * 10 + 9, 12, 31)))
    return low, high


@functools.lru_cache(maxsize=32)
def _calendar(mic: str, low: dt.date | None = None, high: dt.date | None = None) -> Any:
    """Build (once) the calendar of `mic` over its default range, or over [low, high]."""
    with _quiet():
        import exchange_calendars as xc

        try:
            if low is None or high is None:
                return xc.get_calendar(mic)
            return xc.get_calendar(mic, start=low.isoformat(), end=high.isoformat())
        except xc.errors.InvalidCalendarName:
            names = xc.get_calendar_names(include_aliases=True)
            raise CalendarError(_unknown_mic(mic, names)) from None
        except (ValueError, NotImplementedError) as exc:
            raise CalendarError(
                f"exchange_calendars {xc.__version__} cannot build the {mic} calendar ({exc}). "
                "Use another MIC or a version of exchange_calendars that supports it."
            ) from exc


@functools.lru_cache(maxsize=32)
def _table(mic: str, low: dt.date | None, high: dt.date | None) -> pl.DataFrame:
    """Return (once) the whole schedule of a calendar as a `schema.CALENDAR_SESSIONS` frame."""
    cal = _calendar(mic, low, high)
    with _quiet():
        raw: pl.DataFrame = pl.from_pandas(cal.schedule.reset_index(names="session"))
        early = pl.Series("early", cal.early_closes.to_numpy()).cast(pl.Date)
    columns = [
        pl.col(name).cast(dtype)
        for name, dtype in schema.CALENDAR_SESSIONS.items()
        if name != "early_close"
    ]
    return raw.select(*columns, early_close=pl.col("session").cast(pl.Date).is_in(early.implode()))


def _unknown_mic(mic: str, names: list[str]) -> str:
    """Build the message for a calendar name exchange_calendars does not know."""
    hint = closest(mic.upper(), names)
    if not hint.startswith("did you mean"):
        hint = "no close match"
    return (
        f"Unknown exchange calendar {mic!r} ({hint}). Pass a MIC such as {_EXAMPLE_MICS}; "
        f"exchange_calendars.get_calendar_names() lists all {len(names)}."
    )
