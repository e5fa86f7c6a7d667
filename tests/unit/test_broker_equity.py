"""`Broker.equity_value` sums the held positions in the order their symbols first traded.

Symbols go flat and come back; the equity of every step must equal cash plus each
held position at its last close, added in first-fill order, bit for bit (the order
fixes the float sum, and with it the equity table of every run).
"""

from __future__ import annotations

import numpy as np
import pytest
from random_bars import SYMBOLS, random_bars

from pipeline.broker import Broker, BrokerConfig


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_equity_adds_held_positions_in_first_fill_order(seed: int) -> None:
    rows, clocks, ends = random_bars(300, seed)
    rng = np.random.default_rng(seed)
    broker = Broker(BrokerConfig(cash=1e6, allow_short=True))
    start = 0
    for clock, end in zip(clocks, ends, strict=True):
        broker.on_rows(clock, rows, start, end)
        start = end
        first_traded = list(dict.fromkeys(broker.fills().get_column("symbol").to_list()))
        held = 0.0
        for symbol in first_traded:
            if broker.position(symbol):
                held += broker.position(symbol) * (broker.last_price(symbol) or 0.0)
        assert broker.equity_value == broker.cash + held
        symbol = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
        if rng.random() < 0.4 and broker.last_price(symbol) is not None:
            # flat, long or short: symbols leave and come back
            broker.target_quantity(symbol, float(rng.choice([0, 0, 7, -5, 1234])))
    assert broker.trades().height > 20
