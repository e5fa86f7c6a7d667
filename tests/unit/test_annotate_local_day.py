"""`annotate` finds each intraday bar's local session date by binary search, not per-bar tz math.

Regression tests for the speed-up of issue 3: the session of every bar must equal the
exchange-local date of its ``ts`` (converted bar by bar), across DST changes, in zones
with half- and quarter-hour offsets, in the southern hemisphere, and around midnight.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline import schema
from pipeline.derive import annotate


def weekday_sessions(first: dt.date, last: dt.date) -> pl.DataFrame:
    """Sessions on every weekday in [first, last]; regular hours cover the whole UTC day."""
    days = [
        first + dt.timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + dt.timedelta(days=i)).weekday() < 5
    ]
    frame = pl.DataFrame({"session": days}, schema={"session": pl.Date()})
    midnight = pl.col("session").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return frame.select(
        "session",
        open=midnight,
        close=midnight + pl.duration(days=1),
        break_start=pl.lit(None, schema.TS),
        break_end=pl.lit(None, schema.TS),
        early_close=pl.lit(value=False),
    )


def bars_every(minutes: int, first: dt.date, last: dt.date) -> pl.DataFrame:
    """One bar every `minutes` from a day before `first` to a day after `last`, UTC."""
    start = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    ts = pl.datetime_range(start, end, f"{minutes}m", closed="left", eager=True, time_unit="us")
    n = ts.len()
    return pl.DataFrame(
        {
            "symbol": ["AAA"] * n,
            "ts": ts,
            "open": [1.0] * n,
            "high": [1.0] * n,
            "low": [1.0] * n,
            "close": [1.0] * n,
            "volume": [1.0] * n,
        }
    )


@pytest.mark.parametrize(
    ("tz", "first", "last"),
    [
        ("America/New_York", dt.date(2024, 3, 6), dt.date(2024, 3, 14)),  # spring forward
        ("America/New_York", dt.date(2024, 10, 30), dt.date(2024, 11, 6)),  # fall back
        ("Australia/Sydney", dt.date(2024, 4, 3), dt.date(2024, 4, 10)),  # southern DST end
        ("Asia/Kolkata", dt.date(2024, 5, 1), dt.date(2024, 5, 8)),  # +05:30
        ("Asia/Kathmandu", dt.date(2024, 5, 1), dt.date(2024, 5, 8)),  # +05:45
        ("Pacific/Chatham", dt.date(2024, 4, 3), dt.date(2024, 4, 10)),  # +12:45/+13:45
        ("America/Santiago", dt.date(2024, 9, 4), dt.date(2024, 9, 11)),  # DST at midnight
        ("Pacific/Kiritimati", dt.date(2024, 5, 1), dt.date(2024, 5, 8)),  # +14:00
        ("UTC", dt.date(2024, 5, 1), dt.date(2024, 5, 8)),
    ],
)
def test_every_bar_gets_the_session_of_its_local_date(
    tz: str, first: dt.date, last: dt.date
) -> None:
    sessions = weekday_sessions(first, last)
    bars = bars_every(5, first, last)
    got = annotate(bars.lazy(), "5m", sessions, tz, extended_hours=True).collect()
    local = pl.col("ts").dt.convert_time_zone(tz).dt.date()
    expected = bars.with_columns(session=local).join(sessions.select("session"), on="session")
    assert got.height == expected.height
    assert got.sort("ts")["session"].to_list() == expected.sort("ts")["session"].to_list()


def test_bars_far_outside_the_sessions_are_dropped() -> None:
    sessions = weekday_sessions(dt.date(2024, 5, 6), dt.date(2024, 5, 6))
    stamps = [
        dt.datetime(2024, 1, 2, 15, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 2, 15, tzinfo=dt.UTC),
    ]
    ts = pl.Series("ts", stamps, dtype=schema.TS)
    bars = bars_every(60, dt.date(2024, 5, 6), dt.date(2024, 5, 6)).head(2).with_columns(ts)
    out = annotate(bars.lazy(), "1h", sessions, "America/New_York", extended_hours=True)
    assert out.collect().is_empty()


def test_no_sessions_give_no_bars() -> None:
    sessions = weekday_sessions(dt.date(2024, 5, 4), dt.date(2024, 5, 5))  # a weekend
    assert sessions.is_empty()
    bars = bars_every(60, dt.date(2024, 5, 4), dt.date(2024, 5, 5))
    out = annotate(bars.lazy(), "1h", sessions, "America/New_York", extended_hours=True)
    assert out.collect().is_empty()
