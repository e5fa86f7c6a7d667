from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline.store import Store

T0 = dt.datetime(2024, 12, 31, 23, 0, tzinfo=dt.UTC)  # batches straddle a year boundary


@st.composite
def bar_batches(draw: st.DrawFn) -> pl.DataFrame:
    minutes = draw(st.lists(st.integers(0, 180), min_size=1, max_size=40, unique=True))
    symbols = draw(
        st.lists(
            st.sampled_from(["AAA", "BBB", "C.D"]), min_size=len(minutes), max_size=len(minutes)
        )
    )
    base = draw(st.lists(st.floats(1.0, 1000.0), min_size=len(minutes), max_size=len(minutes)))
    return pl.DataFrame(
        {
            "symbol": symbols,
            "ts": [T0 + dt.timedelta(minutes=m) for m in minutes],
            "open": base,
            "high": [b * 1.01 for b in base],
            "low": [b * 0.99 for b in base],
            "close": base,
            "volume": [float(m) for m in minutes],
        }
    ).unique(subset=["symbol", "ts"], keep="first")


def read_all(root: Path) -> pl.DataFrame:
    return Store(root).read("1m").collect().sort("symbol", "ts")


@settings(max_examples=25, deadline=None)
@given(batch=bar_batches(), split=st.integers(0, 40))
def test_writing_in_two_parts_equals_writing_at_once(batch: pl.DataFrame, split: int) -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        Store(a).write("1m", batch)
        Store(b).write("1m", batch.slice(split))
        Store(b).write("1m", batch.slice(0, split))
        assert_frame_equal(read_all(Path(a)), read_all(Path(b)))
        assert_frame_equal(read_all(Path(a)), batch.sort("symbol", "ts"))


@settings(max_examples=15, deadline=None)
@given(batch=bar_batches())
def test_writing_the_same_rows_twice_changes_nothing(batch: pl.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as a:
        Store(a).write("1m", batch)
        first = read_all(Path(a))
        report = Store(a).write("1m", batch.sample(fraction=1.0, shuffle=True, seed=1))
        assert report.rows_added == 0
        assert report.partitions == 0
        assert_frame_equal(read_all(Path(a)), first)
