"""Planning loaded sessions at once gives a vectorised strategy the per-session values.

`VectorisedRunner.plan_sessions` evaluates many sessions in one query, each (symbol,
session) a group of the symbol's last `lookback` bars before the session and its
session bars. Compared here with one evaluation per session, exactly: the acting rows
(table row, symbol, action) of every session and the bars carried after the last one,
on random sessions where a symbol misses whole sessions or has fewer bars than the
lookback, for entries/exits and for a forward-filled target.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import schema
from pipeline.vectorised import (
    Signals,
    VectorisedMovingAverageCross,
    VectorisedRunner,
    VectorisedStrategy,
    vectorised,
)

SYMBOLS = ("ACME", "BOLT", "CODA")
MINUTE = dt.timedelta(minutes=1)
FIRST = dt.date(2024, 7, 1)


@vectorised(interval="1m", lookback=4)
def above_mean(window: int = 3) -> Signals:
    """Hold 50% while the close is above its mean, none below; null (keep) on a tie."""
    close = pl.col("close")
    mean = close.rolling_mean(window)
    target = pl.when(close > mean).then(0.5).when(close < mean).then(0.0).otherwise(None)
    return Signals(target=target)


def _sessions(seed: int, count: int = 7) -> list[tuple[dt.date, pl.DataFrame]]:
    """Random sessions of 1m and 5m bars; each symbol's bars in a session: none to 40."""
    rng = np.random.default_rng(seed)
    symbols = schema.symbol_dtype(SYMBOLS)
    sessions = []
    for k in range(count):
        day = FIRST + dt.timedelta(days=k)
        rows: list[dict[str, Any]] = []
        for symbol in SYMBOLS:
            bars = int(rng.choice([0, 2, 6, 40]))
            closes = 100 + np.cumsum(rng.choice([-0.5, 0.0, 0.5], size=bars))
            opened = dt.datetime.combine(day, dt.time(13, 30), tzinfo=dt.UTC)
            for i, close in enumerate(closes.tolist()):
                ts = opened + i * MINUTE
                rows.append(_row(symbol, "1m", ts, close, MINUTE))
                if i % 5 == 4:
                    rows.append(_row(symbol, "5m", ts - 4 * MINUTE, close, 5 * MINUTE))
        frame = pl.DataFrame(rows, schema=schema.CATALOG_BARS).with_columns(
            pl.col("symbol").cast(symbols)
        )
        sessions.append((day, frame.sort("available_at", "symbol", maintain_order=True)))
    return sessions


def _row(symbol: str, interval: str, ts: dt.datetime, close: float, size: dt.timedelta) -> Any:
    prices = {"open": close, "high": close + 0.1, "low": close - 0.1, "close": close}
    return (
        {"symbol": symbol, "interval": interval, "session": ts.date(), "ts": ts, **prices}
        | {"volume": 1e3, "ts_close": ts + size, "available_at": ts + size}
        | {"n_src": 1, "complete": True}
    )


def _acting(runner: VectorisedRunner) -> list[tuple[int, str, float]]:
    return list(zip(runner._rows.tolist(), runner._symbols, runner._values, strict=True))


def _per_session(
    strategy: VectorisedStrategy, sessions: list[tuple[dt.date, pl.DataFrame]], *, check: bool
) -> tuple[list[Any], pl.DataFrame | None]:
    runner = VectorisedRunner(strategy, check=check)
    seen = []
    for _, table in sessions:
        runner.start_session(table)
        seen.append(_acting(runner))
        runner.end_session()
    return seen, runner._tail


def _planned(
    strategy: VectorisedStrategy, sessions: list[tuple[dt.date, pl.DataFrame]], *, check: bool
) -> tuple[list[Any], pl.DataFrame | None, VectorisedRunner]:
    runner = VectorisedRunner(strategy, check=check)
    seen = []
    for k, (day, table) in enumerate(sessions):
        runner.start_session(table, session=day, ahead=lambda k=k: sessions[k:])
        seen.append(_acting(runner))
        runner.end_session()
    return seen, runner._tail, runner


STRATEGIES = {
    "cross 1m": lambda: VectorisedMovingAverageCross(fast=2, slow=5),
    "cross 5m": lambda: VectorisedMovingAverageCross(fast=2, slow=3, interval="5m"),
    "target": lambda: above_mean(window=3),
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("check", [False, True])
def test_planned_sessions_act_as_sessions_evaluated_one_by_one(
    name: str, seed: int, check: bool
) -> None:
    sessions = _sessions(seed)
    expected, tail = _per_session(STRATEGIES[name](), sessions, check=check)
    found, planned_tail, runner = _planned(STRATEGIES[name](), sessions, check=check)
    assert found == expected
    assert sum(map(len, expected)) > 0
    assert tail is not None
    assert planned_tail is not None
    assert_frame_equal(planned_tail, tail, check_exact=True)
    assert runner._plans  # small tables: planned, not evaluated one by one


def test_a_session_out_of_plan_order_is_an_error() -> None:
    sessions = _sessions(1)
    runner = VectorisedRunner(VectorisedMovingAverageCross(fast=2, slow=5), check=False)
    runner.start_session(sessions[0][1], session=sessions[0][0], ahead=lambda: sessions)
    with pytest.raises(RuntimeError, match="sessions must stream in order"):
        runner.start_session(sessions[2][1], session=sessions[2][0], ahead=lambda: sessions[2:])


def test_large_tables_are_evaluated_one_session_at_a_time(monkeypatch: Any) -> None:
    monkeypatch.setattr("pipeline.vectorised.PLAN_ROWS", 10)
    sessions = _sessions(2)
    expected, _ = _per_session(above_mean(window=3), sessions, check=False)
    found, _, runner = _planned(above_mean(window=3), sessions, check=False)
    assert found == expected
    assert not runner._plans
    assert not runner._planned
