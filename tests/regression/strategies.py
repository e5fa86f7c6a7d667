"""A test strategy for the regression cases: limit and stop orders, entries and exits.

Named in a case's config by file path (``tests/regression/strategies.py:Bracket``,
relative to the repository root, where ``pipeline regress`` runs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pipeline.strategy import BarsView, Context, Strategy


@dataclass
class _Book:
    """One symbol's bracket: the reference close and the order ids still possibly working."""

    reference: float = 0.0
    entries: list[int] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)


class Bracket(Strategy):
    """Arm a buy limit below and a buy stop above the close; exit with a limit and a stop.

    Every `every` base bars while flat, it places a buy limit `band_pct` % under the last
    close and a buy stop `band_pct` % above it (`shares` each). Once long, it cancels the
    other entry and places a sell limit `take_pct` % above and a sell stop `stop_pct` %
    below the reference close; once flat again it cancels the exit left. From `flat_bars`
    base bars before the close it cancels everything and sells at the market.
    """

    def __init__(
        self,
        shares: int = 100,
        *,
        band_pct: float = 0.2,
        take_pct: float = 0.4,
        stop_pct: float = 0.4,
        every: int = 30,
        flat_bars: int = 2,
    ) -> None:
        super().__init__(
            shares=shares,
            band_pct=band_pct,
            take_pct=take_pct,
            stop_pct=stop_pct,
            every=every,
            flat_bars=flat_bars,
        )
        self.shares, self.band = shares, band_pct / 100
        self.take, self.stop = take_pct / 100, stop_pct / 100
        self.every, self.flat_bars = every, flat_bars
        self._books: dict[str, _Book] = {}
        self._seen: dict[str, int] = {}
        self._flat_at: dt.datetime | None = None

    def on_session_start(self, ctx: Context) -> None:
        assert ctx.session_close is not None
        self._flat_at = ctx.session_close - dt.timedelta(minutes=self.flat_bars)
        self._books, self._seen = {}, {}

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        clock = ctx.clock
        if clock is None or self._flat_at is None:
            return
        if clock >= self._flat_at:
            self._flatten(ctx)
            return
        rows = bars.rows(interval=ctx.base)
        closes, codes, universe = bars.close, bars.symbol, bars.universe
        for i in rows.tolist():
            name = universe[codes[i]]
            self._seen[name] = self._seen.get(name, 0) + 1
            self._step(ctx, name, float(closes[i]))

    def _step(self, ctx: Context, name: str, close: float) -> None:
        book = self._books.setdefault(name, _Book())
        held = ctx.position(name)
        if held > 0 and book.entries:
            self._cancel(ctx, book.entries)
            ref = book.reference
            book.exits = [
                ctx.limit(name, -held, round(ref * (1 + self.take), 2)),
                ctx.stop(name, -held, round(ref * (1 - self.stop), 2)),
            ]
        elif held == 0 and book.exits:
            self._cancel(ctx, book.exits)
        if held == 0 and self._seen[name] % self.every == 0:
            self._cancel(ctx, book.entries)  # not filled within `every` bars: re-arm
            book.reference = close
            book.entries = [
                ctx.limit(name, self.shares, round(close * (1 - self.band), 2)),
                ctx.stop(name, self.shares, round(close * (1 + self.band), 2)),
            ]

    def _flatten(self, ctx: Context) -> None:
        for name, book in sorted(self._books.items()):
            self._cancel(ctx, book.entries)
            self._cancel(ctx, book.exits)
            if ctx.position(name):
                ctx.target_quantity(name, 0)
        self._books = {}

    @staticmethod
    def _cancel(ctx: Context, orders: list[int]) -> None:
        for order in orders:
            ctx.cancel(order)  # an order already filled or cancelled is left as it is
        orders.clear()
