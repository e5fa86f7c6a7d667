"""The broker's trading limits: why an order is refused, and what a fill may take.

`Limits` is a part of `pipeline.broker.Broker`, kept apart to keep each file short: it
reads the broker's state (config, cash, positions, last closes, working orders, data
quality) and changes none of it.

At placing (`Limits._refusal`) an order that only reduces a position is never
refused; one that opens or grows a position is refused by the first limit it breaks,
in this order: data quality, ``max_per_trade``, ``max_per_symbol``,
``max_open_positions``, then ``max_buying_power`` (or, without it, the cash the order
needs). Working orders count as filled. At a fill (`Limits._allowed`) a sell is cut
to the shares held without ``allow_short``, and a buy to what cash pays for without
``max_buying_power``.
"""

from __future__ import annotations

from pipeline._broker_models import EPS, BrokerConfig, Order, affordable, over


class Limits:
    """The limit checks of `pipeline.broker.Broker` (a base class of it, no state of its own)."""

    config: BrokerConfig
    _cash: float
    _qty: dict[str, float]
    _close: dict[str, float]
    _quality: dict[str, float]
    _working: list[Order]

    @staticmethod
    def _unpriced(symbol: str) -> str:
        return f"no price yet for {symbol}: place orders after its first bar"

    def _refusal(self, symbol: str, quantity: float) -> str:
        """Return why an order breaks a trading limit, or ``""`` when it is allowed."""
        price = self._close.get(symbol)
        if price is None:
            return self._unpriced(symbol)
        held = self._qty.get(symbol, 0.0)
        cfg = self.config
        if quantity < 0 and held + quantity < -EPS and not cfg.allow_short:
            if held <= EPS:
                return "short selling is not allowed (allow_short = false)"
            quantity = -held  # the fill is cut to the shares held: only reduces
        after = held + quantity
        if not (abs(after) > abs(held) + EPS or after * held < 0):
            return ""  # only reduces the position: never refused
        counted = cfg.max_per_symbol is not None or cfg.max_buying_power is not None
        projected = self._projected() if counted else {}
        return (
            self._quality_refusal(symbol)
            or over("max_per_trade", cfg.max_per_trade, abs(quantity) * price, "order notional")
            or self._per_symbol_refusal(projected, symbol, quantity, price)
            or self._open_positions_refusal(symbol, held)
            or self._buying_power_refusal(projected, symbol, quantity, price)
        )  # the first limit broken

    def _projected(self) -> dict[str, float]:
        """Return each symbol's position once its working orders have filled."""
        projected = dict(self._qty)
        for order in self._working:
            symbol = order.symbol
            projected[symbol] = projected.get(symbol, 0.0) + order.sign * order.remaining
        return projected

    def _per_symbol_refusal(
        self, projected: dict[str, float], symbol: str, quantity: float, price: float
    ) -> str:
        limit = self.config.max_per_symbol
        if limit is None:
            return ""
        after = projected.get(symbol, 0.0) + quantity  # working orders count
        return over("max_per_symbol", limit, abs(after) * price, "position would be")

    def _quality_refusal(self, symbol: str) -> str:
        quality = self._quality.get(symbol)
        minimum = self.config.min_quality
        if quality is None or quality >= minimum:
            return ""
        return f"quality {quality:.1f}% < min {minimum:.1f}% for a new entry"

    def _open_positions_refusal(self, symbol: str, held: float) -> str:
        limit = self.config.max_open_positions
        if limit is None or held:
            return ""
        busy = {s for s, q in self._qty.items() if q} | {o.symbol for o in self._working}
        busy.discard(symbol)
        if len(busy) < limit:
            return ""
        names = ", ".join(sorted(busy))
        return f"max_open_positions {limit} reached: {len(busy)} open or pending ({names})"

    def _buying_power_refusal(
        self, projected: dict[str, float], symbol: str, quantity: float, price: float
    ) -> str:
        cap = self.config.max_buying_power
        if cap is not None:  # working orders count as filled
            others = {s: q for s, q in projected.items() if s != symbol}
            after = projected.get(symbol, 0.0) + quantity
            exposure = sum(abs(q) * self._close[s] for s, q in others.items())
            return over("max_buying_power", cap, exposure + abs(after) * price, "gross exposure")
        if quantity <= 0:
            return ""
        needed = quantity * price * (1 + self.config.slippage_bps / 1e4)
        needed += self.config.commission.cost(quantity, price)
        if needed <= self._cash + EPS:
            return ""
        return f"insufficient cash: order needs {needed:.2f}, cash {self._cash:.2f}"

    def _allowed(self, order: Order, wanted: float, price: float) -> tuple[float, str]:
        """Return the shares that may fill now and, when some are cut, why."""
        whole = float(order.quantity).is_integer()
        if order.side == "sell" and not self.config.allow_short:
            held = max(self._qty.get(order.symbol, 0.0), 0.0)
            if wanted > held + EPS:
                return held, "would open a short position (allow_short = false)"
        if order.side == "buy" and self.config.max_buying_power is None:
            payable = affordable(self._cash, price, self.config.commission, whole)
            if wanted > payable + EPS:
                return payable, f"insufficient cash at fill: cash {self._cash:.2f}"
        return wanted, ""
