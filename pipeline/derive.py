"""Catalog bars and derived intervals: session-anchored windows over a finer base interval.

`annotate` turns stored bars (`schema.BARS`) into catalog rows (`schema.CATALOG_BARS`):
each bar gets its exchange ``session``, its ``ts_close`` (cut at the close or a lunch
break) and ``available_at``. `derive` builds a larger interval from catalog rows of a
finer one. Both are pure ``LazyFrame -> LazyFrame`` steps: no I/O, no collect. The
loader collects them with ``engine="in-memory"``: the streaming engine may add a
window's fractional volumes in another order from run to run (the last digit changes).

Window rules (DESIGN section 4, "Derived bars"):

- Intraday windows are anchored at the session open, restart at ``break_end`` and are
  cut at ``break_start`` and at the close: a 1h bar on XNYS covers 09:30-10:30 ...
  15:30-16:00 ET, on a 13:00 early close the last one is 12:30-13:00.
- OHLCV: first open, max high, min low, last close (in ``ts`` order), summed volume.
- ``n_src`` counts the base bars in the window; ``complete`` says every base slot the
  window spans (after the cut) holds a bar and every one of those bars is complete.
- ``1d`` is one bar per symbol and session, stamped with the session date at 00:00 UTC
  and closing at the session close; ``1w`` is stamped with the Monday at 00:00 UTC,
  belongs to the week's last session and closes at its close.

``queries/derive_bars.sql`` computes the same rows in DuckDB, and a test holds the two
engines to the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from pipeline import schema
from pipeline.errors import IntervalError
from pipeline.intervals import Interval

_US = 1_000_000  # microseconds per second
# Packing (symbol code, integer label) into one Int64 key: labels are seconds or days
# since 1970 (|label| < 2**33, so +-272 years), symbol codes are Enum indexes (< 2**29).
_LABELS = 1 << 34


def annotate(
    bars: pl.LazyFrame,
    interval: str | Interval,
    sessions: pl.DataFrame,
    tz: str,
    *,
    extended_hours: bool = False,
) -> pl.LazyFrame:
    """Give bars of one interval their session, close and visibility time.

    Parameters
    ----------
    bars
        Bars of `interval` (`schema.BARS`); ``symbol`` may be String or Enum and keeps
        its dtype.
    interval
        The bars' interval, written to the ``interval`` column in canonical form.
    sessions
        `schema.CALENDAR_SESSIONS` rows covering the bars' dates.
    tz
        The exchange's time zone (`pipeline.calendar.timezone`): an intraday bar belongs
        to the session of its exchange-local date.
    extended_hours
        Keep the bars of session dates outside regular hours (their ``ts_close`` is
        ``ts`` + interval); by default only bars in [open, close) outside a lunch break
        are kept.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.CATALOG_BARS`, sorted by (``available_at``, ``symbol``), with
        ``n_src`` 1 and ``complete`` true. Bars on dates that are not sessions are dropped;
        a daily bar closes at its session's close, a weekly bar at the close of its week's
        last session (its ``session``).
    """
    step = Interval.parse(interval)
    cal = _calendar(sessions)
    if step.unit == "d":
        out = bars.with_columns(session=pl.col("ts").dt.date()).join(cal, on="session", how="inner")
        out = out.with_columns(ts_close=pl.col("s_close"))
    elif step.unit == "w":
        week = pl.col("ts").dt.date().dt.truncate("1w")
        out = bars.with_columns(week=week).join(_weeks(cal), on="week", how="inner")
    else:
        out = _annotate_intraday(bars, sessions, step, tz, extended_hours=extended_hours)
    out = out.with_columns(n_src=pl.lit(1, pl.UInt32), complete=pl.lit(value=True))
    return _finish(out, step)


def derive(
    base: pl.LazyFrame,
    sessions: pl.DataFrame,
    target: str | Interval,
    base_interval: str | Interval,
    *,
    emit_incomplete: bool = False,
) -> pl.LazyFrame:
    """Derive bars of `target` from catalog bars of `base_interval`.

    Parameters
    ----------
    base
        `schema.CATALOG_BARS` rows, as `annotate` returns; only rows whose ``interval``
        is `base_interval` and, for an intraday base, whose ``ts`` lies in regular hours
        are used (extended-hours rows are ignored).
    sessions
        `schema.CALENDAR_SESSIONS` rows covering the base bars' sessions (whole weeks
        for a ``1w`` target: a week's expected sessions are counted from it).
    target
        Interval to build; it must derive from `base_interval` (`Interval.derives_from`).
    base_interval
        Interval of the base rows.
    emit_incomplete
        Keep windows missing a base bar, flagged ``complete = false``. Windows without
        any base bar never appear.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.CATALOG_BARS` (``symbol`` keeps its dtype), sorted by
        (``available_at``, ``symbol``).

    Raises
    ------
    IntervalError
        When `target` cannot be derived from `base_interval` (e.g. 1m from 5m).

    Examples
    --------
    >>> five = derive(minute_bars, sessions, "5m", "1m").collect()  # doctest: +SKIP
    """
    goal, step = Interval.parse(target), Interval.parse(base_interval)
    if not goal.derives_from(step):
        raise IntervalError(_not_derivable(goal, step))
    cal = _calendar(sessions)
    rows = _with_calendar(base.filter(pl.col("interval") == str(step)), cal.collect())
    if step.is_intraday:
        rows = rows.filter(_regular())
    if goal == step:
        out = rows
    elif goal.is_intraday:
        out = _windows(rows, goal, step)
    elif goal.unit == "d":
        out = _days(rows, cal, step)
    else:
        out = _weekly(_days(rows, cal, step) if step.is_intraday else rows, cal)
    if not emit_incomplete:
        out = out.filter(pl.col("complete"))
    return _finish(out, goal)


def _annotate_intraday(
    bars: pl.LazyFrame, sessions: pl.DataFrame, step: Interval, tz: str, *, extended_hours: bool
) -> pl.LazyFrame:
    """Give intraday bars the session of their local date and compute ``ts_close``.

    Instead of converting every bar's ``ts`` to the exchange time zone and joining the
    calendar, each bar finds its local day by a binary search among the few instants
    where the local date changes (`_local_days`) and gathers that day's session row.
    """
    days = _local_days(sessions, tz)
    day = pl.lit(days["start"]).search_sorted(pl.col("ts"), side="right").cast(pl.Int64) - 1
    columns = [c for c in days.columns if c != "start"]
    out = (
        bars.with_columns(_day=day)
        .filter(pl.col("_day") >= 0)
        .with_columns(pl.lit(days[c]).gather(pl.col("_day")).alias(c) for c in columns)
        .filter(pl.col("session").is_not_null())
        .drop("_day")
    )
    cut = pl.min_horizontal(pl.col("ts") + step.duration, _segment_end())
    if not extended_hours:
        return out.filter(_regular()).with_columns(ts_close=cut)
    return out.with_columns(
        ts_close=pl.when(_regular()).then(cut).otherwise(pl.col("ts") + step.duration)
    )


def _with_calendar(rows: pl.LazyFrame, cal: pl.DataFrame) -> pl.LazyFrame:
    """Inner-join rows to the `_calendar` columns of their ``session`` (sessions are unique).

    A binary search among the few sessions and a gather per column: several times
    cheaper than a hash join of every bar.
    """
    if cal.is_empty():
        return rows.join(cal.lazy(), on="session", how="inner")
    cal = cal.sort("session")
    days = pl.lit(cal["session"])
    at = days.search_sorted(pl.col("session")).clip(upper_bound=cal.height - 1)
    return (
        rows.with_columns(_at=at)
        .filter(days.gather(pl.col("_at")) == pl.col("session"))
        .with_columns(pl.lit(cal[c]).gather(pl.col("_at")).alias(c) for c in cal.columns[1:])
        .drop("_at")
    )


def _windows(rows: pl.LazyFrame, goal: Interval, step: Interval) -> pl.LazyFrame:
    """Aggregate regular base rows into session-anchored windows of `goal`."""
    width, base_width = goal.seconds * _US, step.seconds * _US
    start, end = _micros(_segment_start()), _micros(_segment_end())
    keyed = rows.with_columns(
        window=start + (_micros(pl.col("ts")) - start) // width * width, seg_end=end
    )
    extra = [pl.col("session").first(), pl.col("seg_end").first()]
    grouped = _group(keyed, "window", pl.col("window") // _US, extra)
    close = pl.min_horizontal(pl.col("window") + width, pl.col("seg_end"))
    slots = (close - pl.col("window") + base_width - 1) // base_width
    return grouped.with_columns(
        ts=_from_micros(pl.col("window")),
        ts_close=_from_micros(close),
        complete=(pl.col("n_src") == slots) & pl.col("complete"),
    )


def _days(rows: pl.LazyFrame, cal: pl.LazyFrame, step: Interval) -> pl.LazyFrame:
    """Aggregate regular intraday rows into one bar per symbol and session."""
    grouped = _group(rows, "session", pl.col("session").dt.epoch("d"))
    return grouped.join(_slot_counts(cal, step), on="session", how="inner").with_columns(
        ts=_midnight(pl.col("session")),
        ts_close=pl.col("s_close"),
        complete=(pl.col("n_src") == pl.col("slots")) & pl.col("complete"),
    )


def _weekly(days: pl.LazyFrame, cal: pl.LazyFrame) -> pl.LazyFrame:
    """Aggregate daily rows into one bar per symbol and calendar week (Monday-labelled)."""
    keyed = days.with_columns(week=pl.col("session").dt.truncate("1w"))
    grouped = _group(keyed, "week", pl.col("week").dt.epoch("d"))
    return grouped.join(_weeks(cal), on="week", how="inner").with_columns(
        ts=_midnight(pl.col("week")),
        complete=(pl.col("n_src") == pl.col("sessions")) & pl.col("complete"),
    )


def _group(
    rows: pl.LazyFrame, by: str, label: pl.Expr, extra: Sequence[pl.Expr] = ()
) -> pl.LazyFrame:
    """Aggregate `rows` per symbol and column `by` (whose integer form is `label`).

    With an Enum ``symbol`` the two keys are packed into one Int64, which Polars groups
    about twice as fast as a (symbol, by) pair.
    """
    if not isinstance(rows.collect_schema()["symbol"], pl.Enum):
        return rows.group_by("symbol", by).agg(*_ohlcv(), *extra)
    key = _symbol_code() * _LABELS + label.cast(pl.Int64) + _LABELS // 2
    firsts = [pl.col("symbol").first(), pl.col(by).first()]
    return rows.group_by(key.alias("_key")).agg(*firsts, *_ohlcv(), *extra).drop("_key")


def _ohlcv() -> list[pl.Expr]:
    """Return the window aggregations: OHLCV in ``ts`` order, ``n_src``, all-complete."""
    return [
        pl.col("open").min_by("ts"),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").max_by("ts"),
        pl.col("volume").sum(),
        pl.len().cast(pl.UInt32).alias("n_src"),
        pl.col("complete").all(),
    ]


def _finish(frame: pl.LazyFrame, interval: Interval) -> pl.LazyFrame:
    """Select the catalog columns in order, set ``interval`` and ``available_at``, sort."""
    return frame.select(
        "symbol",
        interval=pl.lit(str(interval), pl.String),
        session="session",
        ts=pl.col("ts").cast(schema.TS),
        open="open",
        high="high",
        low="low",
        close="close",
        volume="volume",
        ts_close=pl.col("ts_close").cast(schema.TS),
        available_at=pl.col("ts_close").cast(schema.TS),
        n_src="n_src",
        complete="complete",
    ).pipe(_sort)


def _sort(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Sort catalog rows by (available_at, symbol); one interval has no ties on that pair.

    With an Enum ``symbol`` the sort key is one Int64 (whole seconds of ``available_at``,
    then the symbol's index), about twice as fast as sorting by the two columns. Stamps
    are whole seconds in this pipeline (every interval is), so the key loses nothing.
    """
    if not isinstance(frame.collect_schema()["symbol"], pl.Enum):
        return frame.sort("available_at", "symbol", "ts", maintain_order=True)
    key = pl.col("available_at").dt.epoch("s") * (1 << 29) + _symbol_code()
    return frame.sort(key, maintain_order=True)


