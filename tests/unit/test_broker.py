"""Hand-checked broker scenarios on tiny inline bars.

Bar ``i`` opens at ``minute(i)`` and is revealed at ``minute(i + 1)``; `step` feeds one
timestamp's bars (rows of symbol, open, high, low, close, volume).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from pipeline import schema
from pipeline.broker import (
    Broker,
    BrokerConfig,
    BrokerError,
    Fixed,
    NoCommission,
    Percent,
    PerShare,
)
from pipeline.errors import ConfigError

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
Row = tuple[str, float, float, float, float, float]


def minute(i: int, day: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=day, minutes=i)


def step(broker: Broker, i: int, *rows: Row, day: int = 0) -> None:
    frame = pl.DataFrame(
        [(s, minute(i, day), o, h, lo, c, v) for s, o, h, lo, c, v in rows],
        schema={"symbol": pl.String, "ts": schema.TS, **schema.OHLCV},
        orient="row",
    )
    broker.on_bars(minute(i + 1, day), frame)


def flat(symbol: str, price: float, volume: float = 1e6) -> Row:
    return (symbol, price, price, price, price, volume)


def only(frame: pl.DataFrame) -> dict[str, Any]:
    assert frame.height == 1, frame
    return frame.row(0, named=True)


def holding(config: BrokerConfig, quantity: float, price: float = 100.0) -> Broker:
    """Return a broker that bought `quantity` ACME at `price` on bar 1 (revealed at minute 2)."""
    broker = Broker(config)
    step(broker, 0, flat("ACME", price))
    broker.market("ACME", quantity)
    step(broker, 1, flat("ACME", price))
    assert broker.position("ACME") == quantity
    return broker


# --- fills ------------------------------------------------------------------------------


def test_market_order_fills_at_next_bar_open() -> None:
    broker = Broker(BrokerConfig(cash=10_000.0))
    step(broker, 0, ("ACME", 10.0, 10.2, 9.9, 10.1, 1e6))
    oid = broker.market("ACME", 10)
    step(broker, 1, ("ACME", 10.5, 10.8, 10.4, 10.7, 1e6))
    fill = only(broker.fills())
    assert (fill["order_id"], fill["price"], fill["quantity"], fill["side"]) == (
        oid,
        10.5,
        10,
        "buy",
    )
    assert fill["ts"] == minute(1) >= only(broker.orders())["ts"]
    assert fill["at_close"] is False
    assert broker.cash == pytest.approx(10_000 - 105.0)
    assert broker.equity_value == pytest.approx(10_000 - 105.0 + 107.0)
    assert only(broker.orders())["status"] == "filled"


def test_fill_close_fills_at_signal_close_and_flags_it() -> None:
    broker = Broker(BrokerConfig(fill="close"))
    step(broker, 0, ("ACME", 10.0, 10.2, 9.9, 10.1, 1e6))
    broker.market("ACME", 10)
    fill = only(broker.fills())
    assert (fill["price"], fill["ts"], fill["at_close"]) == (10.1, minute(1), True)
    assert broker.position("ACME") == 10


def test_fill_close_needs_a_bar_of_the_symbol_at_the_order_clock() -> None:
    # a pre-market step (set_clock): the last close seen is the previous session's, so
    # filling at it would use a price older than what the strategy saw
    broker = Broker(BrokerConfig(fill="close"))
    step(broker, 0, flat("ACME", 10.0), flat("BOLT", 20.0))
    broker.set_clock(minute(1, day=1) - dt.timedelta(hours=2))
    early = broker.market("ACME", 10)
    step(broker, 0, flat("BOLT", 21.0), day=1)  # no ACME bar: a stale ACME close
    late = broker.market("ACME", 10)
    assert broker.fills().is_empty()
    assert [o.ts for o in broker.working_orders()] == [
        minute(1, day=1) - dt.timedelta(hours=2),
        minute(1, day=1),
    ]
    step(broker, 1, ("ACME", 11.0, 11.5, 10.5, 11.2, 1e6), day=1)
    fills = broker.fills()
    assert fills["order_id"].to_list() == [early, late]
    assert fills["price"].to_list() == [11.2, 11.2]  # the next bar's close, flagged
    assert fills["at_close"].to_list() == [True, True]


def test_set_clock_stamps_orders_and_only_moves_forward() -> None:
    broker = Broker()
    broker.set_clock(minute(0))
    oid = broker.market("ACME", 10)  # no bar yet: refused, not an error
    assert (broker.order(oid).status, broker.order(oid).ts) == ("refused", minute(0))
    assert "no price yet for ACME" in broker.order(oid).reason
    with pytest.raises(BrokerError, match="goes back"):
        broker.set_clock(minute(0) - dt.timedelta(seconds=1))
    broker.set_clock(minute(5))
    with pytest.raises(BrokerError, match="before the clock"):
        step(broker, 3, flat("ACME", 10.0))


def test_market_order_waits_for_the_first_bar_of_its_symbol() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 10.0), flat("BOLT", 20.0))
    broker.market("BOLT", 5)
    step(broker, 1, flat("ACME", 11.0))
    assert broker.fills().is_empty()
    step(broker, 2, flat("ACME", 11.0), flat("BOLT", 21.0))
    assert (only(broker.fills())["price"], only(broker.fills())["ts"]) == (21.0, minute(2))


def test_buy_limit_that_gaps_through_fills_at_the_open() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 10.5))
    broker.limit("ACME", 100, 10.0)
    step(broker, 1, ("ACME", 9.5, 9.8, 9.4, 9.7, 1e6))
    assert only(broker.fills())["price"] == 9.5


def test_buy_limit_touched_inside_the_bar_fills_at_the_limit() -> None:
    broker = Broker(BrokerConfig(slippage_bps=50))
    step(broker, 0, flat("ACME", 10.5))
    broker.limit("ACME", 100, 10.0)
    step(broker, 1, ("ACME", 10.4, 10.6, 10.1, 10.3, 1e6))
    assert broker.fills().is_empty()
    step(broker, 2, ("ACME", 10.2, 10.3, 9.9, 10.1, 1e6))
    fill = only(broker.fills())
    assert (fill["price"], fill["slippage"]) == (10.0, 0.0)  # no slippage on limits


def test_sell_limit_fills_at_max_of_open_and_limit() -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    broker.limit("ACME", -100, 11.0)
    step(broker, 2, ("ACME", 11.5, 11.6, 11.2, 11.3, 1e6))
    assert broker.fills()["price"].to_list() == [10.0, 11.5]


@pytest.mark.parametrize(
    ("bar", "price"),
    [
        (("ACME", 10.0, 10.1, 9.4, 9.6, 1e6), 9.5),  # the low crosses the stop: at the stop
        (("ACME", 9.0, 9.2, 8.8, 9.1, 1e6), 9.0),  # gaps below the stop: at the open
    ],
)
def test_stop_sell_triggered_by_the_low_fills_at_stop_or_open(bar: Row, price: float) -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    broker.stop("ACME", -100, 9.5)
    step(broker, 2, bar)
    assert broker.fills()["price"].to_list() == [10.0, price]
    assert broker.position("ACME") == 0


def test_stop_not_triggered_stays_working() -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    oid = broker.stop("ACME", -100, 9.5)
    step(broker, 2, ("ACME", 10.0, 10.1, 9.6, 9.8, 1e6))
    assert broker.order(oid).status == "working"


def test_stop_buy_fills_at_max_of_open_and_stop_with_slippage() -> None:
    broker = Broker(BrokerConfig(slippage_bps=10))
    step(broker, 0, flat("ACME", 10.0))
    broker.stop("ACME", 100, 10.5)
    step(broker, 1, ("ACME", 10.2, 10.7, 10.1, 10.6, 1e6))
    fill = only(broker.fills())
    assert fill["price"] == pytest.approx(10.5 * 1.001)
    assert fill["slippage"] == pytest.approx(0.0105 * 100)


def test_volume_cap_splits_a_fill_over_bars() -> None:
    broker = Broker(BrokerConfig(volume_cap=0.1))
    step(broker, 0, flat("ACME", 10.0, 5000))
    oid = broker.market("ACME", 1000)
    step(broker, 1, flat("ACME", 10.0, 5000))
    assert broker.order(oid).status == "partially_filled"
    step(broker, 2, flat("ACME", 10.2, 5000))
    assert broker.fills()["quantity"].to_list() == [500, 500]
    assert broker.fills()["price"].to_list() == [10.0, 10.2]
    assert (broker.order(oid).status, broker.order(oid).filled) == ("filled", 1000)


def test_volume_cap_keeps_whole_share_orders_whole() -> None:
    broker = Broker(BrokerConfig(volume_cap=0.1))
    step(broker, 0, flat("ACME", 10.0, 1005))
    oid = broker.market("ACME", 250)
    for i in (1, 2, 3):
        step(broker, i, flat("ACME", 10.0, 1005))
    assert broker.fills()["quantity"].to_list() == [100, 100, 50]
    assert broker.order(oid).status == "filled"
    fractional = Broker(BrokerConfig(volume_cap=0.1))
    step(fractional, 0, flat("ACME", 10.0, 1005))
    fractional.market("ACME", 250.5)  # a fractional order may fill fractions
    step(fractional, 1, flat("ACME", 10.0, 1005))
    assert fractional.fills()["quantity"].to_list() == [pytest.approx(100.5)]


def test_volume_cap_with_cancel_drops_the_rest() -> None:
    broker = Broker(BrokerConfig(volume_cap=0.1, on_cap="cancel"))
    step(broker, 0, flat("ACME", 10.0, 5000))
    oid = broker.market("ACME", 1000)
    step(broker, 1, flat("ACME", 10.0, 5000))
    step(broker, 2, flat("ACME", 10.0, 5000))
    assert broker.fills()["quantity"].to_list() == [500]
    order = only(broker.orders())
    assert (order["status"], order["filled_quantity"]) == ("cancelled", 500)
    assert "rest cancelled (on_cap = cancel)" in order["reason"]
    assert broker.order(oid).remaining == 500


def test_order_never_fills_on_a_bar_from_before_it_was_placed() -> None:
    broker = Broker()
    step(broker, 5, flat("ACME", 10.0))
    broker.market("ACME", 10)
    stale = pl.DataFrame(
        [("ACME", minute(3), 9.0, 9.0, 9.0, 9.0, 1e6)],
        schema={"symbol": pl.String, "ts": schema.TS, **schema.OHLCV},
        orient="row",
    )
    broker.on_bars(minute(7), stale)  # a new clock, but the bar opened before the order
    assert broker.fills().is_empty()


def test_clock_that_does_not_advance_is_an_error() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 10.0))
    with pytest.raises(BrokerError, match="not after"):
        step(broker, 0, flat("ACME", 10.0))


def test_bracket_second_leg_is_cancelled_not_shorted() -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    take = broker.limit("ACME", -100, 11.0)
    stop = broker.stop("ACME", -100, 9.0)
    step(broker, 2, ("ACME", 10.5, 11.2, 10.4, 11.0, 1e6))
    step(broker, 3, ("ACME", 10.0, 10.0, 8.5, 8.8, 1e6))
    assert broker.order(take).status == "filled"
    assert (broker.order(stop).status, broker.position("ACME")) == ("cancelled", 0)
    assert "allow_short = false" in broker.order(stop).reason


def test_cancel_stops_a_working_order_and_leaves_a_filled_one() -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    oid = broker.limit("ACME", 100, 5.0)
    assert broker.cancel(oid) == oid
    step(broker, 2, ("ACME", 5.0, 5.0, 4.0, 4.5, 1e6))
    assert broker.order(oid).status == "cancelled"
    assert broker.cancel(1) == 1
    assert broker.order(1).status == "filled"
    with pytest.raises(BrokerError, match="does not exist"):
        broker.cancel(99)


def test_malformed_orders_are_errors() -> None:
    broker = Broker()
    with pytest.raises(BrokerError, match="before any bar"):
        broker.market("ACME", 1)
    step(broker, 0, flat("ACME", 10.0))
    with pytest.raises(BrokerError, match="quantity is 0"):
        broker.market("ACME", 0)
    with pytest.raises(BrokerError, match="finite price > 0"):
        broker.limit("ACME", 1, -1.0)


# --- trading limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "quantity", "reason"),
    [
        (
            BrokerConfig(max_buying_power=50_000),
            550,
            "max_buying_power 50000 exceeded: gross exposure 60000.00",
        ),
        (
            BrokerConfig(max_per_trade=10_000),
            152.3,
            "max_per_trade 10000 exceeded: order notional 15230.00",
        ),
        (
            BrokerConfig(max_per_symbol=20_000),
            200,
            "max_per_symbol 20000 exceeded: position would be 25000.00",
        ),
        (BrokerConfig(cash=20_000), 200, "insufficient cash: order needs 20000.00, cash 15000.00"),
    ],
)
def test_trading_limit_refuses_an_order_with_its_reason(
    config: BrokerConfig, quantity: float, reason: str
) -> None:
    broker = holding(config, 50)  # 5,000 of ACME at 100
    oid = broker.market("ACME", quantity)
    order = broker.order(oid)
    assert (order.status, order.reason) == ("refused", reason)
    step(broker, 2, flat("ACME", 100.0))
    assert broker.position("ACME") == 50  # nothing filled


def test_max_open_positions_refuses_a_new_symbol() -> None:
    broker = Broker(BrokerConfig(max_open_positions=1))
    step(broker, 0, flat("ACME", 10.0), flat("BOLT", 20.0))
    broker.market("ACME", 10)
    oid = broker.market("BOLT", 10)  # ACME's order is pending: it counts
    reason = "max_open_positions 1 reached: 1 open or pending (ACME)"
    assert (broker.order(oid).status, broker.order(oid).reason) == ("refused", reason)
    step(broker, 1, flat("ACME", 10.0), flat("BOLT", 20.0))
    assert broker.order(broker.market("ACME", 10)).status == "working"  # adding is fine


def test_limits_never_refuse_an_exit() -> None:
    broker = holding(BrokerConfig(max_per_trade=1.0, max_buying_power=1.0), 0.01, price=50.0)
    oid = broker.market("ACME", -0.01)
    assert broker.order(oid).status == "working"


def test_quality_gate_refuses_an_entry_but_allows_the_exit() -> None:
    broker = holding(BrokerConfig(), 100)
    broker.set_quality({"ACME": 82.1})
    refused = broker.market("ACME", 10)
    assert broker.order(refused).reason == "quality 82.1% < min 95.0% for a new entry"
    exit_id = broker.market("ACME", -100)
    step(broker, 2, flat("ACME", 101.0))
    assert (broker.order(exit_id).status, broker.position("ACME")) == ("filled", 0)


def test_quality_gate_uses_the_configured_minimum() -> None:
    broker = Broker(BrokerConfig(min_quality=80.0))
    step(broker, 0, flat("ACME", 10.0))
    broker.set_quality({"ACME": 82.1})
    assert broker.order(broker.market("ACME", 10)).status == "working"


def test_shorting_is_refused_unless_allowed() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 10.0))
    oid = broker.market("ACME", -10)
    reason = "short selling is not allowed (allow_short = false)"
    assert (broker.order(oid).status, broker.order(oid).reason) == ("refused", reason)
    shorter = Broker(BrokerConfig(allow_short=True))
    step(shorter, 0, flat("ACME", 10.0))
    shorter.market("ACME", -10)
    step(shorter, 1, flat("ACME", 9.0))
    assert shorter.position("ACME") == -10
    assert shorter.cash == pytest.approx(100_000 + 90.0)
    assert shorter.equity_value == pytest.approx(100_000.0)


def test_a_sell_beyond_the_shares_held_is_cut_not_refused() -> None:
    broker = holding(BrokerConfig(), 100, price=10.0)
    oid = broker.market("ACME", -150)
    assert broker.order(oid).status == "working"
    step(broker, 2, flat("ACME", 11.0))
    order = broker.order(oid)
    assert (order.status, order.filled, broker.position("ACME")) == ("cancelled", 100, 0)
    assert "would open a short position (allow_short = false)" in order.reason


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            BrokerConfig(max_per_symbol=2_500),
            "max_per_symbol 2500 exceeded: position would be 3000.00",
        ),
        (
            BrokerConfig(max_buying_power=2_500),
            "max_buying_power 2500 exceeded: gross exposure 3000.00",
        ),
    ],
)
def test_limits_count_working_orders(config: BrokerConfig, reason: str) -> None:
    broker = Broker(config)
    step(broker, 0, flat("ACME", 10.0), flat("BOLT", 10.0))
    first = broker.market("ACME", 100)
    second = broker.market("ACME" if config.max_per_symbol else "BOLT", 200)  # 100 + 200 shares
    assert broker.order(first).status == "working"
    assert (broker.order(second).status, broker.order(second).reason) == ("refused", reason)
    step(broker, 1, flat("ACME", 10.0), flat("BOLT", 10.0))
    assert broker.position("ACME") == 100


def test_refused_orders_are_recorded_not_dropped() -> None:
    broker = Broker(BrokerConfig(max_per_trade=100.0))
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 5)
    broker.market("ACME", 50)
    assert broker.orders()["status"].to_list() == ["working", "refused"]
    schema.check(broker.orders(), schema.ORDERS, "orders")


# --- positions, costs, trades -----------------------------------------------------------


def test_position_carried_overnight_keeps_its_average_price() -> None:
    broker = Broker(BrokerConfig(cash=10_000.0))
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 2, ("ACME", 11.0, 11.5, 10.8, 11.2, 1e6))
    broker.end_session(minute(390))
    step(broker, 0, ("ACME", 12.0, 12.5, 11.9, 12.4, 1e6), day=1)
    step(broker, 1, ("ACME", 12.4, 12.6, 12.3, 12.5, 1e6), day=1)
    broker.end_session(minute(390, day=1))
    assert broker.avg_price("ACME") == pytest.approx(10.5)
    assert broker.equity_value == pytest.approx(10_000 - 1000 - 1100 + 200 * 12.5)
    day1, day2 = broker.positions().iter_rows(named=True)
    assert (day1["avg_price"], day1["market_value"]) == (pytest.approx(10.5), pytest.approx(2240))
    assert (day2["ts"], day2["quantity"], day2["market_value"]) == (minute(390, 1), 200, 2500)
    assert day2["unrealised_pnl"] == pytest.approx(400.0)
    assert broker.equity()["equity"][-1] == pytest.approx(10_400.0)


@pytest.mark.parametrize(
    ("commission", "quantity", "price", "fee"),
    [
        (PerShare(0.005, 1.0), 100, 50.0, 1.00),  # 0.50 raised to the minimum
        (PerShare(0.005, 1.0), 1000, 50.0, 5.00),
        (Percent(0.001), 100, 50.25, 5.025),
        (Fixed(1.5), 100, 50.0, 1.50),
        (NoCommission(), 100, 50.0, 0.0),
    ],
)
def test_commission_arithmetic_to_the_cent(
    commission: PerShare | Percent | Fixed | NoCommission, quantity: int, price: float, fee: float
) -> None:
    broker = Broker(BrokerConfig(commission=commission))
    step(broker, 0, flat("ACME", price))
    broker.market("ACME", quantity)
    step(broker, 1, flat("ACME", price))
    assert only(broker.fills())["commission"] == pytest.approx(fee, abs=1e-9)
    assert broker.cash == pytest.approx(100_000 - quantity * price - fee, abs=0.005)


def test_slippage_makes_buys_pay_more_and_sells_get_less() -> None:
    broker = Broker(BrokerConfig(slippage_bps=10, commission=Fixed(1.0)))
    step(broker, 0, flat("ACME", 100.0))
    broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 100.0))
    broker.market("ACME", -100)
    step(broker, 2, flat("ACME", 100.0))
    assert broker.fills()["price"].to_list() == pytest.approx([100.10, 99.90])
    assert broker.fills()["slippage"].to_list() == pytest.approx([10.0, 10.0])
    assert broker.cash == pytest.approx(100_000 - 10_010 - 1 + 9_990 - 1, abs=0.005)
    assert only(broker.trades())["pnl"] == pytest.approx(-22.0)


def test_a_sale_pays_its_commission_even_beyond_the_proceeds_leaving_a_debit() -> None:
    broker = Broker(BrokerConfig(cash=10.0, commission=Fixed(1.0)))
    step(broker, 0, flat("ACME", 9.0))
    broker.market("ACME", 1)
    step(broker, 1, flat("ACME", 9.0))  # all the cash: 9.0 + 1.0 commission
    assert (broker.position("ACME"), broker.cash) == (1, 0.0)
    broker.market("ACME", -1)  # an exit is never refused, whatever it costs
    step(broker, 2, flat("ACME", 0.5))
    assert broker.position("ACME") == 0
    assert broker.cash == pytest.approx(-0.5)  # 0.5 of proceeds, 1.0 of commission
    assert only(broker.trades())["pnl"] == pytest.approx(-10.5)


def test_round_trip_pnl_and_return() -> None:
    broker = Broker(BrokerConfig(commission=Fixed(1.0)))
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 10.0))  # entry at 10.0 on bar 1
    step(broker, 2, flat("ACME", 10.5))
    broker.market("ACME", -100)
    step(broker, 3, flat("ACME", 11.0))  # exit at 11.0 on bar 3
    trade = only(broker.trades())
    assert (trade["entry_ts"], trade["exit_ts"]) == (minute(1), minute(3))
    assert (trade["entry_price"], trade["exit_price"], trade["side"]) == (10.0, 11.0, "long")
    assert trade["pnl"] == pytest.approx(98.0)
    assert trade["return"] == pytest.approx(0.098)
    assert (trade["bars_held"], trade["commission"]) == (2, 2.0)
    schema.check(broker.trades(), schema.TRADES, "trades")
    assert broker.cash == pytest.approx(100_098.0)


def test_fifo_lots_close_oldest_first() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 2, flat("ACME", 12.0))
    broker.market("ACME", -150)
    step(broker, 3, flat("ACME", 13.0))
    trades = broker.trades()
    assert trades["quantity"].to_list() == [100, 50]
    assert trades["entry_price"].to_list() == [10.0, 12.0]
    assert trades["pnl"].to_list() == pytest.approx([300.0, 50.0])
    assert broker.avg_price("ACME") == 12.0


def test_reversal_closes_the_trade_and_opens_another() -> None:
    broker = Broker(BrokerConfig(allow_short=True))
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 10.0))
    broker.market("ACME", -150)
    step(broker, 2, flat("ACME", 12.0))
    long_trade = only(broker.trades())
    assert (long_trade["side"], long_trade["quantity"], long_trade["pnl"]) == ("long", 100, 200)
    assert (broker.position("ACME"), broker.avg_price("ACME")) == (-50, 12.0)
    broker.market("ACME", 50)
    step(broker, 3, flat("ACME", 11.0))
    short_trade = broker.trades().row(1, named=True)
    assert (short_trade["side"], short_trade["quantity"]) == ("short", 50)
    assert short_trade["pnl"] == pytest.approx(50.0)
    assert short_trade["return"] == pytest.approx(1 / 12)


def test_target_percent_sizes_whole_shares_of_equity() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 33.0))
    oid = broker.target_percent("ACME", 0.5)
    assert oid is not None
    assert broker.order(oid).quantity == 1515  # trunc(50,000 / 33)
    assert broker.target_percent("ACME", 0.5) is None  # the pending order counts
    step(broker, 1, flat("ACME", 33.0))
    assert broker.position("ACME") == 1515
    assert broker.target_percent("ACME", 0.5) is None
    exit_id = broker.target_quantity("ACME", 0)
    assert exit_id is not None
    assert (broker.order(exit_id).side, broker.order(exit_id).quantity) == ("sell", 1515)


def test_target_percent_before_a_price_is_refused() -> None:
    broker = Broker()
    step(broker, 0, flat("ACME", 33.0))
    oid = broker.target_percent("BOLT", 0.5)
    assert oid is not None
    assert broker.order(oid).status == "refused"
    assert "no price yet for BOLT" in broker.order(oid).reason


def test_cash_only_fill_is_cut_to_what_cash_pays_for() -> None:
    broker = Broker(BrokerConfig(cash=1000.0))
    step(broker, 0, flat("ACME", 10.0))
    oid = broker.market("ACME", 100)
    step(broker, 1, flat("ACME", 12.5))  # gaps up: 100 shares would cost 1,250
    assert (broker.position("ACME"), broker.order(oid).status) == (80, "cancelled")
    assert "insufficient cash at fill" in broker.order(oid).reason


def test_equity_curve_has_one_row_per_step_with_drawdown() -> None:
    broker = Broker(BrokerConfig(cash=1000.0))
    step(broker, 0, flat("ACME", 10.0))
    broker.market("ACME", 100)
    for i, price in enumerate([10.0, 12.0, 9.0, 12.5], start=1):
        step(broker, i, flat("ACME", price))
    curve = broker.equity()
    assert curve["equity"].to_list() == pytest.approx([1000, 1000, 1200, 900, 1250])
    assert curve["drawdown"].to_list() == pytest.approx([0, 0, 0, -0.25, 0])
    assert curve["ts"].to_list() == [minute(i) for i in range(1, 6)]
    schema.check(curve, schema.EQUITY, "equity")


def test_results_are_empty_frames_with_their_schemas() -> None:
    broker = Broker(run_id="r1")
    for frame, expected in [
        (broker.orders(), schema.ORDERS),
        (broker.fills(), schema.FILLS),
        (broker.trades(), schema.TRADES),
        (broker.positions(), schema.POSITIONS),
        (broker.equity(), schema.EQUITY),
    ]:
        assert frame.is_empty()
        schema.check(frame, expected, "result")


# --- config -----------------------------------------------------------------------------


def test_config_from_mapping_reads_every_key() -> None:
    config = BrokerConfig.from_mapping(
        {
            "cash": 50_000,
            "fill": "close",
            "commission": {"model": "per_share", "rate": 0.005, "minimum": 1.0},
            "slippage_bps": 5,
            "volume_cap": 0.1,
            "on_cap": "cancel",
            "allow_short": True,
            "max_buying_power": 100_000,
            "max_per_trade": 10_000,
            "max_per_symbol": 20_000,
            "max_open_positions": 5,
        },
        min_quality=90.0,
    )
    assert config == BrokerConfig(
        50_000.0, "close", PerShare(0.005, 1.0), 5.0, 0.1, "cancel", True,
        100_000.0, 10_000.0, 20_000.0, 5, 90.0,
    )  # fmt: skip


def test_config_defaults() -> None:
    assert BrokerConfig.from_mapping({}) == BrokerConfig()
    percent = BrokerConfig.from_mapping({"commission": {"model": "percent", "rate": 0.001}})
    assert percent.commission == Percent(0.001)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cash": -5}, "broker.cash must be a number > 0, found integer -5; write an amount"),
        ({"fill": "open"}, "broker.fill 'open' is not allowed; did you mean 'next_open'?"),
        ({"fil": "close"}, "broker.fil is not a valid key; did you mean 'fill'?"),
        ({"volume_cap": 1.5}, "broker.volume_cap must be a number in (0, 1], found float 1.5"),
        ({"on_cap": "drop"}, "broker.on_cap 'drop' is not allowed"),
        ({"allow_short": "yes"}, "broker.allow_short must be true or false"),
        ({"max_open_positions": 0}, "broker.max_open_positions must be a whole number >= 1"),
        ({"commission": {"model": "per_shares"}}, "did you mean 'per_share'?"),
        ({"commission": {"model": "fixed", "amout": 1}}, "did you mean 'amount'?"),
        ({"commission": {"model": "percent"}}, "broker.commission.rate is missing"),
        ({"commission": {"rate": 0.1}}, "broker.commission.model is missing"),
        ({"slippage_bps": -1}, "broker.slippage_bps must be a number from 0 to 10000"),
    ],
)
def test_config_problem_names_key_value_and_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_mapping(data, source="run.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("config 'run.toml': broker.")


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_mapping({"cash": 0, "fill": "x", "on_cap": "y"})
    assert str(info.value).count("config '<config>'") == 3
