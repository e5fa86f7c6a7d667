"""Phase 2.2 by blocks of sessions gives each session the values it computes alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import _daily_blocks
from pipeline._session_run import SessionRun
from pipeline.catalog import Catalog
from pipeline.config import RunConfig, load_config
from pipeline.runner import Coordinator
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
CONFIG = load_config(REPO / "configs" / "sample.toml")


def _historical(config: RunConfig, *, blocks: bool) -> dict[dt.date, pl.DataFrame]:
    """Run phases 1.2-3 of every session; keep the historical indicators of each."""
    catalog = Catalog()
    try:
        coordinator = Coordinator(config, STORE, catalog)
        if blocks:
            assert coordinator.daily_blocks is not None
        else:
            coordinator.daily_blocks = None
        seen = {}
        for day in coordinator.days.rows(named=True):
            SessionRun(coordinator, day).prepare()
            seen[day["session"]] = catalog.table("indicators")
        return seen
    finally:
        catalog.close()


@pytest.mark.parametrize("block", [1, 4, 20])
def test_blocks_equal_session_by_session(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_daily_blocks, "BLOCK", block)
    monkeypatch.setattr(_daily_blocks, "BLOCK_ROWS", 0)  # blocks of exactly `block`
    by_blocks = _historical(CONFIG, blocks=True)
    alone = _historical(CONFIG, blocks=False)
    assert list(by_blocks) == list(alone)
    names = set()
    for day, values in alone.items():
        assert_frame_equal(by_blocks[day], values, check_exact=True)
        names |= set(values["name"].to_list())
    assert {"avg_volume_20d", "atr_14d", "prev_close"} <= names  # daily kinds were there
    assert any(n.endswith("profile") for n in names)  # and the minute profile


def test_a_symbol_subset_of_daily_history() -> None:
    subset = dataclasses.replace(
        CONFIG,
        history=tuple(
            dataclasses.replace(h, symbols=("ACME",)) if h.interval == "1d" else h
            for h in CONFIG.history
        ),
    )
    by_blocks = _historical(subset, blocks=True)
    for day, values in _historical(subset, blocks=False).items():
        assert_frame_equal(by_blocks[day], values, check_exact=True)
        daily = values.filter(pl.col("interval") == "1d")
        assert set(daily["symbol"].cast(pl.String).to_list()) == {"ACME"}


def test_daily_bars_in_session_compute_session_by_session() -> None:
    # 1d bars derived in session join the history too: blocks would miss them.
    config = dataclasses.replace(CONFIG, streams=("1m", "1d"))
    catalog = Catalog()
    try:
        assert Coordinator(config, STORE, catalog).daily_blocks is None
    finally:
        catalog.close()


def test_blocks_grow_within_the_row_budget() -> None:
    assert _daily_blocks.block_sessions(20, 100) == 61  # 61 * (20 + 61) * 100 <= 500k
    assert _daily_blocks.block_sessions(252, 500) == _daily_blocks.BLOCK  # the floor
    for window, symbols in [(20, 100), (5, 3), (60, 40)]:
        n = _daily_blocks.block_sessions(window, symbols)
        assert n * (window + n) * symbols <= _daily_blocks.BLOCK_ROWS
        assert (n + 1) * (window + n + 1) * symbols > _daily_blocks.BLOCK_ROWS
