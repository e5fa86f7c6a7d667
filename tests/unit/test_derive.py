"""Derived bars and catalog annotation on tiny inline frames."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from pipeline import calendar, schema
from pipeline.derive import annotate, derive
from pipeline.errors import IntervalError

NY = "America/New_York"
HK = "Asia/Hong_Kong"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def local(tz: str, *args: int) -> dt.datetime:
    """A wall-clock time in `tz`, as UTC."""
    return dt.datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def bars_at(stamps: list[dt.datetime], symbol: str = "AAA") -> pl.DataFrame:
    """One bar per stamp (schema.BARS); bar i opens at 100 + i and closes half a dollar up."""
    n = len(stamps)
    opens = [100.0 + i for i in range(n)]
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": stamps,
            "open": opens,
            "high": [o + 1.5 for o in opens],
            "low": [o - 1.0 for o in opens],
            "close": [o + 0.5 for o in opens],
            "volume": [float(10 * (i + 1)) for i in range(n)],
        },
        schema=schema.BARS,
    )


def minutes(start: dt.datetime, count: int, skip: tuple[int, ...] = ()) -> list[dt.datetime]:
    return [start + dt.timedelta(minutes=i) for i in range(count) if i not in skip]


def sessions_of(day: dt.date, mic: str = "XNYS", days: int = 0) -> pl.DataFrame:
    return calendar.sessions(mic, day, day + dt.timedelta(days=days))


def full_day(day: dt.date, mic: str = "XNYS") -> list[dt.datetime]:
    """Every regular one-minute slot of `day` on `mic`."""
    return calendar.slots(sessions_of(day, mic), "1m").collect()["ts"].to_list()


def catalog(
    stamps: list[dt.datetime], day: dt.date, mic: str = "XNYS", tz: str = NY
) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Annotated 1m bars at `stamps` and the session table of `day`."""
    cal = sessions_of(day, mic)
    return annotate(bars_at(stamps).lazy(), "1m", cal, tz), cal


def local_times(frame: pl.DataFrame, column: str, tz: str = NY) -> list[str]:
    return [f"{t:%H:%M}" for t in frame[column].dt.convert_time_zone(tz)]


# ------------------------------------------------------------------ derive: intraday windows
def test_5m_from_1m_full_window_aggregates_ohlcv() -> None:
    base, cal = catalog(minutes(utc(2024, 7, 1, 13, 30), 5), dt.date(2024, 7, 1))
    out = derive(base, cal, "5m", "1m").collect()
    assert out.schema == schema.CATALOG_BARS
    assert out.rows(named=True) == [
        {
            "symbol": "AAA",
            "interval": "5m",
            "session": dt.date(2024, 7, 1),
            "ts": utc(2024, 7, 1, 13, 30),
            "open": 100.0,
            "high": 105.5,
            "low": 99.0,
            "close": 104.5,
            "volume": 150.0,
            "ts_close": utc(2024, 7, 1, 13, 35),
            "available_at": utc(2024, 7, 1, 13, 35),
            "n_src": 5,
            "complete": True,
        }
    ]


def test_window_missing_a_minute_is_dropped_by_default() -> None:
    base, cal = catalog(minutes(utc(2024, 7, 1, 13, 30), 5, skip=(2,)), dt.date(2024, 7, 1))
    assert derive(base, cal, "5m", "1m").collect().is_empty()


def test_window_missing_a_minute_is_kept_flagged_when_emitting_incomplete() -> None:
    base, cal = catalog(minutes(utc(2024, 7, 1, 13, 30), 5, skip=(2,)), dt.date(2024, 7, 1))
    out = derive(base, cal, "5m", "1m", emit_incomplete=True).collect()
    assert out.select("n_src", "complete", "open", "close", "volume").row(0) == (
        4,
        False,
        100.0,
        103.5,
        100.0,
    )


