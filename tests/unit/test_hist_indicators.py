"""Historical indicators (phase 2.2) on tiny inline histories."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import talib

from pipeline import schema
from pipeline.config import HistoricalIndicator
from pipeline.errors import ConfigError
from pipeline.hist_indicators import compute, validate

UTC = dt.UTC
DAY = dt.date(2024, 3, 15)  # a Friday
OPEN = dt.datetime(2024, 3, 15, 13, 30, tzinfo=UTC)
MIDNIGHT = dt.datetime(2024, 3, 15, tzinfo=UTC)


def catalog(rows: list[dict[str, object]], interval: str) -> pl.DataFrame:
    """Return CATALOG_BARS rows from dicts holding symbol, session, ts and OHLCV."""
    step = dt.timedelta(days=1) if interval == "1d" else dt.timedelta(minutes=1)
    frame = pl.DataFrame(rows).with_columns(
        interval=pl.lit(interval),
        ts_close=pl.col("ts") + step,
        available_at=pl.col("ts") + step,
        n_src=pl.lit(1, pl.UInt32),
        complete=pl.lit(True),
    )
    return frame.select(pl.col(k).cast(v) for k, v in schema.CATALOG_BARS.items())


def daily(symbol: str, days: list[dt.date], closes: list[float]) -> pl.DataFrame:
    """Return daily bars: open = close, high = close + 1, low = close - 1, volume = 100 * close."""
    rows = [
        {
            "symbol": symbol,
            "session": day,
            "ts": dt.datetime.combine(day, dt.time(), UTC),
            "open": c,
            "high": c + 1,
            "low": c - 1,
            "close": c,
            "volume": 100 * c,
        }
        for day, c in zip(days, closes, strict=True)
    ]
    return catalog(rows, "1d")


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    days = pl.date_range(start, end, "1d", eager=True)
    return days.filter(days.dt.weekday() <= 5).to_list()


# A: 14 sessions from 2024-02-26 to 2024-03-14 with closes 1..14.
A_DAYS = weekdays(dt.date(2024, 2, 26), dt.date(2024, 3, 14))
A_CLOSES = [float(c) for c in range(1, len(A_DAYS) + 1)]


def history(*frames: pl.DataFrame) -> pl.LazyFrame:
    return pl.concat(frames).lazy()


def base() -> pl.LazyFrame:
    late = daily("A", [DAY, dt.date(2024, 3, 18)], [1000.0, 2000.0])  # must be ignored
    b = daily("B", [dt.date(2024, 3, 12), dt.date(2024, 3, 13), dt.date(2024, 3, 14)], [7, 8, 6])
    return history(daily("A", A_DAYS, A_CLOSES), late, b)


def run(
    specs: list[HistoricalIndicator],
    bars: pl.LazyFrame | None = None,
    sessions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    out = compute(base() if bars is None else bars, specs, DAY, OPEN, sessions=sessions)
    return out.collect(engine="in-memory")


def values(frame: pl.DataFrame) -> dict[tuple[str, str], float]:
    return {(r["symbol"], r["name"]): r["value"] for r in frame.iter_rows(named=True)}


def test_avg_over_sessions_uses_the_last_n_bars_before_the_session() -> None:
    out = values(run([HistoricalIndicator("avg", "close", "3d")]))
    assert out == {("A", "avg_close_3d"): 13.0, ("B", "avg_close_3d"): 7.0}


def test_daily_rows_are_dated_the_session_and_available_at_its_open() -> None:
    out = run([HistoricalIndicator("prev", "close"), HistoricalIndicator("max", "high", "3d")])
    assert out.schema == schema.INDICATORS
    assert out["interval"].unique().to_list() == ["1d"]
    assert out["ts"].unique().to_list() == [MIDNIGHT]
    assert out["available_at"].unique().to_list() == [OPEN]
    assert out.select("symbol", "name").rows() == [
        ("A", "max_high_3d"),
        ("A", "prev_close"),
        ("B", "max_high_3d"),
        ("B", "prev_close"),
    ]


def test_bars_on_or_after_the_session_are_ignored() -> None:
    out = values(run([HistoricalIndicator("max", "close", "1y"), HistoricalIndicator("prev")]))
    assert out[("A", "max_close_1y")] == 14.0
    assert out[("A", "prev_close")] == 14.0


def test_max_over_weeks_counts_calendar_time_not_sessions() -> None:
    # 2w before 2024-03-15 is 2024-03-01: the window is [03-01, 03-15), so 2024-02-29
    # (and older) is out, although the window then holds only 10 sessions.
    spike = daily("A", [dt.date(2024, 2, 29)], [99.0])
    a = pl.concat(
        [daily("A", A_DAYS, A_CLOSES).filter(pl.col("session") != dt.date(2024, 2, 29)), spike]
    )
    out = values(run([HistoricalIndicator("max", "high", "2w")], a.lazy()))
    assert out == {("A", "max_high_2w"): 15.0}
    boundary = values(run([HistoricalIndicator("min", "low", "2w")], a.lazy()))
    assert boundary == {("A", "min_low_2w"): 4.0}  # 2024-03-01 (close 5) is the first bar kept


def test_one_year_window_starts_on_the_same_date_a_year_before() -> None:
    old = daily("A", [dt.date(2023, 3, 15), dt.date(2023, 3, 16)], [0.5, 50.0])
    bars = history(old, daily("A", A_DAYS, A_CLOSES))
    out = values(
        run(
            [HistoricalIndicator("min", "close", "1y"), HistoricalIndicator("max", "close", "1y")],
            bars,
        )
    )
    # [2023-03-15, 2024-03-15): the bar of 2023-03-15 itself is in.
    assert out == {("A", "min_close_1y"): 0.5, ("A", "max_close_1y"): 50.0}


def test_prev_reads_the_last_daily_bar_fields() -> None:
    specs = [HistoricalIndicator("prev", f) for f in ("close", "high", "low", "open", "volume")]
    out = values(run(specs))
    assert {k: v for k, v in out.items() if k[0] == "B"} == {
        ("B", "prev_close"): 6.0,
        ("B", "prev_high"): 7.0,
        ("B", "prev_low"): 5.0,
        ("B", "prev_open"): 6.0,
        ("B", "prev_volume"): 600.0,
    }


def test_atr_equals_talib_and_needs_n_plus_one_bars() -> None:
    closes = [10, 11.5, 11, 13, 12.2, 12.9, 14, 13.1, 15, 14.2, 16, 15.5, 17, 16.1]
    bars = daily("A", A_DAYS, [float(c) for c in closes]).with_columns(
        high=pl.col("close") + pl.int_range(pl.len()) % 3 * 0.7 + 0.1,
        low=pl.col("close") - pl.int_range(pl.len()) % 4 * 0.3 - 0.2,
    )
    few = daily("B", weekdays(dt.date(2024, 3, 11), dt.date(2024, 3, 14)), [5, 6, 7, 8])
    out = run([HistoricalIndicator("atr", period="4d")], history(bars, few))
    expected = talib.ATR(bars["high"], bars["low"], bars["close"], timeperiod=4)[-1]
    assert out["symbol"].to_list() == ["A"]  # B has 4 bars, ATR(4) needs 5
    assert out["value"][0] == pytest.approx(expected, rel=1e-12)
    exactly = run([HistoricalIndicator("atr", period="3d")], history(few))
    reference = talib.ATR(few["high"], few["low"], few["close"], timeperiod=3)
    assert exactly["value"].to_list() == pytest.approx([reference[-1]], rel=1e-12)


def test_symbols_without_daily_bars_get_no_daily_row() -> None:
    minute = minute_bars("C", SESSIONS[0], [1.0])
    out = run(
        [HistoricalIndicator("prev"), HistoricalIndicator("atr", period="2d")], history(minute)
    )
    assert out.height == 0


def test_enum_symbols_stay_enum_and_sort_by_their_order() -> None:
    enum = pl.Enum(["A", "B"])
    bars = base().with_columns(pl.col("symbol").cast(enum))
    out = run([HistoricalIndicator("prev")], bars)
    assert out.schema["symbol"] == enum
    assert out["symbol"].to_list() == ["A", "B"]
    empty = run([], bars)
    assert empty.height == 0
    assert empty.schema["symbol"] == enum


# Minute profiles: three short made-up sessions (5 minutes, a 3-minute early close, 5 minutes).
def session_row(day: dt.date, minutes: int) -> dict[str, object]:
    opened = dt.datetime.combine(day, dt.time(14, 30), UTC)
    return {
        "session": day,
        "open": opened,
        "close": opened + dt.timedelta(minutes=minutes),
        "break_start": None,
        "break_end": None,
        "early_close": minutes < 5,
    }


SESSIONS = [dt.date(2024, 3, 12), dt.date(2024, 3, 13), dt.date(2024, 3, 14)]
CALENDAR = pl.DataFrame(
    [session_row(SESSIONS[0], 5), session_row(SESSIONS[1], 5), session_row(SESSIONS[2], 3)],
    schema=schema.CALENDAR_SESSIONS,
)
PROFILE = HistoricalIndicator("avg", "volume", "2d", granularity="minute")


def minute_bars(
    symbol: str, day: dt.date, volumes: list[float | None], start: dt.time = dt.time(14, 30)
) -> pl.DataFrame:
    """Return 1m bars from `start`, one per volume; None leaves that minute without a bar."""
    first = dt.datetime.combine(day, start, UTC)
    rows = [
        {
            "symbol": symbol,
            "session": day,
            "ts": first + dt.timedelta(minutes=i),
            "open": 10.0 + i,
            "high": 11.0 + i,
            "low": 9.0 + i,
            "close": 10.0 + i,
            "volume": v,
        }
        for i, v in enumerate(volumes)
        if v is not None
    ]
    return catalog(rows, "1m")


def profile_history() -> pl.LazyFrame:
    return history(
        minute_bars("A", SESSIONS[0], [1e6] * 5),  # outside a 2-session window
        minute_bars("A", SESSIONS[1], [100, 200, None, 400, 500]),  # 14:32 missing
        minute_bars("A", SESSIONS[2], [300, 600, 900]),  # early close: 3 minutes
        minute_bars("A", DAY, [9e9] * 5),  # the session itself: ignored
        daily("A", SESSIONS, [1.0, 2.0, 3.0]),
    )


def test_minute_profile_counts_missing_minutes_as_zero_volume_and_skips_closed_ones() -> None:
    today = pl.DataFrame([session_row(DAY, 5)], schema=schema.CALENDAR_SESSIONS)
    out = run([PROFILE], profile_history(), sessions=pl.concat([CALENDAR, today]))
    assert out.columns == list(schema.INDICATORS)
    assert out["interval"].unique().to_list() == ["1m"]
    assert out["name"].unique().to_list() == ["avg_volume_2d_profile"]
    assert out["available_at"].unique().to_list() == [OPEN]
    assert out["ts"].to_list() == [OPEN + dt.timedelta(minutes=i) for i in range(5)]
    # 14:30 (100+300)/2, 14:31 (200+600)/2, 14:32 (0+900)/2; after the early close only one session.
    assert out["value"].to_list() == [200.0, 400.0, 450.0, 400.0, 500.0]


def test_minute_profile_of_a_price_skips_missing_minutes() -> None:
    spec = HistoricalIndicator("avg", "close", "2d", granularity="minute")
    out = run([spec], profile_history(), sessions=CALENDAR)
    # 14:32 has a bar only on the early-close day; price fields do not count missing bars.
    assert out["value"].to_list() == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_minute_profile_is_cut_to_an_early_closing_session() -> None:
    today = pl.DataFrame([session_row(DAY, 2)], schema=schema.CALENDAR_SESSIONS)
    out = run([PROFILE], profile_history(), sessions=pl.concat([CALENDAR, today]))
    assert out["value"].to_list() == [200.0, 400.0]


def test_minute_profile_window_skips_sessions_without_any_bar_of_the_symbol() -> None:
    bars = history(
        minute_bars("B", SESSIONS[0], [10, 20, 30, 40, 50]),
        minute_bars("B", SESSIONS[2], [30, None, 90]),
    )
    out = run([PROFILE], bars, sessions=CALENDAR)
    assert out["symbol"].unique().to_list() == ["B"]
    assert out["value"].to_list() == [20.0, 10.0, 60.0, 40.0, 50.0]


def test_minute_profile_ignores_bars_outside_regular_hours() -> None:
    pre = minute_bars("A", SESSIONS[1], [7e6], start=dt.time(13, 0))
    bars = history(pre, minute_bars("A", SESSIONS[1], [100, 200, 300, 400, 500]))
    spec = HistoricalIndicator("avg", "volume", "1d", granularity="minute")
    out = run([spec], bars, sessions=CALENDAR)
    assert out["value"].to_list() == [100.0, 200.0, 300.0, 400.0, 500.0]


def test_minute_profile_without_sessions_is_an_error() -> None:
    with pytest.raises(ValueError, match="sessions="):
        run([PROFILE], profile_history())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (HistoricalIndicator("median"), "name 'median'"),
        (HistoricalIndicator("avg", "vwap"), "field 'vwap'"),
        (HistoricalIndicator("avg", period="20"), "period '20'"),
        (HistoricalIndicator("max", "volume", "2d", granularity="minute"), "minute profile"),
        (HistoricalIndicator("avg", "volume", "2w", granularity="minute"), "minute profile"),
        (HistoricalIndicator("atr", period="2w"), "'2d'"),
        (HistoricalIndicator("prev", period="5d"), "previous session only"),
    ],
)
def test_invalid_specs_are_refused_with_the_fix(spec: HistoricalIndicator, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(spec)


def test_naive_session_open_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        compute(base(), [], DAY, OPEN.replace(tzinfo=None))


def test_streaming_and_in_memory_engines_give_the_same_frame() -> None:
    specs = [
        HistoricalIndicator("avg", "close", "3d"),
        HistoricalIndicator("max", "high", "2w"),
        HistoricalIndicator("atr", period="2d"),
        HistoricalIndicator("prev", "low"),
        PROFILE,
    ]
    bars = pl.concat([base(), profile_history().filter(pl.col("interval") == "1m")])
    plan = compute(bars, specs, DAY, OPEN, sessions=CALENDAR)
    streamed = plan.collect(engine="streaming")
    assert streamed.height == 2 * 4 + 5  # 4 daily values for A and B, 5 profile minutes for A
    assert streamed.equals(plan.collect(engine="in-memory"))
