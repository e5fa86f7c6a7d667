"""The simulated broker: orders, fills, positions, round trips and equity over bars.

A `Broker` is a deterministic state machine driven by the stream. At each clock time T
the caller passes the base-interval bars revealed at T (`Broker.on_bars`): working
orders placed before T fill against them, then positions are marked to the closes and
one equity row is recorded. Orders placed at T (by a strategy, after ``on_bars``) are
checked against the trading limits at once, using the last known close as the price
and counting working orders as filled: a refused order is recorded with its reason,
never dropped. A sell beyond the shares held without ``allow_short`` is not refused:
its fill is cut to the shares held. The limit checks live in `pipeline._broker_limits`,
the lots, round trips and positions in `pipeline._broker_book`.

Fill rules, per order and bar (the first bar of its symbol revealed after the order):

- market: the bar's open (``fill = "next_open"``), or with ``fill = "close"`` at once at
  the signal bar's close (flagged ``at_close``) when the symbol has a bar at the order's
  clock; placed at another time (pre-market, `set_clock`) it fills at a later bar's close;
- limit buy: when ``low <= limit``, at ``min(open, limit)``; limit sell: when
  ``high >= limit``, at ``max(open, limit)`` (a gap through the limit fills at the open);
- stop buy: when ``high >= stop``, at ``max(open, stop)``; stop sell: when
  ``low <= stop``, at ``min(open, stop)``; a triggered stop's remainder fills at later
  opens, like a market order;
- slippage (basis points, against the trader) applies to market and stop fills;
- ``volume_cap`` limits one order's fill to that share of the bar's volume (whole shares
  for a whole-share order); the rest stays working (``on_cap = "keep"``) or is cancelled;
- without ``allow_short`` a sell fill is cut to the shares held, and without
  ``max_buying_power`` a buy fill is cut to what cash pays for; the cut part is cancelled.

Quantities are signed in calls and in `positions` (+ long, - short) and absolute in
`orders`, `fills` and `trades`, which carry a ``side`` column.

Examples
--------
>>> import datetime as dt
>>> import polars as pl
>>> t = [dt.datetime(2024, 7, 1, 13, m, tzinfo=dt.UTC) for m in (30, 31, 32)]
>>> bars = lambda i, o, c: pl.DataFrame({"symbol": ["ACME"], "ts": [t[i]], "open": [o],
...     "high": [max(o, c)], "low": [min(o, c)], "close": [c], "volume": [1e6]})
>>> broker = Broker(BrokerConfig(cash=1000.0))
>>> broker.on_bars(t[1], bars(0, 10.0, 10.0))
>>> broker.market("ACME", 50)
1
>>> broker.on_bars(t[2], bars(1, 10.5, 11.0))
>>> broker.position("ACME"), broker.cash, broker.equity_value
(50.0, 475.0, 1025.0)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline._broker_book import Book
from pipeline._broker_limits import Limits
from pipeline._broker_models import (
    EPS,
    EQUITY,
    FILLS,
    ORDERS,
    POSITIONS,
    TRADES,
    Bar,
    BarRows,
    BrokerConfig,
    BrokerError,
    Commission,
    Fixed,
    Kind,
    Lot,
    NoCommission,
    Order,
    Percent,
    PerShare,
    Side,
    check_number,
    check_price,
    check_quantity,
    frame,
    is_market,
    reference_price,
)

__all__ = [
    "EQUITY",
    "FILLS",
    "ORDERS",
    "POSITIONS",
    "TRADES",
    "Broker",
    "BrokerConfig",
    "BrokerError",
    "Commission",
    "Fixed",
    "NoCommission",
    "Order",
    "PerShare",
    "Percent",
]


class Broker(Book, Limits):
    """Simulate a broker over bars: check and fill orders, keep cash, positions and trades.

    Parameters
    ----------
    config
        Fill rules, costs and trading limits.
    run_id
        Written in the ``run_id`` column of every result table.
    """

    def __init__(self, config: BrokerConfig | None = None, *, run_id: str = "") -> None:
        self.config = config or BrokerConfig()
        self.run_id = run_id
        self._cash = self.config.cash
        #: A bar's volume matters at placing only when market orders fill at the close, capped.
        self._keep_volume = self.config.fill == "close" and self.config.volume_cap is not None
        self._equity_now: float | None = None  # equity_value, until something changes
        self._clock: dt.datetime | None = None  # of the last bars (`on_bars`)
        self._now: dt.datetime | None = None  # orders' time: `_clock`, or a later `set_clock`
        #: The rows of the last bars: (rows, start, stop) of `on_rows`.
        self._step: tuple[BarRows, int, int] | None = None
        self._qty: dict[str, float] = {}
        #: The symbols held (quantity not 0), in `_qty`'s order: what `equity_value` sums.
        self._held: list[str] = []
        self._rank: dict[str, int] = {}  # each symbol's place in `_qty`
        self._lots: dict[str, deque[Lot]] = {}
        self._realised: dict[str, float] = {}
        self._close: dict[str, float] = {}
        self._volume: dict[str, float] = {}
        self._quality: dict[str, float] = {}
        self._bars: Counter[str] = Counter()
        self._orders: list[Order] = []
        self._working: list[Order] = []
        self._fills: list[tuple[Any, ...]] = []
        self._trades: list[tuple[Any, ...]] = []
        self._equity: list[tuple[Any, ...]] = []
        self._positions: list[tuple[Any, ...]] = []
        self._peak = -math.inf

    # --- state ---------------------------------------------------------------------

    @property
    def clock(self) -> dt.datetime | None:
        """The time of the last `on_bars` call (None before the first)."""
        return self._clock

    @property
    def cash(self) -> float:
        """Cash now."""
        return self._cash

    @property
    def equity_value(self) -> float:
        """Cash plus every position marked at its symbol's last close."""
        if self._equity_now is None:  # cleared when cash, a position or a close changes
            held, close, qty = 0.0, self._close, self._qty
            for symbol in self._held:
                held += qty[symbol] * close[symbol]
            self._equity_now = self._cash + held
        return self._equity_now

    def last_price(self, symbol: str) -> float | None:
        """Return the last close seen for `symbol` (None before its first bar)."""
        return self._close.get(symbol)

    def order(self, order_id: int) -> Order:
        """Return a copy of an order's record (status, filled quantity, reason)."""
        if not 1 <= order_id <= len(self._orders):
            raise BrokerError(
                f"Order id {order_id} does not exist; use an id an order call returned."
            )
        return dataclasses.replace(self._orders[order_id - 1])

    def working_orders(self, symbol: str | None = None) -> list[Order]:
        """Return copies of the working orders (of `symbol` only, when given), oldest first."""
        return [dataclasses.replace(o) for o in self._working if symbol in (None, o.symbol)]

    def has_working(self, symbol: str | None = None) -> bool:
        """True when `symbol` (any symbol, when None) has a working order, without copies."""
        return any(symbol in (None, o.symbol) for o in self._working)

    def set_quality(self, quality: Mapping[str, float]) -> None:
        """Set the data quality (%) of symbols; a symbol never set is not gated."""
        self._quality.update(quality)

    def set_clock(self, clock: dt.datetime) -> None:
        """Move the time orders are placed at to `clock`, a step without base bars.

        Pre- and post-market steps and steps of derived rows only reach the broker this
        way: orders placed then carry `clock`, and fill at later bars only (a
        ``fill = "close"`` order too: the last close seen is not `clock`'s).
        """
        if self._now is not None and clock < self._now:
            raise BrokerError(
                f"set_clock({clock.isoformat()}) goes back before {self._now.isoformat()}; "
                "move the clock forward only."
            )
        self._now = clock

    # --- orders --------------------------------------------------------------------

    def market(self, symbol: str, quantity: float) -> int:
        """Place a market order (`quantity` > 0 buys, < 0 sells); return its id."""
        return self._place(symbol, quantity, "market")

    def limit(self, symbol: str, quantity: float, price: float) -> int:
        """Place a limit order at `price`; return its id."""
        return self._place(symbol, quantity, "limit", limit=check_price(price, "limit"))

    def stop(self, symbol: str, quantity: float, price: float) -> int:
        """Place a stop order triggered at `price`; return its id."""
        return self._place(symbol, quantity, "stop", stop=check_price(price, "stop"))

    def target_quantity(self, symbol: str, quantity: float) -> int | None:
        """Order what moves `symbol` to `quantity` shares; return the id, None when already there.

        Working market orders of the symbol count as done (so calling this every bar
        does not pile up orders while one waits for its bar); limits and stops do not.
        """
        check_number(quantity, "target quantity")
        pending = sum(
            o.sign * o.remaining for o in self._working if o.symbol == symbol and is_market(o)
        )
        delta = quantity - self.position(symbol) - pending
        if abs(delta) <= EPS:
            return None
        return self.market(symbol, delta)

    def target_percent(self, symbol: str, percent: float) -> int | None:
        """Order what makes `symbol` `percent` of equity (1.0 = 100%) at its last close.

        The target is whole shares, rounded toward zero. Return the order id, or None
        when the position is already there.
        """
        check_number(percent, "target percent")
        price = self._close.get(symbol)
        if price is None:
            order = self._record(symbol, 0.0, "market", self._unpriced(symbol))
            order.side = "buy" if percent > 0 else "sell"
            return order.order_id
        return self.target_quantity(symbol, float(math.trunc(percent * self.equity_value / price)))

    def cancel(self, order_id: int) -> int:
        """Cancel a working order; an order already done is left as it is. Return its id."""
        self.order(order_id)  # raises for an unknown id
        order = self._orders[order_id - 1]
        if order in self._working:
            order.status, order.reason = "cancelled", "cancelled by the strategy"
            self._working.remove(order)
        return order_id

    # --- the stream ----------------------------------------------------------------

    def on_bars(self, clock: dt.datetime, bars: pl.DataFrame) -> None:
        """Fill working orders against the base bars revealed at `clock`; mark to market.

        `bars` holds one row per symbol (columns ``symbol``, ``ts``, ``open``, ``high``,
        ``low``, ``close``, ``volume``), regular-session bars only. Only orders placed
        before `clock` fill, and never on a bar that opened before them.
        """
        self.on_rows(clock, BarRows(bars), 0, bars.height)

    def on_rows(self, clock: dt.datetime, rows: BarRows, start: int, stop: int) -> None:
        """`on_bars` for positions ``[start, stop)`` of `rows` (the engine's per-step call).

        The rows hold one bar per symbol, regular-session base bars only.
        """
        self._check_clock(clock)
        if stop - start == 1:  # one symbol: no slices (the most frequent step alone)
            symbol = rows.symbols[start]
            if self._working:
                self._fill_working(clock, [symbol], rows, start)
            self._close[symbol] = rows.close[start]
            if self._keep_volume:
                self._volume[symbol] = rows.volume[start]
            self._bars[symbol] += 1
        else:
            symbols = rows.symbols[start:stop]
            if self._working:
                self._fill_working(clock, symbols, rows, start)
            self._take(symbols, rows, start, stop)
        self._equity_now = None
        self._clock = self._now = clock
        self._step = (rows, start, stop)
        self._mark(clock)

    def on_quiet_rows(
        self,
        clocks: Sequence[dt.datetime],
        rows: BarRows,
        start: int,
        stops: npt.NDArray[np.int64],
    ) -> None:
        """`on_rows` for several steps at once, while no order is working.

        Step ``i`` is at ``clocks[i]`` with positions ``[stops[i - 1], stops[i])`` of
        `rows` (``start`` for the first). With no working order nothing can fill, so only
        closes, bar counts and equity rows change: the same as one `on_rows` call per
        step, the equity summed in the same order, computed over arrays.
        """
        if self._working:
            raise BrokerError(
                f"on_quiet_rows with {len(self._working)} working orders; call on_rows per step "
                "while an order may fill."
            )
        if not clocks:
            return
        self._check_clock(clocks[0])
        stop, n = int(stops[-1]), len(clocks)
        symbols = rows.symbols[start:stop]
        held = np.zeros(n)
        if self._held:
            closes = np.asarray(rows.close[start:stop])
            names = np.asarray(symbols, dtype=object)
            step = np.searchsorted(stops, np.arange(start, stop), side="right")
            for symbol in self._held:  # as `equity_value`: in the same order
                last = _last_values(step, names == symbol, closes, n, self._close[symbol])
                held += self._qty[symbol] * last
        equity = self._cash + held
        peak = np.fmax.accumulate(np.concatenate(([self._peak], equity)))[1:]
        drawdown = np.zeros(n)
        gain = peak > 0
        drawdown[gain] = equity[gain] / peak[gain] - 1.0
        self._equity.extend(
            zip(
                repeat(self.run_id),
                clocks,
                repeat(self._cash),
                equity.tolist(),
                drawdown.tolist(),
                strict=False,
            )
        )
        self._peak = float(peak[-1])
        self._take(symbols, rows, start, stop)
        self._equity_now = None
        self._clock = self._now = clocks[-1]
        self._step = (rows, int(stops[-2]) if n > 1 else start, stop)

    def _check_clock(self, clock: dt.datetime) -> None:
        if self._clock is not None and clock <= self._clock:
            raise BrokerError(
                f"Broker clock {clock.isoformat()} is not after {self._clock.isoformat()}; "
                "call on_bars once per timestamp, in time order."
            )
        if self._now is not None and clock < self._now:
            raise BrokerError(
                f"Bars at {clock.isoformat()} come before the clock ({self._now.isoformat()}, "
                "set_clock); call on_bars and set_clock in time order."
            )

    def _take(self, symbols: list[str], rows: BarRows, start: int, stop: int) -> None:
        """Keep the last close (and volume, when fills need it) and count the bars of rows."""
        self._close.update(zip(symbols, rows.close[start:stop], strict=True))
        if self._keep_volume:
            self._volume.update(zip(symbols, rows.volume[start:stop], strict=True))
        self._bars.update(symbols)

    # --- results -------------------------------------------------------------------

    def orders(self) -> pl.DataFrame:
        """Return every order with its current status, by order id (`ORDERS`)."""
        return frame([(self.run_id, *o.row()) for o in self._orders], ORDERS)

    def fills(self) -> pl.DataFrame:
        """Return every fill in the order it happened (`FILLS`)."""
        return frame(self._fills, FILLS)

    def equity(self) -> pl.DataFrame:
        """Return one row per `on_bars` call: cash, equity and drawdown (`EQUITY`)."""
        return frame(self._equity, EQUITY)

    # --- placing -------------------------------------------------------------------

    def _place(
        self,
        symbol: str,
        quantity: float,
        kind: Kind,
        *,
        limit: float | None = None,
        stop: float | None = None,
    ) -> int:
        """Record an order, refused or working; fill it at once when it fills at the close."""
        check_quantity(quantity)
        order = self._record(symbol, quantity, kind, self._refusal(symbol, quantity))
        order.limit_price, order.stop_price = limit, stop
        if order.status == "refused":
            return order.order_id
        self._working.append(order)
        if kind == "market" and self.config.fill == "close" and self._has_bar_now(symbol):
            clock, price = order.ts, self._close[symbol]
            self._try_fill(
                order, Bar(clock, price, price, price, price, self._volume.get(symbol, 0.0)), clock
            )
            self._prune()
        return order.order_id

    def _has_bar_now(self, symbol: str) -> bool:
        """True when `symbol` had a bar in the last `on_bars` and the clock has not moved since."""
        if self._step is None or self._now != self._clock:
            return False
        rows, start, stop = self._step
        return symbol in rows.symbols[start:stop]

    def _record(self, symbol: str, quantity: float, kind: Kind, refusal: str) -> Order:
        """Append a new order (refused when `refusal` is set) to the record; return it."""
        if self._now is None:
            raise BrokerError(
                f"Order for {symbol} placed before any bar; place orders after the first on_bars."
            )
        side: Side = "buy" if quantity > 0 else "sell"
        order = Order(len(self._orders) + 1, symbol, self._now, side, kind, abs(quantity))
        if refusal:
            order.status, order.reason = "refused", refusal
        self._orders.append(order)
        return order

    # --- filling -------------------------------------------------------------------

    def _fill_working(
        self, clock: dt.datetime, symbols: list[str], rows: BarRows, start: int
    ) -> None:
        """Try each working order placed before `clock` against its symbol's bar.

        Only the rows of symbols with working orders are read (a bar's ``ts`` as a Python
        datetime is the costly part).
        """
        found: dict[str, Bar | None] = {}
        for order in list(self._working):
            if order.ts >= clock:
                continue
            symbol = order.symbol
            if symbol not in found:
                try:
                    found[symbol] = rows.bar(start + symbols.index(symbol))
                except ValueError:
                    found[symbol] = None
            bar = found[symbol]
            if bar is None or bar.ts < order.ts:
                continue
            self._try_fill(order, bar, clock)
        self._prune()

    def _try_fill(self, order: Order, bar: Bar, clock: dt.datetime) -> None:
        """Fill what `bar` allows of `order`; update its status."""
        reference = reference_price(order, bar, self.config.fill)
        if reference is None:
            return
        slip = 0.0 if order.kind == "limit" else order.sign * self.config.slippage_bps / 1e4
        price = reference * (1 + slip)
        cap = self.config.volume_cap
        wanted = order.remaining
        if cap is not None:
            room = cap * bar.volume
            if float(order.quantity).is_integer():  # whole shares stay whole
                room = float(math.floor(room + EPS))
            wanted = min(wanted, room)
        allowed, cut = self._allowed(order, wanted, price)
        at_close = is_market(order) and self.config.fill == "close"
        if allowed > EPS:
            ts = clock if at_close else bar.ts
            self._execute(order, allowed, price, reference, ts=ts, at_close=at_close)
        if order.remaining <= EPS:
            order.status = "filled"
        elif cut:
            order.status, order.reason = "cancelled", cut
        elif cap is not None and self.config.on_cap == "cancel":
            note = f"volume_cap {cap:g} of bar volume {bar.volume:g}"
            done = f"filled {order.filled:g} of {order.quantity:g}"
            order.status = "cancelled"
            order.reason = f"{note}: {done}, rest cancelled (on_cap = cancel)"
        elif order.filled > 0:
            order.status = "partially_filled"

    def _execute(
        self,
        order: Order,
        qty: float,
        price: float,
        reference: float,
        *,
        ts: dt.datetime,
        at_close: bool,
    ) -> None:
        """Book one fill: cash, commission, FIFO lots, the fill record."""
        fee = self.config.commission.cost(qty, price)
        signed = order.sign * qty
        self._cash -= signed * price + fee
        self._equity_now = None
        order.filled += qty
        self._book(order.symbol, signed, price, fee, ts)
        slippage = abs(price - reference) * qty
        self._fills.append(
            (
                self.run_id,
                order.order_id,
                order.symbol,
                ts,
                order.side,
                qty,
                price,
                fee,
                slippage,
                at_close,
            )
        )

    def _prune(self) -> None:
        """Drop orders that are no longer working from the working list."""
        self._working = [o for o in self._working if o.status in ("working", "partially_filled")]

    def _mark(self, clock: dt.datetime) -> None:
        """Record the equity row of `clock`."""
        equity = self.equity_value
        peak = self._peak
        if equity > peak:
            self._peak = peak = equity
        drawdown = equity / peak - 1.0 if peak > 0 else 0.0
        self._equity.append((self.run_id, clock, self._cash, equity, drawdown))


def _last_values(
    step: npt.NDArray[np.intp],
    mine: npt.NDArray[np.bool_],
    values: npt.NDArray[np.float64],
    steps: int,
    before: float,
) -> npt.NDArray[np.float64]:
    """Return, per step, the last of `values` where `mine` holds up to that step.

    `step` is each value's step; a step with none of them keeps the value before
    (`before` until the first).
    """
    out = np.full(steps + 1, before)
    where = np.flatnonzero(mine)
    out[step[where] + 1] = values[where]  # a step holds a symbol's bar once
    seen = np.zeros(steps + 1, dtype=np.int64)
    seen[step[where] + 1] = step[where] + 1
    return out[np.maximum.accumulate(seen)][1:]
