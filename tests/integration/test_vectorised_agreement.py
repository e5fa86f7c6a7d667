"""The vectorised crossover gives the event-style crossover's orders and trades (issue 4).

On the sample store (configs/sample.toml: ACME, BOLT, TINY, 1m and 5m, 6 sessions with
an early close, a holiday and TINY's gaps, so refused and cut orders are compared too)
and on real SPY 1-minute bars, `VectorisedMovingAverageCross` and `MovingAverageCross`
with the same parameters produce the same orders (ts, symbol, side, quantity, status)
and the same round trips. A vectorised run taking the steps between its orders at once
(`Engine.quiet_steps`, the default) gives the tables of one taken step by step, and a
run planning its sessions at once (`VectorisedRunner.plan_sessions`) those of one
evaluating each session on its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.catalog import Catalog
from pipeline.config import RunConfig, load_config, parse_config
from pipeline.engine import Engine, backtest
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import Strategy
from pipeline.vectorised import VectorisedMovingAverageCross, VectorisedRunner

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
SAMPLE = dataclasses.replace(load_config(REPO / "configs" / "sample.toml"), streams=("1m", "5m"))
ORDER_COLUMNS = ["ts", "symbol", "side", "quantity", "status"]
SESSIONS = 6  # in the sample config's range


def _results(config: RunConfig, store: Store, strategy: Strategy | None) -> dict[str, pl.DataFrame]:
    catalog = Catalog()
    try:
        _, results = backtest(config, store, catalog, strategy=strategy)
    finally:
        catalog.close()
    return results


def _assert_same_run(config: RunConfig, store: Store, **params: object) -> dict[str, pl.DataFrame]:
    event = _results(config, store, MovingAverageCross(**params))  # type: ignore[arg-type]
    vector = _results(config, store, VectorisedMovingAverageCross(**params))  # type: ignore[arg-type]
    assert event["orders"].height > 0
    assert_frame_equal(
        vector["orders"].select(ORDER_COLUMNS), event["orders"].select(ORDER_COLUMNS)
    )
    assert_frame_equal(vector["orders"], event["orders"])  # reasons and fills too
    for name in ("fills", "trades", "positions", "equity"):
        assert_frame_equal(vector[name], event[name], check_exact=True)
    return event


@pytest.mark.parametrize(
    ("interval", "fast", "slow"),
    [("1m", 10, 30), ("5m", 10, 30), ("5m", 3, 8), ("1m", 2, 5), ("5m", 20, 100)],
)
def test_sample_vectorised_cross_places_the_event_cross_orders(
    interval: str, fast: int, slow: int
) -> None:
    event = _assert_same_run(SAMPLE, STORE, fast=fast, slow=slow, interval=interval)
    assert event["trades"].height > 0
    assert event["orders"]["symbol"].n_unique() >= 2


def test_sample_cross_of_15m_bars_warms_up_across_sessions() -> None:
    config = dataclasses.replace(SAMPLE, streams=("1m", "5m", "15m"))  # 26 15m bars a session
    event = _assert_same_run(config, STORE, fast=4, slow=40, interval="15m")
    assert event["trades"].height > 0


def test_sample_cross_on_one_symbol_is_the_same() -> None:
    event = _assert_same_run(SAMPLE, STORE, fast=3, slow=8, interval="5m", symbol="BOLT")
    assert event["orders"]["symbol"].unique().to_list() == ["BOLT"]


def test_sample_statuses_include_refusals_so_the_gate_order_matters() -> None:
    event = _results(SAMPLE, STORE, MovingAverageCross(fast=2, slow=5, interval="1m"))
    assert {"filled", "refused", "cancelled"} <= set(event["orders"]["status"].to_list())


def test_vectorised_cross_is_named_in_config_like_any_strategy() -> None:
    config = dataclasses.replace(
        SAMPLE,
        strategy={
            "class": "pipeline.vectorised:VectorisedMovingAverageCross",
            "params": {"fast": 3, "slow": 8, "interval": "5m"},
        },
    )
    by_config = _results(config, STORE, None)
    event = _results(SAMPLE, STORE, MovingAverageCross(fast=3, slow=8, interval="5m"))
    assert by_config["orders"]["run_id"][0] != event["orders"]["run_id"][0]  # another config
    assert_frame_equal(by_config["orders"].drop("run_id"), event["orders"].drop("run_id"))


def _engine_results(
    config: RunConfig, strategy: Strategy, *, quiet: bool
) -> dict[str, pl.DataFrame]:
    """Run `strategy`, the vectorised engine taking quiet steps at once or one by one."""
    catalog = Catalog()
    try:
        engine = Engine(config, catalog, strategy=strategy)
        engine.quiet_steps = quiet
        calls: list[int] = []
        take = engine.broker.on_quiet_rows

        def counted(*args: Any) -> None:
            calls.append(len(args[0]))
            take(*args)

        engine.broker.on_quiet_rows = counted  # type: ignore[method-assign]
        Coordinator(config, STORE, catalog).run((), engine=engine)
        assert (sum(calls) > 100) == quiet  # the quiet run took most marks at once
        return engine.results()
    finally:
        catalog.close()


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize(("interval", "fast", "slow"), [("1m", 10, 30), ("5m", 3, 8)])
def test_quiet_steps_taken_at_once_give_the_same_run(
    extended: bool, interval: str, fast: int, slow: int
) -> None:
    config = dataclasses.replace(SAMPLE, extended_hours=extended)
    runs = [
        _engine_results(
            config, VectorisedMovingAverageCross(fast=fast, slow=slow, interval=interval), quiet=q
        )
        for q in (True, False)
    ]
    assert runs[0]["trades"].height > 0
    for name in ("orders", "fills", "trades", "positions", "equity"):
        assert_frame_equal(runs[0][name], runs[1][name], check_exact=True)


@pytest.mark.parametrize("extended", [False, True])
def test_sessions_planned_at_once_give_the_run_of_one_evaluation_per_session(
    extended: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = dataclasses.replace(SAMPLE, extended_hours=extended)
    plans: list[int] = []
    plan = VectorisedRunner.plan_sessions

    def counted(runner: VectorisedRunner, sessions: list[Any]) -> None:
        plans.append(len(sessions))
        plan(runner, sessions)

    monkeypatch.setattr(VectorisedRunner, "plan_sessions", counted)
    planned = _results(config, STORE, VectorisedMovingAverageCross(fast=3, slow=40, interval="5m"))
    assert plans
    assert sum(plans) == SESSIONS - 1
    monkeypatch.setattr("pipeline.vectorised.PLAN_ROWS", 0)  # every session on its own
    alone = _results(config, STORE, VectorisedMovingAverageCross(fast=3, slow=40, interval="5m"))
    assert sum(plans) == SESSIONS - 1
    assert planned["trades"].height > 0
    for name in ("orders", "fills", "trades", "positions", "equity"):
        assert_frame_equal(planned[name], alone[name], check_exact=True)


# --- real data -------------------------------------------------------------------------

SPY_CONFIG = {
    "name": "vectorised-agreement",
    "start": "2019-02-11",
    "end": "2019-02-15",
    "symbols": ["SPY"],
    "streams": ["1m", "5m"],
    "broker": {"cash": 100_000, "fill": "next_open"},
}


@pytest.mark.real_data
@pytest.mark.parametrize(("interval", "fast", "slow"), [("1m", 10, 30), ("5m", 5, 12)])
def test_real_spy_vectorised_cross_places_the_event_cross_orders(
    spy: Store, interval: str, fast: int, slow: int
) -> None:
    event = _assert_same_run(parse_config(SPY_CONFIG), spy, fast=fast, slow=slow, interval=interval)
    assert event["trades"].height >= 5
    if interval == "1m":  # the run of the backtesting.py agreement test
        assert event["trades"].height == 43
