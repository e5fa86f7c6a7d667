"""A run with a pre-session scanner: picks recorded per session, strategy kept to its scope."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.catalog import Catalog, reset_catalog
from pipeline.config import RunConfig, ScannerConfig, load_config
from pipeline.engine import backtest
from pipeline.results import read_run, summary, write_run
from pipeline.store import Store
from pipeline.strategy import BarsView, Context, Strategy

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
