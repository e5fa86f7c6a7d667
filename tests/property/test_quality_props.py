"""Properties of quality and gaps on random bar sets over a week of XNYS 5m slots."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline import calendar, quality, schema

INTERVAL = "5m"
WEEK = (dt.date(2024, 7, 1), dt.date(2024, 7, 5))  # includes an early close and a holiday


@functools.cache
def _sessions() -> pl.DataFrame:
    return calendar.sessions("XNYS", *WEEK)


@functools.cache
def _slot_frame() -> pl.DataFrame:
    return calendar.slots(_sessions(), INTERVAL).collect()


def _slot_count() -> int:
    return _slot_frame().height


@st.composite
def bar_sets(draw: st.DrawFn) -> pl.DataFrame:
    """Bars for 1-3 symbols: a random non-empty subset of slots each, plus off-grid stamps."""
    n = _slot_count()
    ts = _slot_frame()["ts"]
    frames = []
    for symbol in draw(st.lists(st.sampled_from("ABC"), min_size=1, max_size=3, unique=True)):
        picked = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
        off = draw(st.lists(st.integers(1, 4), max_size=3))
        stamps = ts.gather(picked).to_list()
        stamps += [ts[i % n] + dt.timedelta(minutes=m) for i, m in enumerate(off)]
        frames.append(pl.DataFrame({"symbol": symbol, "ts": pl.Series(stamps, dtype=schema.TS)}))
    return pl.concat(frames).unique(maintain_order=True)


def _quality(bars: pl.DataFrame) -> pl.DataFrame:
    return quality.quality(bars.lazy(), _slot_frame().lazy(), INTERVAL).collect()


def _gaps(bars: pl.DataFrame) -> pl.DataFrame:
    return quality.gaps(bars.lazy(), _slot_frame().lazy(), INTERVAL).collect()


@settings(max_examples=40, deadline=None)
@given(bar_sets())
def test_quality_is_idempotent_on_present_slots(bars: pl.DataFrame) -> None:
    first = _quality(bars)
    on_slots = bars.join(_slot_frame().select("ts"), on="ts", how="semi")
    assert_frame_equal(_quality(on_slots), first)
    assert_frame_equal(_quality(on_slots), _quality(on_slots))


@settings(max_examples=40, deadline=None)
@given(bar_sets())
def test_present_plus_gap_slots_equal_expected(bars: pl.DataFrame) -> None:
    missing = _gaps(bars).group_by("symbol", "session").agg(pl.col("missing").sum())
    joined = _quality(bars).join(missing, on=["symbol", "session"], how="left")
    total = pl.col("present") + pl.col("missing").fill_null(0)
    assert joined.filter(total != pl.col("expected")).is_empty()


@settings(max_examples=40, deadline=None)
@given(bar_sets())
def test_quality_is_a_percentage(bars: pl.DataFrame) -> None:
    got = _quality(bars)
    assert got["quality"].is_between(0.0, 100.0).all()
    assert (got["complete"] == (got["quality"] == 100.0)).all()


@settings(max_examples=20, deadline=None)
@given(bar_sets())
def test_polars_and_sql_agree_on_random_bars(bars: pl.DataFrame) -> None:
    sql = _query("quality_by_session")
    con = duckdb.connect()
    con.sql("SET TimeZone='UTC'")
    con.register("bars", bars.with_columns(interval=pl.lit(INTERVAL)).to_arrow())
    con.register("calendar_sessions", _sessions().to_arrow())
    got = pl.from_arrow(
        con.sql(sql, params={"interval": INTERVAL, "symbol": None}).to_arrow_table()
    )
    # The SQL counts, per symbol, only the sessions from its first to its last bar
    # date: restrict the Polars result (computed over the whole week) the same way.
    spans = bars.group_by("symbol").agg(
        first=pl.col("ts").min().dt.date(), last=pl.col("ts").max().dt.date()
    )
    expected = (
        _quality(bars)
        .join(spans, on="symbol")
        .filter(pl.col("session").is_between(pl.col("first"), pl.col("last")))
        .drop("first", "last")
    )
    assert_frame_equal(got, expected)


@functools.cache
def _query(name: str) -> str:
    return (Path(__file__).resolve().parents[2] / "queries" / f"{name}.sql").read_text()
