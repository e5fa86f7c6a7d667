"""The vectorised style: causal acting, per-symbol evaluation, targets, look-ahead refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import schema
from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.engine import Engine
from pipeline.errors import ConfigError
from pipeline.runner import SessionDay
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import Context, Strategy, load_strategy
from pipeline.stream import Step
from pipeline.vectorised import (
    Signals,
    VectorisedMovingAverageCross,
    VectorisedStrategy,
    evaluate,
    vectorised,
)

MINUTE = dt.timedelta(minutes=1)
DAYS = (dt.date(2024, 7, 1), dt.date(2024, 7, 2))
CONFIG = parse_config(
    {"name": "t", "start": "2024-07-01", "end": "2024-07-02", "symbols": ["ACME", "BOLT"]}
    | {"broker": {"cash": 100_000.0}}
)
ORDER_KEY = ["order_id", "ts", "symbol", "side", "quantity"]


def _open(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(13, 30), tzinfo=dt.UTC)


def _walk(n: int, seed: int) -> list[float]:
    steps = np.random.default_rng(seed).choice([-0.25, 0.0, 0.25], size=n)
    return (100.0 + np.cumsum(steps)).round(2).tolist()


def _table(
    day: dt.date, closes: dict[str, list[float]], late: dt.timedelta | None = None
) -> pl.DataFrame:
    """One session of 1m bars (and 5m bars revealed `late` after their close, when given)."""
    rows = []
    for symbol, values in closes.items():
        for i, close in enumerate(values):
            ts = _open(day) + i * MINUTE
            rows.append(_row(symbol, "1m", ts, close, MINUTE, late=dt.timedelta(0)))
            if late is not None and i % 5 == 4:
                start = ts - 4 * MINUTE
                rows.append(_row(symbol, "5m", start, close, 5 * MINUTE, late=late))
    frame = pl.DataFrame(rows, schema=schema.CATALOG_BARS)
    symbols = schema.symbol_dtype(CONFIG.symbols)
    rank = pl.when(pl.col("interval") == "1m").then(0).otherwise(1)
    return frame.with_columns(pl.col("symbol").cast(symbols)).sort(
        "available_at", "symbol", rank, "ts", maintain_order=True
    )


def _row(
    symbol: str, interval: str, ts: dt.datetime, close: float, size: dt.timedelta, *, late: Any
) -> dict[str, Any]:
    prices = {"open": close, "high": close + 0.1, "low": close - 0.1, "close": close}
    return (
        {"symbol": symbol, "interval": interval, "session": ts.date(), "ts": ts, **prices}
        | {"volume": 1e6, "ts_close": ts + size, "available_at": ts + size + late}
        | {"n_src": 1, "complete": True}
    )


class _Recording(Context):
    """A context that records the clock of every order call."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.catalog, ctx.broker, base=ctx.base, before_order=ctx._before_order)
        self.calls: list[tuple[dt.datetime | None, str, str]] = []

    def target_percent(self, symbol: str, percent: float) -> int | None:
        self.calls.append((self.clock, symbol, "entry"))
        return super().target_percent(symbol, percent)

    def target_quantity(self, symbol: str, quantity: float) -> int | None:
        self.calls.append((self.clock, symbol, "exit" if quantity == 0 else "target"))
        return super().target_quantity(symbol, quantity)


def _drive(
    strategy: Strategy,
    tables: list[pl.DataFrame],
    picks: list[tuple[str, ...]] | None = None,
) -> tuple[pl.DataFrame, _Recording]:
    """Stream `tables` (one per session) through an engine; return its orders and calls.

    `picks` are a scanner's picks, one per session (None: no scanner). The engine reads
    only the (empty) quality table of `_CATALOG` and writes nothing.
    """
    engine = Engine(CONFIG, _CATALOG, strategy=strategy)
    engine.ctx = recording = _Recording(engine.ctx)
    empty = schema.empty(schema.INDICATORS)
    for k, table in enumerate(tables):
        day = table["session"][0]
        opened = _open(day)
        picked = None if picks is None else picks[k]
        start = SessionDay(day, opened, opened + 390 * MINUTE, "1m", table, picked)
        engine.on_session_start(start)
        times = table.get_column("available_at")
        for start, length in _runs(times):
            engine(Step(times[start], table.slice(start, length), empty))
        engine.on_session_end(SessionDay(day, opened, opened + 390 * MINUTE, "1m", table))
    return engine.broker.orders(), recording


