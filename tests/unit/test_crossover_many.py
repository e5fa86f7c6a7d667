"""MovingAverageCross with many symbols (averages in arrays) equals the per-symbol path."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from pipeline import schema
from pipeline._crossover import _MANY, MovingAverageCross, _Averages, _Crosses
from pipeline.strategy import BarsView

OPEN = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _walks(symbols: int, steps: int, seed: int) -> np.ndarray:
    """Random walks on a 5-cent grid from 10.00: exact ties of the averages happen."""
    rng = np.random.default_rng(seed)
    moves = rng.choice([-0.05, 0.0, 0.05], size=(steps, symbols))
    return np.round(10.0 + np.cumsum(moves, axis=0), 2)


@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (2, 3), (3, 8), (10, 30)])
def test_array_averages_give_the_per_symbol_crosses_bit_for_bit(fast: int, slow: int) -> None:
    closes = _walks(12, 2_000, seed=fast * 100 + slow)
    present = np.random.default_rng(slow).random(closes.shape) < 0.8  # symbols skip steps
    many = _Crosses(fast, slow)
    names = tuple(f"S{i:02d}" for i in range(12))
    slots = many.slots(names)
    single = [_Averages(fast, slow) for _ in names]
    crosses = 0
    for step in range(closes.shape[0]):
        codes = present[step].nonzero()[0]
        got = many.push(slots[codes], closes[step, codes])
        want = [single[c].push(float(closes[step, c])) for c in codes.tolist()]
        assert got.tolist() == want, f"step {step}"
        crosses += int(np.count_nonzero(got))
        for c in codes.tolist():
            assert many.fast_sum[slots[c]] == single[c].fast_sum
            assert many.slow_sum[slots[c]] == single[c].slow_sum
    assert crosses > 50  # the comparison saw crosses, not only zeros


def test_symbols_keep_their_averages_when_the_universe_changes() -> None:
    many, single = _Crosses(2, 3), {n: _Averages(2, 3) for n in ("A", "B", "C")}
    closes = _walks(3, 40, seed=1)
    for step in range(40):
        universe = ("A", "B", "C") if step % 2 else ("C", "A")  # new tuple, new codes
        codes = np.arange(len(universe))
        values = np.array([closes[step, "ABC".index(n)] for n in universe])
        got = many.push(many.slots(universe)[codes], values)
        want = [single[n].push(float(v)) for n, v in zip(universe, values, strict=True)]
        assert got.tolist() == want


class _Orders:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []
        self.held: dict[str, float] = {}
        self.step = 0

    def target_percent(self, symbol: str, percent: float) -> None:  # noqa: ARG002
        self.calls.append((self.step, symbol, "buy"))
        self.held[symbol] = 1.0

    def target_quantity(self, symbol: str, quantity: float) -> None:
        self.calls.append((self.step, symbol, "sell"))
        self.held[symbol] = quantity

    def position(self, symbol: str) -> float:
        return self.held.get(symbol, 0.0)


def _table(closes: np.ndarray, names: tuple[str, ...]) -> pl.DataFrame:
    """1m and 5m rows at each step (the 5m closes differ), sorted by (available_at, symbol)."""
    rows = []
    for step in range(closes.shape[0]):
        ts = OPEN + step * MINUTE
        for interval, shift in (("1m", 0.0), ("5m", 1.0)):
            for code, name in enumerate(names):
                close = float(closes[step, code]) + shift
                prices = dict.fromkeys(("open", "high", "low", "close"), close)
                rows.append(
                    {"symbol": name, "interval": interval, "session": ts.date(), "ts": ts}
                    | prices
                    | {"volume": 100.0, "ts_close": ts + MINUTE, "available_at": ts + MINUTE}
                    | {"n_src": 1, "complete": True}
                )
    frame = pl.DataFrame(rows, schema=schema.CATALOG_BARS)
    frame = frame.with_columns(pl.col("symbol").cast(schema.symbol_dtype(names)))
    return frame.sort("available_at", "symbol", "interval", maintain_order=True)


def _orders(strategy: MovingAverageCross, table: pl.DataFrame, steps: int) -> list[Any]:
    ctx = _Orders()
    per_step = table.height // steps
    for step in range(steps):
        ctx.step = step
        strategy.on_bars(ctx, BarsView(table.slice(step * per_step, per_step)))  # type: ignore[arg-type]
    return ctx.calls


@pytest.mark.parametrize("symbol", [None, "S03"])
def test_on_bars_with_many_symbols_places_the_per_symbol_orders(symbol: str | None) -> None:
    names = tuple(f"S{i:02d}" for i in range(_MANY + 2))
    closes = _walks(len(names), 300, seed=7)
    got = _orders(MovingAverageCross(2, 5, symbol=symbol), _table(closes, names), 300)
    assert len(got) > 10
    # The same orders, symbol by symbol, from the per-symbol path (one symbol per run).
    want = []
    for code, name in enumerate(names):
        if symbol in (None, name):
            one = _orders(MovingAverageCross(2, 5), _table(closes[:, [code]], (name,)), 300)
            want += one
    assert sorted(got) == sorted(want)
    assert got == sorted(got, key=lambda call: call[0])  # in step order
