"""The intraday example strategies over the sample store (configs/orb.toml, configs/vwap.toml).

Headline figures are pinned: change them only after checking the new orders are right.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar
from pipeline.catalog import Catalog
from pipeline.config import RunConfig, load_config
from pipeline.engine import backtest
from pipeline.store import Store
from pipeline.strategies import VwapReversion
from pipeline.strategy import Context, Strategy

REPO = Path(__file__).resolve().parents[2]
STORE_PATH = REPO / "data"
ORB = load_config(REPO / "configs" / "orb.toml")
VWAP = load_config(REPO / "configs" / "vwap.toml")
MINUTE = dt.timedelta(minutes=1)


def _run(config: RunConfig, strategy: Strategy | None = None) -> dict[str, pl.DataFrame]:
    catalog = Catalog()
    try:
        _, results = backtest(config, Store(STORE_PATH), catalog, strategy=strategy)
    finally:
        catalog.close()
    return results


def _with_hours(frame: pl.DataFrame) -> pl.DataFrame:
    """Join each row (by the UTC date of ``ts``) with its session's regular open and close."""
    days = calendar.sessions("XNYS", dt.date(2024, 7, 2), dt.date(2024, 7, 10))
    days = days.select("session", "open", "close")
    return frame.with_columns(session=pl.col("ts").dt.date()).join(days, on="session", how="left")


def _closing_fills(results: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Return the fills on a session's last regular bar; check they are market sells."""
    fills = _with_hours(results["fills"]).filter(pl.col("ts") == pl.col("close") - MINUTE)
    kinds = fills.join(results["orders"].select("order_id", "kind"), on="order_id")["kind"]
    assert (fills["side"] == "sell").all()
    assert (kinds == "market").all()
    return fills


def _assert_flat_at_each_session_end(results: dict[str, pl.DataFrame]) -> None:
    positions = results["positions"]
    assert positions.height > 0
    assert positions.filter(pl.col("quantity") != 0).is_empty()


@pytest.fixture(scope="module")
def orb() -> dict[str, pl.DataFrame]:
    return _run(ORB)


@pytest.fixture(scope="module")
def vwap() -> dict[str, pl.DataFrame]:
    return _run(VWAP)


# --- opening-range breakout ------------------------------------------------------------


def test_orb_trades_acme_and_bolt_and_tinys_entries_are_refused(
    orb: dict[str, pl.DataFrame],
) -> None:
    trades = orb["trades"]
    assert trades.height == 8
    assert sorted(trades["symbol"].unique().to_list()) == ["ACME", "BOLT"]
    refused = orb["orders"].filter(pl.col("status") == "refused")
    assert refused["symbol"].unique().to_list() == ["TINY"]
    assert refused.height == 3


def test_orb_enters_only_after_the_opening_range(orb: dict[str, pl.DataFrame]) -> None:
    minutes = ORB.strategy["params"]["minutes"]
    entries = orb["orders"].filter(pl.col("kind") == "market", pl.col("side") == "buy")
    assert entries.height > 0
    # signalled by a bar after the range at the earliest...
    placed = _with_hours(entries)
    assert (placed["ts"] >= placed["open"] + (minutes + 1) * MINUTE).all()
    # ...and filled at the next bar's open
    fills = orb["fills"].join(entries.select("order_id"), on="order_id")
    fills = _with_hours(fills)
    assert fills.height > 0
    assert (fills["ts"] >= fills["open"] + (minutes + 1) * MINUTE).all()


def test_orb_fills_only_in_regular_hours(orb: dict[str, pl.DataFrame]) -> None:
    assert ORB.extended_hours  # pre- and post-market bars are streamed
    fills = _with_hours(orb["fills"])
    assert fills.height > 0
    assert fills["open"].null_count() == 0
    assert ((fills["ts"] >= fills["open"]) & (fills["ts"] < fills["close"])).all()


def test_orb_is_flat_at_each_session_end(orb: dict[str, pl.DataFrame]) -> None:
    _assert_flat_at_each_session_end(orb)
    closing = _closing_fills(orb)
    assert closing["session"].unique().sort().to_list() == [
        dt.date(2024, 7, 2),
        dt.date(2024, 7, 10),
    ]


def test_orb_places_a_protective_stop_after_each_filled_entry(orb: dict[str, pl.DataFrame]) -> None:
    orders = orb["orders"]
    stops = orders.filter(pl.col("kind") == "stop")
    filled_entries = orders.filter(pl.col("side") == "buy", pl.col("status") == "filled")
    assert stops.height == filled_entries.height
    assert (stops["side"] == "sell").all()
    assert stops.filter(pl.col("status") == "filled").height >= 1


def test_orb_rerun_gives_identical_orders(orb: dict[str, pl.DataFrame]) -> None:
    assert_frame_equal(_run(ORB)["orders"], orb["orders"])


# --- VWAP mean reversion ---------------------------------------------------------------


def test_vwap_entries_on_tiny_are_refused_by_the_quality_gate(
    vwap: dict[str, pl.DataFrame],
) -> None:
    tiny = vwap["orders"].filter(pl.col("symbol") == "TINY")
    assert tiny.height == 8
    assert (tiny["status"] == "refused").all()
    assert (tiny["side"] == "buy").all()
    assert tiny["reason"].str.contains("quality").all()
    assert tiny["reason"].str.contains(r"min 95\.0%").all()
    assert vwap["fills"].filter(pl.col("symbol") == "TINY").is_empty()


def test_vwap_trades_the_liquid_symbols(vwap: dict[str, pl.DataFrame]) -> None:
    trades = vwap["trades"]
    counts = dict(trades.group_by("symbol").len().iter_rows())
    assert counts == {"ACME": 8, "BOLT": 14}
    refused = vwap["orders"].filter(pl.col("status") == "refused")
    assert refused["symbol"].unique().to_list() == ["TINY"]


def test_vwap_is_flat_at_each_session_end(vwap: dict[str, pl.DataFrame]) -> None:
    _assert_flat_at_each_session_end(vwap)
    fills = _with_hours(vwap["fills"])
    assert ((fills["ts"] >= fills["open"]) & (fills["ts"] < fills["close"])).all()
    closing = _closing_fills(vwap)  # the early close (17:00 UTC) included
    early = closing.filter(pl.col("session") == dt.date(2024, 7, 3))
    assert early["ts"].to_list() == [dt.datetime(2024, 7, 3, 16, 59, tzinfo=dt.UTC)] * 2


def test_vwap_rerun_gives_identical_orders(vwap: dict[str, pl.DataFrame]) -> None:
    assert_frame_equal(_run(VWAP)["orders"], vwap["orders"])


class _VwapRecorder(VwapReversion):
    """The vwap config's strategy, recording its own VWAP and the indicator's at each signal."""

    def __init__(self) -> None:
        super().__init__(**VWAP.strategy["params"])
        self.seen: list[tuple[float, float | None]] = []

    def _vwap(self, ctx: Context, name: str, own: float) -> float:
        self.seen.append((own, ctx.indicator(name, "vwap", self.interval)))
        return super()._vwap(ctx, name, own)


def test_vwap_kept_by_the_strategy_equals_the_vwap_indicator(
    vwap: dict[str, pl.DataFrame],
) -> None:
    recorder = _VwapRecorder()
    _run(VWAP, recorder)
    assert len(recorder.seen) > 0
    for own, indicator in recorder.seen:
        assert indicator == pytest.approx(own, rel=1e-12)
    without = dataclasses.replace(VWAP, indicators=())
    orders = _run(without)["orders"].drop("run_id")
    assert_frame_equal(orders, vwap["orders"].drop("run_id"))
