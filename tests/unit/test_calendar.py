"""Sessions, holidays and slots from pipeline.calendar, checked against known exchange facts."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import warnings

import polars as pl
import pytest

from pipeline import calendar, schema
from pipeline.errors import CalendarError

D = dt.date


def _utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def _session(mic: str, day: dt.date) -> dict[str, object]:
    return calendar.sessions(mic, day, day).row(0, named=True)


def _slot_times(mic: str, day: dt.date, interval: str) -> list[dt.datetime]:
    return calendar.slots(calendar.sessions(mic, day, day), interval).collect()["ts"].to_list()


@pytest.mark.parametrize(("year", "count"), [(2024, 252), (2025, 250), (2026, 251)])
def test_xnys_year_has_known_session_count(year: int, count: int) -> None:
    assert calendar.sessions("XNYS", D(year, 1, 1), D(year, 12, 31)).height == count


def test_sessions_have_calendar_schema_sorted_by_session() -> None:
    frame = calendar.sessions("XNYS", D(2024, 1, 1), D(2024, 3, 31))
    assert frame.schema == schema.CALENDAR_SESSIONS
    assert frame["session"].is_sorted()
    assert frame["break_start"].null_count() == frame.height


def test_full_day_has_390_minute_slots_and_no_early_close() -> None:
    assert len(_slot_times("XNYS", D(2024, 7, 2), "1m")) == 390
    assert _session("XNYS", D(2024, 7, 2))["early_close"] is False


@pytest.mark.parametrize("day", [D(2024, 7, 3), D(2024, 11, 29), D(2024, 12, 24)])
def test_early_close_day_has_210_minute_slots(day: dt.date) -> None:
    assert len(_slot_times("XNYS", day, "1m")) == 210
    assert _session("XNYS", day)["early_close"] is True


def test_early_close_2015_12_24_closes_at_18_utc() -> None:
    row = _session("XNYS", D(2015, 12, 24))
    assert row["close"] == _utc(2015, 12, 24, 18)
    assert row["early_close"] is True


def test_christmas_2024_has_no_session() -> None:
    assert calendar.sessions("XNYS", D(2024, 12, 25), D(2024, 12, 25)).is_empty()
    assert D(2024, 12, 25) in calendar.holidays("XNYS", D(2024, 12, 23), D(2024, 12, 27))


def test_adhoc_closures_are_holidays() -> None:
    assert calendar.holidays("XNYS", D(2025, 1, 6), D(2025, 1, 10)) == [D(2025, 1, 9)]
    assert calendar.holidays("XNYS", D(2018, 12, 3), D(2018, 12, 9)) == [D(2018, 12, 5)]


def test_holidays_skip_weekends() -> None:
    assert calendar.holidays("XNYS", D(2024, 7, 6), D(2024, 7, 7)) == []


def test_xhkg_minute_slots_exclude_lunch_break_like_exchange_calendars() -> None:
    day = D(2024, 7, 2)
    row = _session("XHKG", day)
    assert row["break_start"] is not None
    assert row["break_end"] is not None
    ours = _slot_times("XHKG", day, "1m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import exchange_calendars as xc

        minutes = xc.get_calendar("XHKG").session_minutes(day.isoformat())
        theirs = pl.from_pandas(minutes.to_series()).cast(schema.TS).to_list()
    assert len(ours) == 330
    assert ours == theirs
    assert not [t for t in ours if row["break_start"] <= t < row["break_end"]]


def test_xhkg_hourly_slots_restart_at_break_end() -> None:
    hours = [t.strftime("%H:%M") for t in _slot_times("XHKG", D(2024, 7, 2), "1h")]
    assert hours == ["01:30", "02:30", "03:30", "05:00", "06:00", "07:00"]


@pytest.mark.parametrize(
    ("day", "open_utc", "close_utc"),
    [(D(2024, 1, 15), 8, 16), (D(2024, 7, 15), 7, 15)],
)
def test_xlon_opens_0800_closes_1630_london_time(
    day: dt.date, open_utc: int, close_utc: int
) -> None:
    row = _session("XLON", day)
    assert row["open"] == _utc(day.year, day.month, day.day, open_utc)
    assert row["close"] == _utc(day.year, day.month, day.day, close_utc, 30)


def test_hourly_slots_full_day_are_session_anchored() -> None:
    hours = [t.strftime("%H:%M") for t in _slot_times("XNYS", D(2024, 7, 2), "1h")]
    assert hours == ["13:30", "14:30", "15:30", "16:30", "17:30", "18:30", "19:30"]


def test_hourly_slots_on_early_close_are_four() -> None:
    hours = [t.strftime("%H:%M") for t in _slot_times("XNYS", D(2024, 11, 29), "1h")]
    assert hours == ["14:30", "15:30", "16:30", "17:30"]


def test_quarter_hour_slots_full_day_are_26() -> None:
    assert len(_slot_times("XNYS", D(2024, 7, 2), "15m")) == 26


def test_dst_start_moves_open_one_hour_earlier_in_utc() -> None:
    assert _session("XNYS", D(2024, 3, 8))["open"] == _utc(2024, 3, 8, 14, 30)
    assert _session("XNYS", D(2024, 3, 11))["open"] == _utc(2024, 3, 11, 13, 30)


def test_2024_minute_slots_total_97740() -> None:
    year = calendar.sessions("XNYS", D(2024, 1, 1), D(2024, 12, 31))
    frame = calendar.slots(year.lazy(), "1m").collect()
    assert frame.height == 97_740
    assert frame.schema == schema.SLOTS
    assert frame["ts"].is_sorted()


def test_daily_slots_are_session_dates_at_midnight_utc() -> None:
    days = calendar.sessions("XNYS", D(2024, 7, 1), D(2024, 7, 5))
    frame = calendar.slots(days, "1d").collect()
    assert frame["ts"].to_list() == [_utc(2024, 7, d) for d in (1, 2, 3, 5)]
    assert frame["session"].to_list() == days["session"].to_list()


def test_weekly_slots_are_mondays_even_when_monday_is_a_holiday() -> None:
    days = calendar.sessions("XNYS", D(2024, 8, 26), D(2024, 9, 13))
    frame = calendar.slots(days, "1w").collect()
    assert frame["ts"].to_list() == [_utc(2024, 8, 26), _utc(2024, 9, 2), _utc(2024, 9, 9)]
    assert frame["session"].to_list() == [D(2024, 8, 26), D(2024, 9, 2), D(2024, 9, 9)]


def test_sessions_before_returns_oldest_first() -> None:
    got = calendar.sessions_before("XNYS", D(2024, 7, 5), 3)
    assert got == [D(2024, 7, 1), D(2024, 7, 2), D(2024, 7, 3)]


def test_sessions_before_zero_is_empty() -> None:
    assert calendar.sessions_before("XNYS", D(2024, 7, 5), 0) == []


def test_sessions_before_past_calendar_start_raises() -> None:
    with pytest.raises(CalendarError, match="1986-01-01"):
        calendar.sessions_before("XSES", D(1986, 1, 10), 100)


def test_session_on_or_after_rolls_holiday_forward() -> None:
    assert calendar.session_on_or_after("XNYS", D(2024, 7, 4)) == D(2024, 7, 5)
    assert calendar.session_on_or_after("XNYS", D(2024, 7, 5)) == D(2024, 7, 5)


def test_session_on_or_after_past_calendar_end_raises() -> None:
    with pytest.raises(CalendarError, match="no session on or after"):
        calendar.session_on_or_after("XSES", D(2027, 1, 4))


def test_range_before_default_calendar_still_answers() -> None:
    frame = calendar.sessions("XNYS", D(1999, 12, 27), D(1999, 12, 31))
    assert frame["session"].to_list() == [D(1999, 12, d) for d in (27, 28, 29, 30, 31)]


def test_unknown_mic_raises_calendar_error_naming_xnys() -> None:
    with pytest.raises(CalendarError, match="XNYS"):
        calendar.sessions("XNYZ", D(2024, 1, 1), D(2024, 1, 31))


def test_range_outside_calendar_bounds_raises_with_bounds() -> None:
    with pytest.raises(CalendarError, match="2026-12-31"):
        calendar.sessions("XSES", D(2027, 1, 1), D(2027, 1, 31))


def test_start_after_end_raises() -> None:
    with pytest.raises(CalendarError, match="Swap"):
        calendar.sessions("XNYS", D(2024, 7, 5), D(2024, 7, 1))


def test_importing_calendar_does_not_import_exchange_calendars() -> None:
    code = "import sys, pipeline.calendar; assert 'exchange_calendars' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_timezone_of_exchanges() -> None:
    assert calendar.timezone("XNYS") == "America/New_York"
    assert calendar.timezone("XHKG") == "Asia/Hong_Kong"
    assert calendar.timezone("XLON") == "Europe/London"


@pytest.mark.parametrize(
    ("day", "open_utc"),
    [
        (dt.date(2024, 3, 8), dt.time(14, 30)),  # the Friday before the spring change
        (dt.date(2024, 3, 11), dt.time(13, 30)),  # first session in daylight time
        (dt.date(2024, 11, 1), dt.time(13, 30)),  # the Friday before the autumn change
        (dt.date(2024, 11, 4), dt.time(14, 30)),  # first session back in standard time
    ],
)
def test_dst_transition_sessions_have_390_slots_from_0930_new_york(
    day: dt.date, open_utc: dt.time
) -> None:
    slots = calendar.slots(calendar.sessions("XNYS", day, day), "1m").collect()
    assert slots.height == 390
    assert slots["ts"][0].time() == open_utc
    local = slots["ts"].dt.convert_time_zone("America/New_York")
    assert (local[0].time(), local[-1].time()) == (dt.time(9, 30), dt.time(15, 59))
