"""The committed sample store is what the generator makes, and has the features it promises."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from pipeline import sample
from pipeline.store import Store

SAMPLE = Path(__file__).resolve().parents[2] / "data"


def test_committed_sample_equals_a_fresh_generation(tmp_path: Path) -> None:
    sample.write_sample(tmp_path)
    fresh, committed = Store(tmp_path), Store(SAMPLE)
    assert fresh.inventory().equals(committed.inventory())
    for interval in ("1m", "1d"):
        assert_frame_equal(fresh.read(interval).collect(), committed.read(interval).collect())


def test_sample_is_small() -> None:
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


def test_sample_bars_keep_the_ohlc_invariants() -> None:
    for interval in ("1m", "1d"):
        bars = Store(SAMPLE).read(interval).collect()
        bad = bars.filter(
            (pl.col("low") > pl.min_horizontal("open", "close"))
            | (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") <= 0)
            | (pl.col("volume") < 0)
        )
        assert bad.is_empty(), interval


def test_sample_daily_bars_are_aggregates_of_regular_minutes() -> None:
    minutes = Store(SAMPLE).read("1m", ["BOLT"]).collect()
    day = minutes.filter(
        pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == pl.date(2024, 7, 3)
    )
    [daily] = (
        Store(SAMPLE)
        .read("1d", ["BOLT"], day["ts"][0].date(), day["ts"][0].date())
        .collect()
        .rows(named=True)
    )
    assert daily["open"] == day["open"][0]
    assert daily["close"] == day["close"][-1]
    assert daily["volume"] == day["volume"].sum()
    assert day.height == 210  # the early close