def test_1h_windows_on_a_full_summer_day_end_at_the_close() -> None:
    day = dt.date(2024, 7, 1)
    base, cal = catalog(full_day(day), day)
    out = derive(base, cal, "1h", "1m").collect()
    assert local_times(out, "ts") == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    last = out.row(-1, named=True)
    assert (last["ts_close"], last["n_src"], last["complete"]) == (utc(2024, 7, 1, 20), 30, True)
    assert out["n_src"].to_list() == [60] * 6 + [30]


def test_1h_windows_on_an_early_close_day_are_cut_at_13_00() -> None:
    day = dt.date(2024, 11, 29)
    base, cal = catalog(full_day(day), day)
    out = derive(base, cal, "1h", "1m").collect()
    assert local_times(out, "ts") == ["09:30", "10:30", "11:30", "12:30"]
    assert out["ts_close"][-1] == utc(2024, 11, 29, 18)
    assert out["n_src"].to_list() == [60, 60, 60, 30]
    assert out["complete"].all()


def test_lunch_break_restarts_windows_at_break_end_and_cuts_them_at_break_start() -> None:
    day = dt.date(2024, 3, 5)
    base, cal = catalog(full_day(day, "XHKG"), day, "XHKG", HK)
    out = derive(base, cal, "1h", "1m").collect()
    spans = list(zip(local_times(out, "ts", HK), local_times(out, "ts_close", HK), strict=True))
    assert spans == [
        ("09:30", "10:30"),
        ("10:30", "11:30"),
        ("11:30", "12:00"),
        ("13:00", "14:00"),
        ("14:00", "15:00"),
        ("15:00", "16:00"),
    ]
    assert out["n_src"].to_list() == [60, 60, 30, 60, 60, 60]
    assert out["complete"].all()


def test_bar_in_the_lunch_break_is_not_regular_and_is_ignored_by_derive() -> None:
    day = dt.date(2024, 3, 5)
    lunch = local(HK, 2024, 3, 5, 12, 30)
    stamps = [*minutes(local(HK, 2024, 3, 5, 11, 55), 5), lunch]
    cal = sessions_of(day, "XHKG")
    bars = bars_at(stamps).lazy()
    assert annotate(bars, "1m", cal, HK).collect().height == 5
    extended = annotate(bars, "1m", cal, HK, extended_hours=True)
    assert extended.collect()["ts"].to_list()[-1] == lunch
    out = derive(extended, cal, "5m", "1m").collect()
    assert (out.height, out["n_src"][0], out["ts_close"][0]) == (1, 5, local(HK, 2024, 3, 5, 12))


# ------------------------------------------------------------------ derive: 1d and 1w
def test_1d_from_1m_is_stamped_at_midnight_and_closes_at_the_session_close() -> None:
    day = dt.date(2024, 7, 1)
    base, cal = catalog(full_day(day), day)
    out = derive(base, cal, "1d", "1m").collect()
    row = out.row(0, named=True)
    assert out.height == 1
    assert (row["ts"], row["ts_close"], row["available_at"]) == (
        utc(2024, 7, 1),
        utc(2024, 7, 1, 20),
        utc(2024, 7, 1, 20),
    )
    assert (row["open"], row["close"], row["high"], row["low"]) == (100.0, 489.5, 490.5, 99.0)
    assert (row["n_src"], row["complete"], row["interval"]) == (390, True, "1d")


def test_1d_from_1m_with_a_missing_minute_is_incomplete() -> None:
    day = dt.date(2024, 11, 29)
    base, cal = catalog(full_day(day)[:-1], day)
    assert derive(base, cal, "1d", "1m").collect().is_empty()
    out = derive(base, cal, "1d", "1m", emit_incomplete=True).collect()
    assert out.select("n_src", "complete").row(0) == (209, False)


