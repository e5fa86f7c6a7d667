"""The broker's position book: FIFO lots, round trips and the positions recorded.

`Book` is a part of `pipeline.broker.Broker`, kept apart to keep each file short: a
fill is matched against the symbol's open lots, first in first out; each lot it
closes is a round trip (a `TRADES` row with its P&L after both sides' commissions and
the bars it was held), and what is left opens a lot. `end_session` records every open
position marked at its symbol's last close.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import Counter, deque
from typing import Any

import polars as pl

from pipeline._broker_models import EPS, POSITIONS, TRADES, Lot, frame


class Book:
    """The positions of `pipeline.broker.Broker` (a base class of it; the state is the broker's)."""

    run_id: str
    _qty: dict[str, float]
    _held: list[str]
    _rank: dict[str, int]
    _lots: dict[str, deque[Lot]]
    _realised: dict[str, float]
    _close: dict[str, float]
    _bars: Counter[str]
    _trades: list[tuple[Any, ...]]
    _positions: list[tuple[Any, ...]]

    def position(self, symbol: str) -> float:
        """Return the signed quantity held in `symbol` (0 when flat)."""
        return self._qty.get(symbol, 0.0)

    def avg_price(self, symbol: str) -> float | None:
        """Return the average entry price of the open FIFO lots of `symbol` (None when flat)."""
        lots = self._lots.get(symbol)
        if not lots:
            return None
        return sum(lot.quantity * lot.price for lot in lots) / sum(lot.quantity for lot in lots)

    def holdings(self) -> dict[str, float]:
        """Return the signed quantity of every open position, by symbol."""
        return {s: q for s, q in sorted(self._qty.items()) if q}

    def end_session(self, ts: dt.datetime) -> None:
        """Record every position marked at its last close at `ts`; working orders carry over."""
        for symbol in sorted(self._lots):
            qty = self.position(symbol)
            price = self._close[symbol]
            unrealised = sum((price - lot.price) * lot.quantity for lot in self._lots[symbol])
            self._positions.append(
                (
                    self.run_id,
                    symbol,
                    ts,
                    qty,
                    self.avg_price(symbol),
                    qty * price,
                    self._realised.get(symbol, 0.0),
                    unrealised,
                )
            )

    def trades(self) -> pl.DataFrame:
        """Return the closed round trips (FIFO lots), in the order they closed (`TRADES`)."""
        return frame(self._trades, TRADES)

    def positions(self) -> pl.DataFrame:
        """Return the positions recorded by each `end_session` call (`POSITIONS`)."""
        return frame(self._positions, POSITIONS)

    def _book(self, symbol: str, signed: float, price: float, fee: float, ts: dt.datetime) -> None:
        """Match a fill against the symbol's open lots (FIFO); open a lot with the rest."""
        lots = self._lots.get(symbol)
        if lots is None:
            lots = self._lots[symbol] = deque()
        fee_per_share = fee / abs(signed)
        rest = signed
        while abs(rest) > EPS and lots and lots[0].quantity * rest < 0:
            lot = lots[0]
            matched = min(abs(rest), abs(lot.quantity))
            direction = math.copysign(1.0, lot.quantity)
            self._close_trade(symbol, lot, matched, price=price, fee=fee_per_share, ts=ts)
            lot.quantity -= direction * matched
            rest += direction * matched
            if abs(lot.quantity) <= EPS:
                lots.popleft()
        if abs(rest) > EPS:
            lots.append(Lot(rest, price, ts, self._bars[symbol], fee_per_share))
        qty = self._qty
        before = qty.get(symbol)
        if before is None:
            self._rank[symbol] = len(qty)
        now = qty[symbol] = sum([lot.quantity for lot in lots])
        if bool(before) != bool(now):  # held or flat now: `_held` stays in `_qty`'s order
            if now:
                bisect.insort(self._held, symbol, key=self._rank.__getitem__)
            else:
                self._held.remove(symbol)

    def _close_trade(
        self, symbol: str, lot: Lot, qty: float, *, price: float, fee: float, ts: dt.datetime
    ) -> None:
        """Record the round trip of `qty` shares of `lot` closed at `price`."""
        direction = math.copysign(1.0, lot.quantity)
        fees = (lot.fee_per_share + fee) * qty
        pnl = (price - lot.price) * qty * direction - fees
        self._realised[symbol] = self._realised.get(symbol, 0.0) + pnl
        bars = self._bars[symbol] - lot.bar
        side = "long" if direction > 0 else "short"
        self._trades.append(
            (
                self.run_id,
                symbol,
                lot.ts,
                ts,
                qty,
                lot.price,
                price,
                pnl,
                pnl / (lot.price * qty),
                bars,
                side,
                fees,
            )
        )