_CATALOG = Catalog()
_CATALOG.set_universe(CONFIG.symbols)


@pytest.fixture(scope="module", autouse=True)
def _close_catalog() -> Iterator[None]:
    yield
    _CATALOG.close()


def _runs(times: pl.Series) -> list[tuple[int, int]]:
    """(start, length) of each run of equal times."""
    lengths = times.rle().struct.field("len").to_list()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    return list(zip(starts, lengths, strict=True))


def _sessions(n: int = 60, late: dt.timedelta | None = None) -> list[pl.DataFrame]:
    return [
        _table(day, {"ACME": _walk(n, 2 * k), "BOLT": _walk(n, 2 * k + 1)}, late)
        for k, day in enumerate(DAYS)
    ]


# --- the same orders as the event style ------------------------------------------------


def test_inline_sessions_vectorised_cross_matches_the_event_cross() -> None:
    tables = _sessions()
    event, _ = _drive(MovingAverageCross(fast=2, slow=5), tables)
    vector, _ = _drive(VectorisedMovingAverageCross(fast=2, slow=5), tables)
    assert event.height > 10
    assert_frame_equal(vector, event)


def test_with_a_scanner_the_vectorised_cross_matches_the_event_cross() -> None:
    tables, picks = _sessions(), [("BOLT",), ("ACME",)]
    event, _ = _drive(MovingAverageCross(fast=2, slow=5), tables, picks)
    vector, calls = _drive(VectorisedMovingAverageCross(fast=2, slow=5), tables, picks)
    assert_frame_equal(vector, event)
    by_day = vector.group_by(pl.col("ts").dt.date()).agg(pl.col("symbol").unique().sort())
    # the other symbol's signals place no orders (BOLT is flat at the first close)
    assert dict(by_day.iter_rows()) == {DAYS[0]: ["BOLT"], DAYS[1]: ["ACME"]}
    assert {name for _, name, _ in calls.calls} == {"ACME", "BOLT"}


# --- causality -------------------------------------------------------------------------


def test_orders_before_any_cut_are_those_of_the_full_run() -> None:
    tables = _sessions(30)
    full, _ = _drive(VectorisedMovingAverageCross(fast=2, slow=5), tables)
    times = pl.concat(tables)["available_at"].unique().sort()
    for cut in times:  # every step of both sessions
        truncated = [t.filter(pl.col("available_at") <= cut) for t in tables]
        strategy = VectorisedMovingAverageCross(fast=2, slow=5)
        part, _ = _drive(strategy, [t for t in truncated if t.height])
        before = full.filter(pl.col("ts") <= cut).select(ORDER_KEY)
        assert_frame_equal(part.select(ORDER_KEY), before)
    assert full.height > 5


def test_a_signal_is_acted_on_at_its_bars_available_at_not_before() -> None:
    late = dt.timedelta(seconds=30)  # 5m bars published 30 s after they close
    tables = _sessions(late=late)
    strategy = VectorisedMovingAverageCross(fast=2, slow=4, interval="5m")
    _, recorded = _drive(strategy, tables)
    bars = pl.concat(tables).filter(pl.col("interval") == "5m")
    signals = evaluate(bars.lazy(), strategy.signals()).collect()
    wanted = signals.filter(pl.col("_entry"))
    entries = [(t, s) for t, s, kind in recorded.calls if kind == "entry"]
    assert len(entries) == wanted.height > 0
    expected = wanted.select("available_at", pl.col("symbol").cast(pl.String)).rows()
    assert entries == expected
    assert all(t is not None and t.second == 30 for t, _ in entries)  # never at the close
    _, event = _drive(MovingAverageCross(fast=2, slow=4, interval="5m"), tables)
    assert recorded.calls == event.calls


def test_a_look_ahead_expression_is_refused() -> None:
    @vectorised(interval="1m")
    def peek() -> Signals:
        close = pl.col("close")
        return Signals(entries=close.shift(-1) > close, exits=close.shift(-1) < close)

    with pytest.raises(ConfigError, match="looks ahead"):
        _drive(peek(), _sessions())


def test_a_whole_column_aggregate_is_refused_as_look_ahead() -> None:
    @vectorised(interval="1m")
    def above_mean() -> Signals:
        return Signals(target=(pl.col("close") > pl.col("close").mean()).cast(pl.Float64))

    with pytest.raises(ConfigError, match="looks ahead"):
        _drive(above_mean(), _sessions())


