"""Broker invariants over random price paths and random orders (Hypothesis)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import schema
from pipeline.broker import Broker, BrokerConfig

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
SYMBOLS = ("ACME", "BOLT")
BAR_SCHEMA = {"symbol": pl.String, "ts": schema.TS, **schema.OHLCV}

price = st.floats(1.0, 200.0, allow_nan=False)
bar = st.tuples(price, price, price, st.floats(0.0, 5000.0))  # open, close, wick, volume
# Per step: which symbols have a bar, and an optional order (symbol, kind, quantity, offset).
order = st.tuples(
    st.sampled_from(SYMBOLS),
    st.sampled_from(("market", "market", "limit", "stop", "target")),
    st.integers(-300, 300).filter(bool),
    st.floats(0.9, 1.1),
)
steps = st.lists(
    st.tuples(st.tuples(bar, bar), st.tuples(st.booleans(), st.booleans()), st.none() | order),
    min_size=1,
    max_size=40,
)
configs = st.builds(
    BrokerConfig,
    cash=st.just(50_000.0),
    fill=st.sampled_from(("next_open", "close")),
    slippage_bps=st.sampled_from((0.0, 5.0)),
    volume_cap=st.none() | st.just(0.05),
    on_cap=st.sampled_from(("keep", "cancel")),
    allow_short=st.booleans(),
    max_buying_power=st.none() | st.just(200_000.0),
)


Bar = tuple[float, float, float, float]


def frame(i: int, bars: tuple[Bar, ...], present: tuple[bool, ...]) -> pl.DataFrame:
    rows = []
    for symbol, (o, c, wick, volume), here in zip(SYMBOLS, bars, present, strict=True):
        if here:
            high, low = max(o, c, wick), min(o, c, wick)
            rows.append((symbol, T0 + dt.timedelta(minutes=i), o, high, low, c, volume))
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


Order = tuple[str, str, int, float]


def place(broker: Broker, order: Order) -> None:
    symbol, kind, quantity, offset = order
    last = broker.last_price(symbol)
    if last is None:
        return
    if kind == "market":
        broker.market(symbol, quantity)
    elif kind == "limit":
        broker.limit(symbol, quantity, last * offset)
    elif kind == "stop":
        broker.stop(symbol, quantity, last * offset)
    else:
        broker.target_quantity(symbol, quantity)


def market_value(broker: Broker) -> float:
    return sum(q * (broker.last_price(s) or 0.0) for s, q in broker.holdings().items())


def unrealised(broker: Broker) -> float:
    total = 0.0
    for symbol, quantity in broker.holdings().items():
        last, avg = broker.last_price(symbol), broker.avg_price(symbol)
        assert last is not None
        assert avg is not None
        total += (last - avg) * quantity
    return total


@settings(max_examples=150, deadline=None)
@given(config=configs, path=steps)
def test_broker_accounts_balance_at_every_step(
    config: BrokerConfig, path: list[tuple[tuple[Bar, Bar], tuple[bool, bool], Order | None]]
) -> None:
    broker = Broker(config)
    for i, (bars, present, order) in enumerate(path):
        broker.on_bars(T0 + dt.timedelta(minutes=i + 1), frame(i, bars, present))
        row = broker.equity().row(-1, named=True)
        assert row["equity"] == pytest.approx(row["cash"] + market_value(broker), abs=1e-6)
        if order is not None:
            place(broker, order)
        assert broker.equity_value == pytest.approx(broker.cash + market_value(broker), abs=1e-6)
        pnl = broker.trades()["pnl"].sum() + unrealised(broker)
        assert pnl == pytest.approx(broker.equity_value - config.cash, abs=1e-6)
        if not config.allow_short:
            assert all(q > 0 for q in broker.holdings().values())
    curve = broker.equity()
    assert curve.height == len(path)
    placed = broker.orders().select("order_id", placed="ts")
    fills = broker.fills().join(placed, on="order_id")
    assert (fills["ts"] >= fills["placed"]).all()
    assert (curve["drawdown"] <= 0).all()