def daily_week(skip: tuple[int, ...] = ()) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Daily catalog bars for the week of 2024-07-01 (07-04 is a holiday: four sessions)."""
    cal = calendar.sessions("XNYS", dt.date(2024, 7, 1), dt.date(2024, 7, 7))
    days = [utc(2024, 7, d) for i, d in enumerate((1, 2, 3, 5)) if i not in skip]
    return annotate(bars_at(days).lazy(), "1d", cal, NY), cal


def test_1w_from_1d_is_stamped_monday_and_closes_with_the_last_session() -> None:
    base, cal = daily_week()
    out = derive(base, cal, "1w", "1d").collect()
    row = out.row(0, named=True)
    assert (row["ts"], row["session"], row["ts_close"]) == (
        utc(2024, 7, 1),
        dt.date(2024, 7, 5),
        utc(2024, 7, 5, 20),
    )
    assert (row["open"], row["close"], row["volume"], row["n_src"], row["complete"]) == (
        100.0,
        103.5,
        100.0,
        4,
        True,
    )


def test_1w_missing_a_session_is_incomplete() -> None:
    base, cal = daily_week(skip=(1,))
    assert derive(base, cal, "1w", "1d").collect().is_empty()
    out = derive(base, cal, "1w", "1d", emit_incomplete=True).collect()
    assert out.select("n_src", "complete").row(0) == (3, False)


def test_1w_from_1m_needs_every_minute_of_the_week() -> None:
    cal = calendar.sessions("XNYS", dt.date(2024, 7, 1), dt.date(2024, 7, 7))
    stamps = calendar.slots(cal, "1m").collect()["ts"].to_list()
    base = annotate(bars_at(stamps).lazy(), "1m", cal, NY)
    out = derive(base, cal, "1w", "1m").collect()
    assert out.select("ts", "n_src", "complete").row(0) == (utc(2024, 7, 1), 4, True)
    gappy = annotate(bars_at(stamps[1:]).lazy(), "1m", cal, NY)
    assert derive(gappy, cal, "1w", "1m").collect().is_empty()


# ------------------------------------------------------------------ derive: contract
def test_target_that_does_not_derive_from_the_base_is_an_interval_error() -> None:
    base, cal = catalog(minutes(utc(2024, 7, 1, 13, 30), 5), dt.date(2024, 7, 1))
    with pytest.raises(IntervalError, match="Cannot derive 1m bars from 5m bars"):
        derive(base, cal, "1m", "5m")


def test_rows_of_another_interval_in_the_base_are_ignored() -> None:
    base, cal = catalog(minutes(utc(2024, 7, 1, 13, 30), 5), dt.date(2024, 7, 1))
    hourly = annotate(bars_at([utc(2024, 7, 1, 13, 30)]).lazy(), "1h", cal, NY)
    mixed = pl.concat([base, hourly])
    out = derive(mixed, cal, "5m", "1m").collect()
    assert out.select("n_src", "volume").row(0) == (5, 150.0)


def test_enum_symbols_keep_their_dtype_and_output_is_in_catalog_order() -> None:
    day = dt.date(2024, 7, 1)
    cal = sessions_of(day)
    stamps = minutes(utc(2024, 7, 1, 13, 30), 15)
    enum = schema.symbol_dtype(["AAA", "BBB"])
    both = pl.concat([bars_at(stamps, "BBB"), bars_at(stamps, "AAA")])
    bars = both.with_columns(pl.col("symbol").cast(enum)).lazy()
    base = annotate(bars, "1m", cal, NY)
    out = derive(base, cal, "5m", "1m").collect()
    assert base.collect_schema()["symbol"] == out.schema["symbol"] == enum
    assert out.select("available_at", "symbol").rows() == sorted(
        out.select("available_at", pl.col("symbol").cast(pl.String)).rows()
    )
    assert out.height == 6
    strings = derive(annotate(both.lazy(), "1m", cal, NY), cal, "5m", "1m").collect()
    assert strings.equals(out.with_columns(pl.col("symbol").cast(pl.String)))


# ------------------------------------------------------------------ annotate
def test_pre_and_post_market_bars_are_dropped_unless_extended_hours() -> None:
    day = dt.date(2024, 1, 10)
    stamps = [
        local(NY, 2024, 1, 10, h, m) for h, m in ((8, 0), (9, 30), (15, 59), (16, 0), (19, 59))
    ]
    cal = sessions_of(day)
    regular = annotate(bars_at(stamps).lazy(), "1m", cal, NY).collect()
    assert local_times(regular, "ts") == ["09:30", "15:59"]
    extended = annotate(bars_at(stamps).lazy(), "1m", cal, NY, extended_hours=True).collect()
    assert local_times(extended, "ts") == ["08:00", "09:30", "15:59", "16:00", "19:59"]
    assert local_times(extended, "ts_close") == ["08:01", "09:31", "16:00", "16:01", "20:00"]


def test_post_market_bar_at_19_59_belongs_to_that_days_session() -> None:
    late = local(NY, 2024, 1, 10, 19, 59)  # 00:59 UTC on the next day
    cal = calendar.sessions("XNYS", dt.date(2024, 1, 10), dt.date(2024, 1, 11))
    out = annotate(bars_at([late]).lazy(), "1m", cal, NY, extended_hours=True).collect()
    assert late.date() == dt.date(2024, 1, 11)
    assert out["session"].to_list() == [dt.date(2024, 1, 10)]


def test_prints_after_an_early_close_are_not_regular() -> None:
    day = dt.date(2024, 11, 29)
    stamps = [local(NY, 2024, 11, 29, h, m) for h, m in ((12, 59), (13, 0), (13, 5), (16, 0))]
    cal = sessions_of(day)
    assert local_times(annotate(bars_at(stamps).lazy(), "1m", cal, NY).collect(), "ts") == ["12:59"]
    extended = annotate(bars_at(stamps).lazy(), "1m", cal, NY, extended_hours=True)
    out = derive(extended, cal, "1h", "1m", emit_incomplete=True).collect()
    assert (out["n_src"].to_list(), out["ts_close"].to_list()) == ([1], [utc(2024, 11, 29, 18)])


def test_vendor_hourly_bars_close_at_the_session_close() -> None:
    cal = calendar.sessions("XNYS", dt.date(2024, 11, 27), dt.date(2024, 11, 29))
    stamps = [local(NY, 2024, 11, 27, 15, 30), local(NY, 2024, 11, 29, 12, 30)]
    out = annotate(bars_at(stamps).lazy(), "60m", cal, NY).collect()
    assert out["interval"].to_list() == ["1h", "1h"]
    assert out["ts_close"].to_list() == [utc(2024, 11, 27, 21), utc(2024, 11, 29, 18)]


def test_daily_bars_close_at_their_session_close_and_holidays_are_dropped() -> None:
    cal = calendar.sessions("XNYS", dt.date(2024, 7, 3), dt.date(2024, 7, 5))
    stamps = [utc(2024, 7, 3), utc(2024, 7, 4), utc(2024, 7, 5)]
    out = annotate(bars_at(stamps).lazy(), "1d", cal, NY).collect()
    assert out["session"].to_list() == [dt.date(2024, 7, 3), dt.date(2024, 7, 5)]
    assert out["ts_close"].to_list() == [utc(2024, 7, 3, 17), utc(2024, 7, 5, 20)]
    assert out.select("n_src", "complete").unique().rows() == [(1, True)]


def test_weekly_bar_belongs_to_the_last_session_of_its_week() -> None:
    cal = calendar.sessions("XNYS", dt.date(2024, 7, 1), dt.date(2024, 7, 7))
    out = annotate(bars_at([utc(2024, 7, 1)]).lazy(), "1w", cal, NY).collect()
    assert out.select("session", "ts_close").row(0) == (dt.date(2024, 7, 5), utc(2024, 7, 5, 20))
