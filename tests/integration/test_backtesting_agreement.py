"""A second backtester agrees: the moving-average crossover against backtesting.py (issue 4).

SPY 1-minute bars (eqker, 2019-02-11..15: 5 complete sessions, 1950 bars), SMA(10) x
SMA(30) of closes, long only, all-in, market orders filled at the next bar's open, no
costs. Conventions settled so both engines do the same thing:

- backtesting.py sees one continuous series indexed by bar open (UTC, naive); our
  averages run across sessions too (no history loaded), so both start crossing once
  30 bars are known (backtesting.py's first ``next`` has 31 bars: two SMA(30) values);
- all-in = ``trunc(1.0 * equity / signal close)`` whole shares, ordered at the signal
  bar: ``target_percent(sym, 1.0)`` here, ``buy(size=int(equity / Close[-1]))`` there;
  backtesting.py cancels an order it cannot pay for at the next open while our broker
  fills what cash pays for, so the test also checks no order was cut or refused;
- cross rule: backtesting.py's ``crossover`` (strictly below, then strictly above); the
  closes hold 5 exact SMA ties (3 * sum10 == sum30 in cents), where float noise could
  decide: ours counts |fast - slow| <= 1e-9 * slow as a tie, the reference rounds both
  averages to 8 decimals (cent prices put non-ties >= 1/30 cent apart);
- exits: ``target_quantity(sym, 0)`` / ``position.close()``; ``exclusive_orders=True``.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.engine import backtest
from pipeline.store import Store

pytestmark = pytest.mark.real_data

backtesting = pytest.importorskip("backtesting")
from backtesting.lib import crossover  # noqa: E402

FAST, SLOW, CASH = 10, 30, 100_000
CONFIG = {
    "name": "agreement",
    "start": "2019-02-11",
    "end": "2019-02-15",
    "symbols": ["SPY"],
    "streams": ["1m"],
    "strategy": {
        "class": "pipeline.strategies:MovingAverageCross",
        "params": {"fast": FAST, "slow": SLOW, "interval": "1m"},
    },
    "broker": {"cash": CASH, "fill": "next_open"},
}


@pytest.fixture(scope="module")
def ours(spy: Store) -> dict[str, pl.DataFrame]:
    catalog = Catalog()
    try:
        _, results = backtest(parse_config(CONFIG), spy, catalog)
    finally:
        catalog.close()
    return results


def _sma(values: Any, n: int) -> Any:
    return pd.Series(values).rolling(n).mean().round(8)


class _Reference(backtesting.Strategy):  # type: ignore[misc]
    def init(self) -> None:
        self.fast = self.I(_sma, self.data.Close, FAST)
        self.slow = self.I(_sma, self.data.Close, SLOW)

    def next(self) -> None:
        if crossover(self.fast, self.slow):
            self.buy(size=int(1.0 * self.equity / self.data.Close[-1]))
        elif crossover(self.slow, self.fast):
            self.position.close()


@pytest.fixture(scope="module")
def reference(spy: Store) -> Any:
    bars = spy.read("1m")
    bars = bars.collect() if isinstance(bars, pl.LazyFrame) else bars
    start, end = dt.datetime(2019, 2, 11, tzinfo=dt.UTC), dt.datetime(2019, 2, 16, tzinfo=dt.UTC)
    bars = bars.filter(pl.col("ts").is_between(start, end, closed="left")).sort("ts")
    assert bars.height == 5 * 390
    frame = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy()),
    )
    test = backtesting.Backtest(
        frame,
        _Reference,
        cash=CASH,
        commission=0,
        trade_on_close=False,
        exclusive_orders=True,
    )
    with warnings.catch_warnings():
        # backtesting.py warns about trades open at the end and calls pandas APIs that
        # pandas deprecates; neither is ours to fix
        warnings.simplefilter("ignore")
        return test.run()


def test_every_order_filled_whole(ours: dict[str, pl.DataFrame]) -> None:
    orders = ours["orders"]
    assert orders["status"].unique().to_list() == ["filled"]
    assert (orders["filled_quantity"] == orders["quantity"]).all()


def test_same_trades_as_backtesting_py(ours: dict[str, pl.DataFrame], reference: Any) -> None:
    theirs = reference._trades.sort_values("EntryTime")
    mine = ours["trades"]
    assert mine.height == len(theirs) == 43
    assert mine["entry_ts"].to_list() == _utc(theirs["EntryTime"])
    assert mine["exit_ts"].to_list() == _utc(theirs["ExitTime"])
    assert mine["quantity"].to_list() == theirs["Size"].astype(float).tolist()
    for ours_name, their_name in [("entry_price", "EntryPrice"), ("exit_price", "ExitPrice")]:
        difference = np.abs(mine[ours_name].to_numpy() - theirs[their_name].to_numpy())
        assert difference.max() <= 1e-9, ours_name
    assert np.abs(mine["pnl"].to_numpy() - theirs["PnL"].to_numpy()).max() <= 1e-9


def _utc(times: Any) -> list[dt.datetime]:
    """backtesting.py's naive UTC times as tz-aware datetimes."""
    return [t.to_pydatetime().replace(tzinfo=dt.UTC) for t in times]


def test_same_final_equity_as_backtesting_py(ours: dict[str, pl.DataFrame], reference: Any) -> None:
    final = ours["equity"]["equity"][-1]
    assert abs(final - reference["Equity Final [$]"]) <= 1e-9
    assert final == pytest.approx(101_111.8076, abs=1e-6)
    held = ours["positions"].filter(pl.col("ts") == pl.col("ts").max())["quantity"].sum()
    assert held == reference._strategy.position.size


def test_same_equity_curve_bar_by_bar(ours: dict[str, pl.DataFrame], reference: Any) -> None:
    theirs = reference._equity_curve["Equity"].to_numpy()
    mine = ours["equity"]["equity"].to_numpy()
    assert mine.shape == theirs.shape == (1950,)
    assert np.abs(mine - theirs).max() <= 1e-9
