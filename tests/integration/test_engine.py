"""The analysis engine over the sample store (configs/sample.toml): no look-ahead, reruns, fills."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import schema
from pipeline.catalog import Catalog
from pipeline.config import RunConfig, load_config
from pipeline.engine import Engine, backtest
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.strategies import MovingAverageCross
from pipeline.strategy import BarsView, Context
from pipeline.vectorised import VectorisedMovingAverageCross

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
CONFIG = load_config(REPO / "configs" / "sample.toml")
KEY = ["symbol", "interval", "ts"]


class Recorder(MovingAverageCross):
    """The sample's crossover, recording every row it is given and every ctx.bars() answer."""

    def __init__(self) -> None:
        super().__init__(**CONFIG.strategy["params"])
        self.given: list[pl.DataFrame] = []
        self.asked: list[pl.DataFrame] = []
        self.hours: dict[dt.date, tuple[dt.datetime | None, dt.datetime | None]] = {}
        self.steps = 0

    def on_session_start(self, ctx: Context) -> None:
        assert ctx.session is not None
        self.hours[ctx.session] = (ctx.session_open, ctx.session_close)
        super().on_session_start(ctx)

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        assert ctx.clock is not None
        clock = pl.lit(ctx.clock).cast(schema.TS).alias("clock")
        self.given.append(bars.df.select(*KEY, "available_at", clock))
        if self.steps % 5 == 0:
            for symbol in ctx.universe:
                for interval in ("1m", "5m", "15m", "1d"):
                    seen = ctx.bars(symbol, interval, n=40)
                    self.asked.append(seen.select(*KEY, "available_at", clock))
        self.steps += 1
        super().on_bars(ctx, bars)


@dataclasses.dataclass(frozen=True)
class Run:
    results: dict[str, pl.DataFrame]
    catalog_tables: dict[str, pl.DataFrame]
    truth: pl.DataFrame
    recorder: Recorder


def _run(config: RunConfig, strategy: MovingAverageCross | None = None) -> Run:
    catalog = Catalog()
    try:
        engine = Engine(config, catalog, strategy=strategy)
        Coordinator(config, STORE, catalog).run(engine=engine)
        results = engine.results()
        tables = {n: catalog.table(n) for n in ("orders", "fills", "trades", "positions", "equity")}
        truth = pl.concat([catalog.table("history_bars"), catalog.table("session_bars")])
    finally:
        catalog.close()
    recorder = strategy if isinstance(strategy, Recorder) else Recorder()
    return Run(results, tables, truth, recorder)


@pytest.fixture(scope="module")
def recorded() -> Run:
    return _run(CONFIG, Recorder())


def _check_visible(rows: pl.DataFrame, truth: pl.DataFrame) -> None:
    """Every row's catalog ``available_at`` is at or before the clock it was seen at."""
    rows = rows.with_columns(pl.col("symbol").cast(pl.String))
    truth = truth.select(*KEY, pl.col("available_at").alias("truth")).with_columns(
        pl.col("symbol").cast(pl.String)
    )
    joined = rows.join(truth, on=KEY, how="left")
    assert joined["truth"].null_count() == 0  # every row seen is a real catalog row
    assert (joined["truth"] == joined["available_at"]).all()
    late = joined.filter(pl.col("truth") > pl.col("clock"))
    assert late.is_empty(), late.head()


def test_strategy_is_given_only_rows_of_its_clock(recorded: Run) -> None:
    given = pl.concat(recorded.recorder.given)
    assert given.height == 5_970  # every session row of the 6 sessions, each once
    assert (given["available_at"] == given["clock"]).all()  # revealed at exactly this time
    run_days = given["ts"].dt.date().unique()
    truth = recorded.truth.filter(pl.col("ts").dt.date().is_in(run_days.implode()))
    _check_visible(given.filter(pl.col("interval") != "1d"), truth)


