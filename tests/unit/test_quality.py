"""Quality and gaps of bars against calendar slots; the Polars stage and the saved SQL agree."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar, quality, schema

D = dt.date
QUERIES = Path(__file__).resolve().parents[2] / "queries"
WEEK = (D(2024, 7, 1), D(2024, 7, 5))  # 07-03 closes early, 07-04 is a holiday


def _utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@functools.cache
def _sessions(mic: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    return calendar.sessions(mic, start, end)


def _slots(interval: str, start: dt.date, end: dt.date, mic: str = "XNYS") -> pl.LazyFrame:
    return calendar.slots(_sessions(mic, start, end), interval)


def _bars(symbol: str, stamps: pl.Series | list[dt.datetime]) -> pl.LazyFrame:
    return pl.LazyFrame({"ts": pl.Series(stamps, dtype=schema.TS)}).select(
        symbol=pl.lit(symbol), ts="ts"
    )


def _day_bars(symbol: str, day: dt.date, interval: str = "1m", drop: int = 0) -> pl.LazyFrame:
    """Bars on every slot of `day`, minus the slots whose index is a multiple of `drop`."""
    stamps = _slots(interval, day, day).collect()["ts"]
    if drop:
        stamps = stamps.filter(pl.int_range(len(stamps), eager=True) % drop != 0)
    return _bars(symbol, stamps)


def test_full_session_has_quality_100() -> None:
    day = D(2024, 7, 2)
    got = quality.quality(_day_bars("AAPL", day), _slots("1m", day, day), "1m").collect()
    assert got.schema == schema.QUALITY
    assert got.rows() == [("AAPL", "1m", day, 390, 390, 100.0, True)]


def test_missing_minutes_give_one_gap_row_per_run() -> None:
    day = D(2024, 7, 2)
    absent = {_utc(2024, 7, 2, 13, 40), _utc(2024, 7, 2, 13, 41), _utc(2024, 7, 2, 13, 42)}
    absent.add(_utc(2024, 7, 2, 15, 0))
    stamps = [t for t in _slots("1m", day, day).collect()["ts"] if t not in absent]
    bars, slots = _bars("AAPL", stamps), _slots("1m", day, day)
    got = quality.gaps(bars, slots, "1m").collect()
    assert got.schema == schema.GAPS
    assert got.select("start", "end", "missing").rows() == [
        (_utc(2024, 7, 2, 13, 40), _utc(2024, 7, 2, 13, 43), 3),
        (_utc(2024, 7, 2, 15, 0), _utc(2024, 7, 2, 15, 1), 1),
    ]
    assert quality.quality(bars, slots, "1m").collect()["present"].to_list() == [386]


def test_bars_outside_regular_hours_do_not_count() -> None:
    day = D(2024, 7, 2)
    extra = [_utc(2024, 7, 2, 12, 0), _utc(2024, 7, 2, 20, 0), _utc(2024, 7, 2, 13, 30, 30)]
    bars = pl.concat([_day_bars("AAPL", day, drop=2), _bars("AAPL", extra)])
    got = quality.quality(bars, _slots("1m", day, day), "1m").collect()
    assert got.select("expected", "present").row(0) == (390, 195)


def test_early_close_session_expects_210() -> None:
    day = D(2024, 7, 3)
    got = quality.quality(_day_bars("AAPL", day), _slots("1m", day, day), "1m").collect()
    assert got.select("expected", "present", "complete").row(0) == (210, 210, True)


def test_symbol_without_bars_on_a_session_gets_present_zero_and_one_whole_gap() -> None:
    slots = _slots("1m", D(2024, 7, 1), D(2024, 7, 2))
    bars = _day_bars("AAPL", D(2024, 7, 1))
    got = quality.quality(bars, slots, "1m").collect()
    assert got.select("session", "present", "quality").rows() == [
        (D(2024, 7, 1), 390, 100.0),
        (D(2024, 7, 2), 0, 0.0),
    ]
    gaps = quality.gaps(bars, slots, "1m").collect()
    assert gaps.select("session", "start", "end", "missing").rows() == [
        (D(2024, 7, 2), _utc(2024, 7, 2, 13, 30), _utc(2024, 7, 2, 20, 0), 390)
    ]


def test_lunch_break_does_not_split_a_gap() -> None:
    day = D(2024, 7, 2)
    absent = {_utc(2024, 7, 2, 3, 59), _utc(2024, 7, 2, 5, 0)}  # either side of XHKG's break
    slots = _slots("1m", day, day, mic="XHKG")
    stamps = [t for t in slots.collect()["ts"] if t not in absent]
    got = quality.gaps(_bars("0005", stamps), slots, "1m").collect()
    assert got.select("start", "end", "missing").rows() == [
        (_utc(2024, 7, 2, 3, 59), _utc(2024, 7, 2, 5, 1), 2)
    ]


def test_daily_gaps_are_one_row_per_missing_session_ending_a_day_later() -> None:
    slots = _slots("1d", *WEEK)
    bars = _bars("AAPL", [_utc(2024, 7, 1), _utc(2024, 7, 5)])
    got = quality.gaps(bars, slots, "1d").collect()
    assert got.select("start", "end", "missing").rows() == [
        (_utc(2024, 7, 2), _utc(2024, 7, 3), 1),
        (_utc(2024, 7, 3), _utc(2024, 7, 4), 1),
    ]


def test_enum_symbols_come_out_as_strings() -> None:
    day = D(2024, 7, 2)
    enum = pl.Enum(["AAPL", "MSFT"])
    bars = pl.concat([_day_bars("MSFT", day), _day_bars("AAPL", day, drop=3)])
    bars = bars.with_columns(pl.col("symbol").cast(enum))
    got = quality.quality(bars, _slots("1m", day, day), "1m").collect()
    assert got.schema == schema.QUALITY
    assert got.select("symbol", "present").rows() == [("AAPL", 260), ("MSFT", 390)]
    assert quality.gaps(bars, _slots("1m", day, day), "1m").collect().schema == schema.GAPS


def test_summarise_sums_present_and_expected() -> None:
    slots = _slots("1m", *WEEK)
    bars = pl.concat([_day_bars("AAPL", D(2024, 7, 1)), _day_bars("AAPL", D(2024, 7, 3), drop=2)])
    got = quality.summarise(quality.quality(bars, slots, "1m")).collect()
    assert got.schema == schema.QUALITY_SUMMARY
    row = got.row(0, named=True)
    assert (row["sessions"], row["expected"], row["present"]) == (4, 1380, 495)
    assert row["quality"] == pytest.approx(100 * 495 / 1380)
    assert row["incomplete"] == 3


# Two engines agree: the saved SQL against a tiny store-like DuckDB connection.


def _store_bars(interval: str) -> pl.DataFrame:
    """Two symbols over WEEK: A misses a run and a slot, B starts a day later and skips 07-03."""
    a = _slots(interval, *WEEK).collect()["ts"]
    a = a.filter(pl.int_range(len(a), eager=True).is_in([3, 4, 5, 9]).not_())
    b = _slots(interval, D(2024, 7, 2), D(2024, 7, 5)).collect()
    b_ts = b.filter(pl.col("session") != D(2024, 7, 3))["ts"]
    extended = [_utc(2024, 7, 2, 12, 0), _utc(2024, 7, 5, 21, 30)] if interval != "1d" else []
    frames = [_bars("A", a), _bars("B", b_ts), _bars("B", extended)]
    return (
        pl.concat(frames)
        .collect()
        .select(
            interval=pl.lit(interval),
            symbol="symbol",
            ts="ts",
            open=pl.lit(1.0),
            high=pl.lit(1.0),
            low=pl.lit(1.0),
            close=pl.lit(1.0),
            volume=pl.lit(100.0),
        )
    )


def _run_sql(name: str, bars: pl.DataFrame, params: dict[str, object]) -> pl.DataFrame:
    con = duckdb.connect()
    con.sql("SET TimeZone='UTC'")
    con.register("bars", bars.to_arrow())
    con.register("calendar_sessions", _sessions("XNYS", D(2024, 6, 24), D(2024, 7, 12)).to_arrow())
    text = (QUERIES / f"{name}.sql").read_text()
    result = pl.from_arrow(con.sql(text, params=params).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def _run_polars(stage: str, bars: pl.DataFrame, interval: str) -> pl.DataFrame:
    """Run a stage per symbol with slots over the sessions from its first to its last bar."""
    step = quality.quality if stage == "quality" else quality.gaps
    enum = pl.Enum(sorted(bars["symbol"].unique()))
    parts = []
    for own in bars.partition_by("symbol"):  # one frame per symbol, not per row
        first, last = own["ts"].min(), own["ts"].max()
        assert isinstance(first, dt.datetime)
        assert isinstance(last, dt.datetime)
        slots = _slots(interval, first.date(), last.date())
        lazy = own.lazy().select(pl.col("symbol").cast(enum), "ts")
        parts.append(step(lazy, slots, interval).collect())
    return pl.concat(parts).sort("symbol", "session" if stage == "quality" else "start")


@pytest.mark.parametrize("interval", ["1m", "5m", "1h", "30s", "1d"])
@pytest.mark.parametrize(("stage", "query"), [("quality", "quality_by_session"), ("gaps", "gaps")])
def test_polars_and_sql_agree(interval: str, stage: str, query: str) -> None:
    bars = _store_bars(interval)
    expected = _run_polars(stage, bars, interval)
    got = _run_sql(query, bars, {"interval": interval, "symbol": None})
    assert_frame_equal(got, expected)
    assert not expected.is_empty()


def test_polars_and_sql_agree_on_one_symbol() -> None:
    bars = _store_bars("1m")
    expected = _run_polars("quality", bars, "1m").filter(pl.col("symbol") == "B")
    got = _run_sql("quality_by_session", bars, {"interval": "1m", "symbol": "B"})
    assert_frame_equal(got, expected)
    assert got["session"].to_list() == [D(2024, 7, 2), D(2024, 7, 3), D(2024, 7, 5)]
    assert got["present"].to_list() == [390, 0, 390]


def test_sql_ignores_bars_of_other_intervals() -> None:
    bars = pl.concat([_store_bars("1m"), _store_bars("5m")])
    got = _run_sql("quality_by_session", bars, {"interval": "5m", "symbol": None})
    assert_frame_equal(got, _run_polars("quality", _store_bars("5m"), "5m"))
