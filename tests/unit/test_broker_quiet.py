"""`Broker.on_quiet_rows`: many steps at once while no order works, as one `on_rows` per step.

Two brokers see the same random bars of three symbols (some steps without some symbols,
prices that rise and fall, so the drawdown moves) and place the same orders at the
same steps; one takes every step with `on_rows`, the other the stretches between an
order's placing and its fill with `on_quiet_rows`. Every result table must be equal,
bit for bit.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from random_bars import SYMBOLS, T0, random_bars

from pipeline.broker import Broker, BrokerConfig, BrokerError


def _orders(broker: Broker, i: int) -> None:
    """The same orders for both brokers: buy, add, cut and close positions now and then."""
    symbol = SYMBOLS[i % len(SYMBOLS)]
    if i % 7 == 3:
        broker.target_percent(symbol, 0.3)
    elif i % 11 == 5:
        broker.target_quantity(symbol, 0)
    elif i % 13 == 8 and broker.last_price(symbol) is not None:
        broker.market(symbol, 5)


def _tables(broker: Broker) -> dict[str, pl.DataFrame]:
    broker.end_session(T0 + dt.timedelta(days=1))
    return {
        "orders": broker.orders(),
        "fills": broker.fills(),
        "trades": broker.trades(),
        "positions": broker.positions(),
        "equity": broker.equity(),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quiet_steps_give_the_tables_of_one_call_per_step(seed: int) -> None:
    rows, clocks, ends = random_bars(200, seed)
    config = BrokerConfig(cash=10_000.0, allow_short=False)
    each, quiet = Broker(config, run_id="r"), Broker(config, run_id="r")
    start = 0
    for i, clock in enumerate(clocks):
        each.on_rows(clock, rows, start, ends[i])
        _orders(each, i)
        start = ends[i]
    start, i, bulk = 0, 0, 0
    while i < len(clocks):
        acting = i % 7 == 3 or i % 11 == 5 or i % 13 == 8
        if quiet.has_working() or acting:
            quiet.on_rows(clocks[i], rows, start, ends[i])
            _orders(quiet, i)
            start, i = ends[i], i + 1
            continue
        j = i
        while j < len(clocks) and not (j % 7 == 3 or j % 11 == 5 or j % 13 == 8):
            j += 1
        quiet.on_quiet_rows(clocks[i:j], rows, start, np.array(ends[i:j], dtype=np.int64))
        bulk += j - i
        start, i = ends[j - 1], j
    assert bulk > 50  # most steps were taken at once
    mine, theirs = _tables(quiet), _tables(each)
    assert mine["trades"].height > 5
    assert mine["positions"].height
    assert (mine["equity"]["drawdown"] < 0).any()
    for name, frame in theirs.items():
        assert_frame_equal(mine[name], frame, check_exact=True)


def test_quiet_steps_refuse_a_working_order() -> None:
    rows, clocks, ends = random_bars(4, 0)
    broker = Broker(BrokerConfig(cash=1_000.0))
    broker.on_rows(clocks[0], rows, 0, ends[0])
    broker.market("ACME", 1)
    with pytest.raises(BrokerError, match="working order"):
        broker.on_quiet_rows(clocks[1:3], rows, ends[0], np.array(ends[1:3], dtype=np.int64))


def test_quiet_steps_keep_the_clock_moving_forward() -> None:
    rows, clocks, ends = random_bars(4, 0)
    broker = Broker(BrokerConfig(cash=1_000.0))
    broker.on_rows(clocks[1], rows, 0, ends[0])
    with pytest.raises(BrokerError, match="not after"):
        broker.on_quiet_rows(clocks[:2], rows, ends[0], np.array(ends[1:3], dtype=np.int64))