def test_context_bars_never_show_a_row_before_its_available_at(recorded: Run) -> None:
    asked = pl.concat(recorded.recorder.asked)
    assert asked.filter(pl.col("interval") == "1d").height > 0
    # the run's sessions are all in the last session's history window (1m: 5 sessions)
    intraday = asked.filter(pl.col("interval") != "1d")
    first_run_day = dt.datetime(2024, 7, 2, tzinfo=dt.UTC)
    _check_visible(intraday.filter(pl.col("ts") >= first_run_day), recorded.truth)
    assert (asked["available_at"] <= asked["clock"]).all()


def test_context_shows_each_sessions_regular_hours_early_close_included(recorded: Run) -> None:
    utc = dt.UTC

    def hours(day: int, close: int) -> tuple[dt.datetime, dt.datetime]:
        return dt.datetime(2024, 7, day, 13, 30, tzinfo=utc), dt.datetime(
            2024, 7, day, close, tzinfo=utc
        )

    assert recorded.recorder.hours == {
        dt.date(2024, 7, 2): hours(2, 20),
        dt.date(2024, 7, 3): hours(3, 17),  # early close
        dt.date(2024, 7, 5): hours(5, 20),
        dt.date(2024, 7, 8): hours(8, 20),
        dt.date(2024, 7, 9): hours(9, 20),
        dt.date(2024, 7, 10): hours(10, 20),
    }
    for opened, closed in recorded.recorder.hours.values():
        assert opened is not None
        assert closed is not None
        assert opened.utcoffset() == closed.utcoffset() == dt.timedelta(0)


def test_context_has_no_session_hours_before_the_first_session() -> None:
    catalog = Catalog()
    try:
        ctx = Engine(CONFIG, catalog).ctx
    finally:
        catalog.close()
    assert (ctx.session, ctx.session_open, ctx.session_close) == (None, None, None)


def test_results_go_to_the_catalog_in_its_schema(recorded: Run) -> None:
    for name, table in recorded.catalog_tables.items():
        assert table.columns == list(schema.CATALOG_TABLES[name])
        assert table.columns == recorded.results[name].columns  # the broker's columns
        assert table.height == recorded.results[name].height
    orders = recorded.results["orders"]
    assert orders.height > 0
    assert recorded.results["trades"].height > 0
    assert recorded.results["equity"].height == 390 * 5 + 210  # one row per base bar time


def test_sql_over_the_catalog_sees_the_brokers_columns() -> None:
    config = dataclasses.replace(CONFIG, broker={**CONFIG.broker, "slippage_bps": 5})
    catalog = Catalog()
    try:
        _, results = backtest(config, STORE, catalog)
        orders = catalog.sql("SELECT sum(filled_quantity) AS filled FROM orders")
        fills = catalog.sql("SELECT sum(slippage) AS slip, bool_or(at_close) AS close FROM fills")
        trades = catalog.sql("SELECT min(side) AS side, sum(commission) AS fee FROM trades")
        positions = catalog.sql(
            "SELECT sum(realised_pnl) AS realised, count(unrealised_pnl) AS n FROM positions"
        )
    finally:
        catalog.close()
    assert orders["filled"].item() == pytest.approx(results["orders"]["filled_quantity"].sum())
    assert fills["slip"].item() == pytest.approx(results["fills"]["slippage"].sum())
    assert fills["slip"].item() > 0
    assert fills["close"].item() is False
    assert trades["side"].item() == "long"
    assert trades["fee"].item() == pytest.approx(results["trades"]["commission"].sum())
    assert positions["realised"].item() == pytest.approx(results["positions"]["realised_pnl"].sum())
    assert positions["n"].item() == results["positions"].height


def test_rerun_gives_identical_tables(recorded: Run) -> None:
    again = _run(CONFIG)
    for name in ("orders", "fills", "trades", "positions", "equity"):
        assert_frame_equal(again.results[name], recorded.results[name])


