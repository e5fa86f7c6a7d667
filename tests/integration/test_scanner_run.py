"""A run with a pre-session scanner: picks recorded per session, strategy kept to its scope."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.catalog import Catalog, reset_catalog
from pipeline.config import RunConfig, ScannerConfig, load_config
from pipeline.engine import backtest
from pipeline.results import read_run, summary, write_run
from pipeline.store import Store
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import BarsView, Context, Strategy
from pipeline.vectorised import VectorisedMovingAverageCross

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
ROTATE = """-- name: rotate
-- description: One candidate per session, in turn (by the number of sessions before it).
-- param session: the session date
WITH n AS (SELECT count(*) AS k FROM calendar_sessions WHERE session < $session::DATE),
names AS (
    SELECT symbol, row_number() OVER (ORDER BY symbol) - 1 AS i, count(*) OVER () AS m
    FROM (SELECT DISTINCT symbol FROM bars)
)
SELECT symbol FROM names, n WHERE i = k % m ORDER BY symbol
"""
VECTORISED = "pipeline.vectorised:VectorisedMovingAverageCross"
ORDER_COLUMNS = ["ts", "symbol", "side", "quantity", "status"]


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    reset_catalog()
    cat = Catalog()
    yield cat
    cat.close()
    reset_catalog()


class Recorder(Strategy):
    """Buy 10 shares of each symbol once when first seen; sell it in a later session.

    Records every symbol it sees, with ``ctx.universe`` at that moment.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scopes: dict[dt.date, tuple[str, ...]] = {}
        self.seen: list[tuple[dt.date, str, tuple[str, ...]]] = []
        self.placed: list[tuple[dt.date, str, float]] = []
        self.bought: dict[str, dt.date] = {}

    def on_session_start(self, ctx: Context) -> None:
        assert ctx.session is not None
        self.scopes[ctx.session] = ctx.universe

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        assert ctx.session is not None
        day = ctx.session
        for name in sorted(set(bars.symbols())):
            self.seen.append((day, name, ctx.universe))
            if ctx.broker.working_orders(name):
                continue
            held = ctx.position(name)
            if held and self.bought[name] != day:
                ctx.target_quantity(name, 0)
                self.placed.append((day, name, -held))
            elif not held and name not in self.bought:
                ctx.market(name, 10)
                self.bought[name] = day
                self.placed.append((day, name, 10))


def picks(scans: pl.DataFrame) -> dict[dt.date, set[str]]:
    out: dict[dt.date, set[str]] = {}
    for day, name in scans.select("session", "symbol").iter_rows():
        out.setdefault(day, set()).add(name)
    return out


def rotating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunConfig:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "rotate.sql").write_text(ROTATE, encoding="utf-8")
    monkeypatch.setenv("PIPELINE_QUERIES", str(folder))
    config = load_config(REPO / "configs" / "scanner.toml")
    return dataclasses.replace(
        config, symbols=("ACME", "BOLT"), scanner=ScannerConfig("rotate", {}, "all")
    )


def test_scanner_config_records_two_picks_per_session(catalog: Catalog, tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "scanner.toml")
    report, results = backtest(config, STORE, catalog)
    scans = results["scans"]
    sessions = report.sessions.get_column("session").to_list()
    assert scans.get_column("session").unique().sort().to_list() == sessions
    assert scans.group_by("session").len().get_column("len").to_list() == [2] * len(sessions)
    assert set(scans.get_column("rank").to_list()) == {1, 2}
    assert scans.equals(catalog.sql("SELECT * FROM scans ORDER BY session, rank"))
    picked = set(scans.get_column("symbol").to_list())
    assert picked == {"ACME", "BOLT"}  # TINY is the least active: never picked, never traded
    assert set(results["orders"].get_column("symbol").to_list()) <= picked
    figures = summary(results, report, config, run_id="scan-run")
    folder = write_run(tmp_path, config, results, figures, report.sessions, chart=False)
    assert read_run(tmp_path, folder.name).table("scans").equals(scans)


def test_strategy_sees_only_picked_and_held_symbols(catalog: Catalog) -> None:
    config = load_config(REPO / "configs" / "scanner.toml")
    strategy = Recorder()
    _, results = backtest(config, STORE, catalog, strategy=strategy)
    chosen = picks(results["scans"])
    assert strategy.seen
    for day, name, scope in strategy.seen:
        assert name in scope
        assert set(scope) <= chosen[day] | set(strategy.bought)
    assert {name for _, name, _ in strategy.seen} <= set().union(*chosen.values())


