"""`Broker.equity_value` sums the held positions in the order their symbols first traded.

Symbols go flat and come back; the equity of every step must equal cash plus each
held position at its last close, added in first-fill order, bit for bit (the order
fixes the float sum, and with it the equity table of every run).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipeline import schema
from pipeline._broker_models import BarRows
from pipeline.broker import Broker, BrokerConfig

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
SYMBOLS = ("ACME", "BOLT", "CODA", "DUNE")


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_equity_adds_held_positions_in_first_fill_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    broker = Broker(BrokerConfig(cash=1e6, allow_short=True))
    prices = dict.fromkeys(SYMBOLS, 30.0)
    for i in range(300):
        rows = []
        for symbol in SYMBOLS:
            before = prices[symbol]
            prices[symbol] = close = before * (1 + rng.normal(0, 0.02))  # unrounded
            ts = T0 + dt.timedelta(minutes=i)
            rows.append((symbol, ts, before, max(before, close), min(before, close), close, 1e6))
        frame = pl.DataFrame(
            rows, schema={"symbol": pl.String, "ts": schema.TS, **schema.OHLCV}, orient="row"
        )
        broker.on_rows(T0 + dt.timedelta(minutes=i + 1), BarRows(frame), 0, frame.height)
        first_traded = list(dict.fromkeys(broker.fills().get_column("symbol").to_list()))
        held = 0.0
        for symbol in first_traded:
            if broker.position(symbol):
                held += broker.position(symbol) * (broker.last_price(symbol) or 0.0)
        assert broker.equity_value == broker.cash + held
        symbol = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
        if rng.random() < 0.4:  # flat, long or short; symbols leave and come back
            broker.target_quantity(symbol, float(rng.choice([0, 0, 7, -5, 1234])))
    assert broker.trades().height > 20