def test_fill_at_close_is_flagged() -> None:
    config = dataclasses.replace(CONFIG, broker={**CONFIG.broker, "fill": "close"})
    catalog = Catalog()
    try:
        _, results = backtest(config, STORE, catalog)
        flagged = catalog.sql("SELECT count(*) FILTER (WHERE at_close) AS n FROM fills")
    finally:
        catalog.close()
    assert flagged["n"].item() == results["fills"].height
    fills = results["fills"]
    assert fills.height > 0
    assert fills["at_close"].all()
    orders = results["orders"].select("order_id", pl.col("ts").alias("placed"))
    joined = fills.join(orders, on="order_id")
    assert (joined["ts"] == joined["placed"]).all()  # filled at the signal bar's close


def test_next_open_fills_are_not_flagged(recorded: Run) -> None:
    fills = recorded.results["fills"]
    assert fills.height > 0
    assert not fills["at_close"].any()


class PreMarketBuyer(MovingAverageCross):
    """Buys 10 ACME at the first step of each session it sees (pre-market with extended hours)."""

    def __init__(self) -> None:
        super().__init__()
        self.placed: dict[dt.datetime, dt.datetime] = {}  # order clock -> session open

    def on_bars(self, ctx: Context, bars: BarsView) -> None:  # noqa: ARG002
        assert ctx.clock is not None
        assert ctx.session_open is not None
        if ctx.clock < ctx.session_open and ctx.session_open not in self.placed.values():
            self.placed[ctx.clock] = ctx.session_open
            ctx.market("ACME", 10)


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_pre_market_order_carries_its_clock_and_fills_at_a_later_bar(fill: str) -> None:
    config = dataclasses.replace(
        CONFIG, extended_hours=True, broker={**CONFIG.broker, "fill": fill}
    )
    strategy = PreMarketBuyer()
    run = _run(config, strategy)
    orders, fills = run.results["orders"], run.results["fills"]
    assert orders["ts"].to_list() == list(strategy.placed)  # the strategy's clock
    assert len(strategy.placed) == 6  # every session: the first one does not abort
    # before any regular-hours bar the broker has no price: refused, recorded
    assert orders["status"].to_list() == ["refused"] + ["filled"] * 5
    assert orders["reason"][0].startswith("no price yet for ACME")
    acme = run.truth.filter((pl.col("symbol") == "ACME") & (pl.col("interval") == "1m"))
    joined = fills.join(orders.select("order_id", pl.col("ts").alias("placed")), on="order_id")
    assert joined.height == 5
    for placed, filled, price in joined.select("placed", "ts", "price").iter_rows():
        # the session's first regular bar: its close (at its clock), or its open
        first = acme.filter(pl.col("ts") >= strategy.placed[placed]).row(0, named=True)
        at_close = (first["available_at"], first["close"])
        assert (filled, price) == (at_close if fill == "close" else (first["ts"], first["open"]))


def test_a_strategy_interval_the_run_does_not_stream_is_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    params = {**CONFIG.strategy["params"], "interval": "1h"}
    config = dataclasses.replace(CONFIG, strategy={**CONFIG.strategy, "params": params})
    catalog = Catalog()
    try:
        with caplog.at_level("WARNING", logger="pipeline.engine"):
            Engine(config, catalog)
        assert "reads 1h bars, but the run streams 1m, 5m, 15m: it will see none" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING", logger="pipeline.engine"):
            Engine(CONFIG, catalog)
        assert not caplog.text
    finally:
        catalog.close()


class ClosingVectorised(VectorisedMovingAverageCross):
    """The vectorised crossover, buying 1 ACME in each on_session_end (clock: the last step)."""

    def __init__(self) -> None:
        super().__init__(fast=10, slow=30, interval="5m")
        self.clocks: list[dt.datetime] = []

    def on_session_end(self, ctx: Context) -> None:
        assert ctx.clock is not None
        self.clocks.append(ctx.clock)
        ctx.market("ACME", 1)


def test_orders_after_quiet_steps_carry_the_last_steps_clock() -> None:
    strategy = ClosingVectorised()
    run = _run(dataclasses.replace(CONFIG, extended_hours=True), strategy)
    orders = run.results["orders"].filter(pl.col("quantity") == 1)
    assert orders["ts"].to_list() == strategy.clocks
    assert all(t.hour >= 20 for t in strategy.clocks)  # post-market: no base bar to mark