# --- per symbol ------------------------------------------------------------------------


def test_expressions_are_evaluated_per_symbol_without_leakage() -> None:
    table = _table(DAYS[0], {"ACME": _walk(40, 1), "BOLT": [1000.0 + i for i in range(40)]})
    close = pl.col("close")
    signals = Signals(entries=close > close.rolling_mean(3).shift(1), target=None)
    together = evaluate(table.lazy(), signals).collect()
    for symbol in CONFIG.symbols:
        alone = evaluate(table.lazy().filter(pl.col("symbol") == symbol), signals).collect()
        assert_frame_equal(together.filter(pl.col("symbol") == symbol), alone)
    bolt = together.filter(pl.col("symbol") == "BOLT", pl.col("interval") == "1m")
    assert bolt["_entry"].sum() == 40 - 3  # rising: every bar once 3 are known


def test_a_symbols_orders_do_not_depend_on_other_symbols() -> None:
    @vectorised(interval="1m", target_kind="quantity")
    def up_down() -> Signals:
        close = pl.col("close")
        return Signals(target=pl.when(close > close.shift(2)).then(10.0).otherwise(0.0))

    both, _ = _drive(up_down(), _sessions())
    acme_only = [t.filter(pl.col("symbol") == "ACME") for t in _sessions()]
    alone, _ = _drive(up_down(), acme_only)
    columns = ["ts", "symbol", "side", "quantity", "status"]
    assert_frame_equal(
        both.filter(pl.col("symbol") == "ACME").select(columns), alone.select(columns)
    )


# --- targets, carry-over, API ------------------------------------------------------------


def test_target_is_forward_filled_and_ordered_only_where_it_changes() -> None:
    @vectorised(interval="1m")
    def two_moves() -> Signals:
        i = pl.int_range(pl.len())
        return Signals(target=pl.when(i == 3).then(0.5).when(i == 9).then(0.0).otherwise(None))

    table = _table(DAYS[0], {"ACME": [100.0] * 12})
    orders, recorded = _drive(two_moves(), [table])
    assert orders.select("side", "quantity").rows() == [("buy", 500.0), ("sell", 500.0)]
    assert [t for t, _, _ in recorded.calls] == [table["available_at"][i] for i in (3, 9)]


def test_carrying_the_last_slow_bars_matches_carrying_all_history() -> None:
    class Unbounded(VectorisedMovingAverageCross):
        def __init__(self) -> None:
            super().__init__(fast=3, slow=7)
            self.lookback = None

    tables = _sessions()
    bounded, _ = _drive(VectorisedMovingAverageCross(fast=3, slow=7), tables)
    unbounded, _ = _drive(Unbounded(), tables)
    assert bounded.filter(pl.col("ts") >= _open(DAYS[1])).height > 0  # crosses on day 2 too
    assert_frame_equal(bounded, unbounded)


def test_signals_need_entries_exits_or_a_target_not_both() -> None:
    with pytest.raises(ConfigError, match="found both"):
        Signals(entries=pl.lit(True), target=pl.lit(1.0))
    with pytest.raises(ConfigError, match="found neither"):
        Signals()
    with pytest.raises(ConfigError, match="target_kind"):
        Signals(target=pl.lit(1.0), target_kind="shares")  # type: ignore[arg-type]


def test_a_function_strategy_must_return_signals() -> None:
    @vectorised(interval="1m")
    def wrong() -> Any:
        return pl.col("close") > 1

    with pytest.raises(ConfigError, match="return Signals"):
        _drive(wrong(), _sessions(10))


def test_a_bad_lookback_is_refused() -> None:
    strategy = VectorisedMovingAverageCross(fast=2, slow=5)
    strategy.lookback = -1
    with pytest.raises(ConfigError, match="lookback"):
        _drive(strategy, _sessions(10))


def test_vectorised_strategies_load_by_name_with_their_params() -> None:
    strategy = load_strategy(
        "pipeline.vectorised:VectorisedMovingAverageCross", {"fast": 3, "slow": 9, "interval": "5m"}
    )
    assert isinstance(strategy, VectorisedStrategy)
    assert strategy.params == {
        "fast": 3,
        "slow": 9,
        "interval": "5m",
        "symbol": None,
        "percent": 1.0,
    }
    assert strategy.lookback == 9
    with pytest.raises(ConfigError, match="fast < slow"):
        VectorisedMovingAverageCross(fast=9, slow=3)