def _calendar(sessions: pl.DataFrame) -> pl.LazyFrame:
    """Return the session table with ``open``/``close`` renamed apart from the bar columns."""
    return sessions.lazy().select(
        "session",
        s_open=pl.col("open"),
        s_close=pl.col("close"),
        break_start=pl.col("break_start"),
        break_end=pl.col("break_end"),
    )


def _local_days(sessions: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Return the spans of one exchange-local date around `sessions`, with their session row.

    Row i covers the instants [``start``_i, ``start``_i+1) (the last row: every later
    instant) and carries the `_calendar` columns of its local date, null where that date
    is not a session. The spans run from two days before the first session to three
    after the last, so every instant of a session date is covered. The date changes are
    found on a 15-minute UTC grid: every UTC offset in use is a multiple of 15 minutes.
    """
    cal = _calendar(sessions).collect()
    if cal.is_empty():
        return cal.select(pl.lit(None, schema.TS).alias("start"), *cal.columns).clear()
    lo, hi = cal["session"].min(), cal["session"].max()
    assert isinstance(lo, dt.date)
    assert isinstance(hi, dt.date)
    grid = pl.datetime_range(
        dt.datetime.combine(lo - dt.timedelta(days=2), dt.time(), dt.UTC),
        dt.datetime.combine(hi + dt.timedelta(days=3), dt.time(), dt.UTC),
        "15m",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    days = pl.DataFrame({"start": grid}).with_columns(
        day=pl.col("start").dt.convert_time_zone(tz).dt.date()
    )
    changes = days.filter(pl.col("day").ne_missing(pl.col("day").shift()))
    return changes.join(
        cal, left_on="day", right_on="session", how="left", maintain_order="left"
    ).select(
        pl.col("start").cast(schema.TS),
        pl.when(pl.col("s_open").is_not_null()).then(pl.col("day")).alias("session"),
        *cal.columns[1:],
    )


def _weeks(cal: pl.LazyFrame) -> pl.LazyFrame:
    """Per calendar week: its last session (and that session's close) and its session count."""
    return cal.group_by(week=pl.col("session").dt.truncate("1w")).agg(
        pl.col("session").max(),
        ts_close=pl.col("s_close").max(),
        sessions=pl.len().cast(pl.UInt32),
    )


def _slot_counts(cal: pl.LazyFrame, step: Interval) -> pl.LazyFrame:
    """Per session: the number of regular `step` slots (each segment's last one may be cut)."""
    width = step.seconds * _US

    def slots(start: pl.Expr, end: pl.Expr) -> pl.Expr:
        return (_micros(end) - _micros(start) + width - 1) // width

    morning = slots(pl.col("s_open"), pl.coalesce("break_start", "s_close"))
    afternoon = slots(pl.col("break_end"), pl.col("s_close")).fill_null(0)
    return cal.select("session", "s_close", slots=(morning + afternoon).cast(pl.UInt32))


def _regular() -> pl.Expr:
    """True for a bar opening in [open, close) and outside [break_start, break_end)."""
    in_break = (
        (pl.col("ts") >= pl.col("break_start")) & (pl.col("ts") < pl.col("break_end"))
    ).fill_null(False)
    return (pl.col("ts") >= pl.col("s_open")) & (pl.col("ts") < pl.col("s_close")) & ~in_break


def _segment_start() -> pl.Expr:
    """Start of the trading segment holding a regular bar: the open, or ``break_end``."""
    return (
        pl.when(pl.col("ts") >= pl.col("break_end"))
        .then(pl.col("break_end"))
        .otherwise(pl.col("s_open"))
    )


def _segment_end() -> pl.Expr:
    """End of the trading segment holding a regular bar: ``break_start``, or the close."""
    return (
        pl.when(pl.col("ts") < pl.col("break_start"))
        .then(pl.col("break_start"))
        .otherwise(pl.col("s_close"))
    )


def _symbol_code() -> pl.Expr:
    """Return an Enum ``symbol`` column as its Int64 category index (the Enum's sort order)."""
    return pl.col("symbol").to_physical().cast(pl.Int64)


def _micros(expr: pl.Expr) -> pl.Expr:
    """Return a UTC timestamp expression as microseconds since the epoch."""
    return expr.dt.epoch("us")


def _from_micros(expr: pl.Expr) -> pl.Expr:
    """Return microseconds since the epoch as a UTC timestamp expression."""
    return expr.cast(schema.TS)


def _midnight(day: pl.Expr) -> pl.Expr:
    """Return the date expression `day` as 00:00 UTC of that date."""
    return day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _not_derivable(goal: Interval, step: Interval) -> str:
    """Build the message for a target interval that the base interval cannot produce."""
    return (
        f"Cannot derive {goal} bars from {step} bars: an intraday interval derives from a "
        "finer intraday interval that divides it, 1d from an intraday interval, 1w from 1d "
        f"or intraday. Derive {goal} from a finer base (e.g. 1m), or request a multiple of {step}."
    )
