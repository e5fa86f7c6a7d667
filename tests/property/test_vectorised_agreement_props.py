"""The vectorised crossover places the event crossover's orders under any broker (Hypothesis).

`tests/integration/test_vectorised_agreement.py` compares the two on fixed configs; here
Hypothesis draws the config: the sample's symbols (TINY has gaps), regular or extended
hours, history or none, the crossover's interval, periods, sizing and symbol, and a broker
with or without each cost model, volume cap, short selling, trading limit and quality
gate. Every result table must be the same, exactly: the orders with their statuses and
refusal reasons, the fills, trades, positions and equity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.engine import backtest
from pipeline.store import Store
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import Strategy
from pipeline.vectorised import VectorisedMovingAverageCross

STORE = Store(Path(__file__).resolve().parents[2] / "data")
SYMBOLS = ("ACME", "BOLT", "TINY")


def _maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


commissions = st.sampled_from(
    [
        {"model": "per_share", "rate": 0.005, "minimum": 1.0},
        {"model": "per_share", "rate": 0.01},
        {"model": "percent", "rate": 0.001},
        {"model": "fixed", "amount": 2.0},
    ]
)
caps = st.tuples(st.sampled_from([0.01, 0.1, 0.5]), st.sampled_from(["keep", "cancel"]))
brokers = st.tuples(
    st.fixed_dictionaries(
        {
            "cash": st.sampled_from([1_000, 100_000, 5_000_000]),
            "fill": st.sampled_from(["next_open", "close"]),
        }
    ),
    _maybe("commission", commissions),
    _maybe("slippage_bps", st.sampled_from([1, 5, 50])),
    _maybe("volume_cap", caps),
    _maybe("allow_short", st.just(True)),
    _maybe("max_buying_power", st.sampled_from([5_000, 50_000])),
    _maybe("max_per_trade", st.sampled_from([2_000, 30_000])),
    _maybe("max_per_symbol", st.sampled_from([2_000, 30_000])),
    _maybe("max_open_positions", st.sampled_from([1, 2])),
)


def _broker(parts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    broker: dict[str, Any] = {}
    for part in parts:
        broker.update(part)
    if "volume_cap" in broker:
        broker["volume_cap"], broker["on_cap"] = broker["volume_cap"]
    return broker


@st.composite
def runs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw a run config over the sample store and the crossover's parameters."""
    symbols = sorted(draw(st.sets(st.sampled_from(SYMBOLS), min_size=1)))
    interval = draw(st.sampled_from(["1m", "1m", "5m", "15m"]))
    fast = draw(st.integers(1, 12))
    params: dict[str, Any] = {
        "fast": fast,
        "slow": draw(st.integers(fast + 1, 45)),
        "interval": interval,
        "percent": draw(st.sampled_from([1.0, 0.5, 0.1])),
    }
    if len(symbols) > 1 and draw(st.booleans()):
        params["symbol"] = draw(st.sampled_from(symbols))
    config: dict[str, Any] = {
        "name": "agreement-props",
        "start": "2024-07-02",
        "end": "2024-07-10",
        "symbols": symbols,
        "streams": sorted({"1m", interval}, key=lambda s: int(s[:-1])),
        "extended_hours": draw(st.booleans()),
        "broker": _broker(draw(brokers)),
        "quality": {"min_for_entry": draw(st.sampled_from([0, 50, 95, 100]))},
    }
    if draw(st.booleans()):
        config["history"] = [{"interval": "1m", "sessions": draw(st.integers(1, 5))}]
    return config, params


def _results(config: dict[str, Any], strategy: Strategy) -> dict[str, pl.DataFrame]:
    catalog = Catalog()
    try:
        return backtest(parse_config(config), STORE, catalog, strategy=strategy)[1]
    finally:
        catalog.close()


@settings(max_examples=40, deadline=None)
@given(runs())
def test_vectorised_cross_gives_the_event_cross_run_under_any_broker_config(
    run: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    config, params = run
    event = _results(config, MovingAverageCross(**params))
    vector = _results(config, VectorisedMovingAverageCross(**params))
    for name in ("orders", "fills", "trades", "positions", "equity"):
        assert_frame_equal(vector[name], event[name], check_exact=True)