def test_position_in_a_dropped_symbol_is_still_closed(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = Recorder()
    _, results = backtest(rotating(tmp_path, monkeypatch), STORE, catalog, strategy=strategy)
    chosen = picks(results["scans"])
    assert all(len(names) == 1 for names in chosen.values())
    assert len(set().union(*chosen.values())) == 2  # the pick changes day by day
    exits = [(day, name) for day, name, qty in strategy.placed if qty < 0]
    dropped = [(day, name) for day, name in exits if name not in chosen[day]]
    assert dropped, "an exit in a symbol that was not picked that session"
    fills = results["fills"].filter(pl.col("side") == "sell")
    sold: set[Any] = set(fills.select(pl.col("ts").dt.date(), "symbol").iter_rows())
    assert set(dropped) <= sold
    for day, name, scope in strategy.seen:
        held_over = name not in chosen[day]
        assert not held_over or (day, name) in set(exits), (day, name, scope)


def held_before(
    results: dict[str, pl.DataFrame], sessions: list[dt.date]
) -> dict[dt.date, set[str]]:
    """The symbols held, or with a working order, at the close before each session."""
    held = results["positions"].filter(pl.col("quantity") != 0)
    at_close: dict[dt.date, set[str]] = {day: set() for day in sessions}
    for day, name in held.select(pl.col("ts").dt.date(), "symbol").iter_rows():
        at_close[day].add(name)
    placed = results["orders"].select("order_id", placed=pl.col("ts").dt.date())
    late = (
        results["fills"]
        .join(placed, on="order_id")
        .filter(pl.col("ts").dt.date() > pl.col("placed"))
    )
    for day, name in late.select("placed", "symbol").iter_rows():
        at_close[day].add(name)  # ordered in session `day`, filled in a later one
    return {day: at_close[before] for before, day in itertools.pairwise(sessions)} | {
        sessions[0]: set()
    }


def assert_orders_in_scope(results: dict[str, pl.DataFrame], sessions: list[dt.date]) -> None:
    chosen, held = picks(results["scans"]), held_before(results, sessions)
    orders = results["orders"].select(pl.col("ts").dt.date(), "symbol")
    assert orders.height > 0
    for day, name in orders.iter_rows():
        assert name in chosen[day] | held[day], (day, name, chosen[day], held[day])


def test_vectorised_cross_orders_only_symbols_in_scope(catalog: Catalog) -> None:
    config = load_config(REPO / "configs" / "scanner.toml")
    params = {"fast": 3, "slow": 8, "interval": "5m"}
    config = dataclasses.replace(config, strategy={"class": VECTORISED, "params": params})
    report, results = backtest(config, STORE, catalog)
    sessions = report.sessions.get_column("session").to_list()
    assert_orders_in_scope(results, sessions)
    assert "TINY" not in set(results["orders"].get_column("symbol").to_list())


def test_vectorised_cross_closes_a_dropped_symbol(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = VectorisedMovingAverageCross(fast=2, slow=5, interval="1m")
    report, results = backtest(rotating(tmp_path, monkeypatch), STORE, catalog, strategy=strategy)
    sessions = report.sessions.get_column("session").to_list()
    assert_orders_in_scope(results, sessions)
    chosen = picks(results["scans"])
    sells = results["fills"].filter(pl.col("side") == "sell")
    days = sells.select(pl.col("ts").dt.date(), "symbol").iter_rows()
    assert any(name not in chosen[day] for day, name in days), "no exit of a dropped symbol"


@pytest.mark.parametrize(
    ("scanner", "params"),
    [
        ("most_active", {"fast": 10, "slow": 30, "interval": "5m"}),
        ("most_active", {"fast": 2, "slow": 5, "interval": "1m"}),
        ("rotate", {"fast": 2, "slow": 5, "interval": "1m"}),  # fails if released bars are carried
    ],
)
def test_event_and_vectorised_cross_place_the_same_orders_under_a_scanner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: str, params: dict[str, Any]
) -> None:
    if scanner == "rotate":
        config = rotating(tmp_path, monkeypatch)
    else:
        config = load_config(REPO / "configs" / "scanner.toml")
    runs = []
    for strategy in (
        MovingAverageCross(**params),
        VectorisedMovingAverageCross(**params),
    ):
        cat = Catalog()
        try:
            runs.append(backtest(config, STORE, cat, strategy=strategy)[1])
        finally:
            cat.close()
    event, vector = runs
    assert event["orders"].height > 0
    assert_frame_equal(
        vector["orders"].select(ORDER_COLUMNS), event["orders"].select(ORDER_COLUMNS)
    )
    assert_frame_equal(vector["orders"], event["orders"])
    assert_frame_equal(vector["trades"], event["trades"])
    assert_frame_equal(vector["scans"], event["scans"])
