"""The strategy API: BarsView views, Context visibility, load_strategy, the crossover example."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from pipeline import schema
from pipeline.broker import Broker, BrokerConfig
from pipeline.catalog import Catalog
from pipeline.engine import strategy_from_config
from pipeline.errors import ConfigError
from pipeline.strategies import MovingAverageCross, OpeningRangeBreakout, VwapReversion
from pipeline.strategy import BarsView, Context, SessionColumns, Strategy, load_strategy

OPEN = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _session(closes: list[float], symbols: tuple[str, ...] = ("ACME",)) -> pl.DataFrame:
    """1m bars of `symbols` (same closes), sorted by (available_at, symbol)."""
    rows = []
    for i, close in enumerate(closes):
        ts = OPEN + i * MINUTE
        for symbol in symbols:
            prices = dict.fromkeys(("open", "high", "low", "close"), close)
            rows.append(
                {"symbol": symbol, "interval": "1m", "session": ts.date(), "ts": ts, **prices}
                | {"volume": 100.0, "ts_close": ts + MINUTE, "available_at": ts + MINUTE}
                | {"n_src": 1, "complete": True}
            )
    frame = pl.DataFrame(rows, schema=schema.CATALOG_BARS)
    return frame.with_columns(pl.col("symbol").cast(schema.symbol_dtype(symbols)))


@pytest.fixture
def catalog() -> Any:
    cat = Catalog()
    cat.set_universe(["ACME", "BOLT"])
    yield cat
    cat.close()


# --- BarsView -----------------------------------------------------------------------


def test_bars_view_columns_are_numpy_views_of_the_frame() -> None:
    table = _session([10.0, 11.0, 12.0, 13.0], ("ACME", "BOLT"))
    step = table.slice(2, 4)  # a zero-copy slice, as the stream gives
    view = BarsView(step)
    for name in ("close", "open", "volume", "ts", "available_at"):
        column = getattr(view, name)
        assert isinstance(column, np.ndarray)
        assert np.shares_memory(column, step.get_column(name).to_numpy())
        assert np.shares_memory(column, table.get_column(name).to_numpy())
    assert view.close is view.close  # read once, then cached
    assert view.df is step
    assert len(view) == 4


def test_bars_view_codes_and_rows_without_precomputed_codes() -> None:
    step = _session([10.0, 11.0], ("ACME", "BOLT"))
    view = BarsView(step)
    assert view.universe == ("ACME", "BOLT")
    assert view.symbols() == ["ACME", "BOLT", "ACME", "BOLT"]
    assert view.intervals == ("1m",)
    assert view.interval.tolist() == [0, 0, 0, 0]
    assert view.rows(symbol="BOLT").tolist() == [1, 3]
    assert view.rows(interval="5m").tolist() == []


def test_bars_view_uses_given_codes() -> None:
    step = _session([10.0], ("ACME", "BOLT"))
    codes = np.array([1, 0])
    view = BarsView(step, symbol_codes=codes, universe=("X", "Y"), interval_codes=codes[:0])
    assert view.symbol is codes
    assert view.symbols() == ["Y", "X"]


def test_bars_view_values_are_python_lists_of_the_window() -> None:
    table = _session([10.0, 11.0, 12.0], ("ACME", "BOLT"))
    codes = table.get_column("symbol").to_physical().to_numpy()
    columns = SessionColumns(table, codes, np.zeros(6, np.int64), ("ACME", "BOLT"), ("1m",))
    whole = BarsView.window(columns, 2, 5)
    picked = BarsView.window(columns, 2, 5, np.array([0, 2]))
    for view, rows in ((whole, [2, 3, 4]), (picked, [2, 4])):
        expected = table[rows]
        assert view.values("close") == expected.get_column("close").to_list()
        assert view.values("ts") == expected.get_column("ts").to_list()  # tz-aware
        assert view.symbols() == expected.get_column("symbol").to_list()
        assert view.values("close") == view.close.tolist() == view.df["close"].to_list()
    assert BarsView(table.slice(2, 3)).values("symbol") == ["ACME", "BOLT", "ACME"]
    with pytest.raises(AttributeError, match="no column 'vwap'.*close"):
        whole.values("vwap")


def test_bars_view_unknown_column_names_the_columns() -> None:
    with pytest.raises(AttributeError, match="no column 'vwap'.*close"):
        _ = BarsView(_session([10.0])).vwap


# --- Context ------------------------------------------------------------------------


def test_context_shows_only_rows_visible_at_its_clock(catalog: Catalog) -> None:
    catalog.load_session(_session([10.0, 11.0, 12.0, 13.0]))
    clock = OPEN + 2 * MINUTE
    catalog.reveal(clock)
    ctx = Context(catalog, Broker(BrokerConfig()), base="1m")
    ctx.clock = clock
    bars = ctx.bars("ACME", "1m")
    assert bars["close"].to_list() == [10.0, 11.0]
    assert (bars["available_at"] <= clock).all()
    assert ctx.latest("ACME", "1m")["close"] == 11.0  # type: ignore[index]
    quote = ctx.quote("ACME")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.ts) == (11.0, 11.0, clock)
    assert ctx.quote("BOLT") is None


def test_context_refuses_an_appended_row_from_the_future(catalog: Catalog) -> None:
    catalog.load_session(_session([10.0, 11.0]))
    clock = OPEN + MINUTE
    catalog.reveal(clock)
    later = OPEN + 5 * MINUTE
    bar = {"ts": later, "open": 99.0, "high": 99.0, "low": 99.0, "close": 99.0, "volume": 1.0}
    catalog.append_bar("ACME", "1m", bar)
    assert 99.0 in catalog.get_bars("ACME", "1m")["close"].to_list()  # the catalog shows it
    ctx = Context(catalog, Broker(BrokerConfig()), base="1m")
    ctx.clock = clock
    assert ctx.bars("ACME", "1m")["close"].to_list() == [10.0]
    assert ctx.bars("ACME", "1m", n=5)["close"].to_list() == [10.0]
    assert ctx.latest("ACME", "1m")["close"] == 10.0  # type: ignore[index]


def test_context_passes_orders_to_the_broker_after_the_gate(catalog: Catalog) -> None:
    broker = Broker(BrokerConfig(cash=1000.0))
    gated: list[str] = []
    ctx = Context(catalog, broker, base="1m", before_order=gated.append)
    bars = _session([10.0]).select("symbol", "ts", "open", "high", "low", "close", "volume")
    broker.on_bars(OPEN + MINUTE, bars.with_columns(pl.col("symbol").cast(pl.String)))
    order = ctx.target_percent("ACME", 0.5)
    assert order is not None
    assert broker.order(order).quantity == 50
    ctx.cancel(order)
    assert broker.order(order).status == "cancelled"
    assert gated == ["ACME"]  # the gate learns the symbol ordered
    ctx.target_quantity("ACME", 0)  # only reduces (nothing held, nothing working): no gate
    assert gated == ["ACME"]
    assert (ctx.cash, ctx.equity, ctx.position("ACME")) == (1000.0, 1000.0, 0.0)


# --- load_strategy ------------------------------------------------------------------


def test_load_strategy_builds_the_class_with_params() -> None:
    strategy = load_strategy("pipeline.strategies:MovingAverageCross", {"fast": 3, "slow": 7})
    assert isinstance(strategy, MovingAverageCross)
    assert (strategy.fast, strategy.slow, strategy.params["interval"]) == (3, 7, "1m")


def test_load_strategy_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from pipeline.strategy import Strategy\n"
        "class Mine(Strategy):\n"
        "    def __init__(self, k=1):\n"
        "        super().__init__(k=k)\n"
    )
    strategy = load_strategy(f"{path}:Mine", {"k": 2})
    assert strategy.params == {"k": 2}


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("MovingAverageCross", {}, "not 'module:Class'"),
        ("no_such_pkg.strats:X", {}, "tried to import module 'no_such_pkg.strats'"),
        ("missing/dir/strat.py:X", {}, "tried the file '.*strat.py', which does not exist"),
        ("pipeline.strategies:MovingAverageCros", {}, "did you mean 'MovingAverageCross'"),
        ("pipeline.broker:Broker", {}, "not a subclass of pipeline.strategy.Strategy"),
        ("pipeline.strategies:MovingAverageCross", {"fats": 3}, "does not take params.*fast"),
        ("pipeline.strategies:MovingAverageCross", {"fast": 30}, "1 <= fast < slow"),
    ],
)
def test_load_strategy_errors_name_what_was_tried(
    spec: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_strategy(spec, params)


def test_strategy_section_needs_a_class() -> None:
    with pytest.raises(ConfigError, match="no 'class'"):
        strategy_from_config({"params": {}})
    with pytest.raises(ConfigError, match="unknown keys \\['clas'\\]"):
        strategy_from_config({"clas": "x:Y"})


def test_base_strategy_hooks_do_nothing() -> None:
    strategy = Strategy(a=1)
    ctx: Any = None
    strategy.on_session_start(ctx)
    strategy.on_bars(ctx, BarsView(_session([1.0])))
    strategy.on_session_end(ctx)
    assert strategy.params == {"a": 1}


# --- the intraday examples: the session's hours ---------------------------------------


class _Hours:
    """A stub context with only what ``on_session_start`` reads."""

    def __init__(self, opened: dt.datetime | None, closed: dt.datetime | None) -> None:
        self.session = None if opened is None else opened.date()
        self.session_open, self.session_close, self.base = opened, closed, "1m"


def test_intraday_strategies_take_the_sessions_hours_from_the_context() -> None:
    # a Saturday, in no exchange calendar: the hours come from ctx, not a calendar
    opened = dt.datetime(2024, 7, 6, 13, 30, tzinfo=dt.UTC)
    closed = opened.replace(hour=17)
    for strategy in (OpeningRangeBreakout(minutes=15), VwapReversion()):
        strategy.on_session_start(_Hours(opened, closed))  # type: ignore[arg-type]
        assert strategy._flat_at == closed - MINUTE
    orb = OpeningRangeBreakout(minutes=15)
    orb.on_session_start(_Hours(opened, closed))  # type: ignore[arg-type]
    assert orb._range_end == orb._open + 15 * 60_000_000


def test_intraday_strategy_before_a_session_waits() -> None:
    strategy = VwapReversion()
    strategy.on_session_start(_Hours(None, None))  # type: ignore[arg-type]
    assert strategy._flat_at is None


@pytest.mark.parametrize("cls", [OpeningRangeBreakout, VwapReversion])
def test_intraday_calendar_param_is_deprecated_and_ignored(cls: type[Strategy]) -> None:
    assert "calendar" not in cls().params
    with pytest.warns(DeprecationWarning, match="'calendar' parameter is deprecated"):
        strategy = cls(calendar="XNYS")
    assert strategy.params["calendar"] == "XNYS"  # kept, so the run's params show it


# --- the crossover example ----------------------------------------------------------


class _Orders:
    """A stub context recording the crossover's orders."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.held = 0.0

    def target_percent(self, symbol: str, percent: float) -> None:
        self.calls.append(("percent", symbol, percent))
        self.held = 1.0

    def target_quantity(self, symbol: str, quantity: float) -> None:
        self.calls.append(("quantity", symbol, quantity))
        self.held = quantity

    def position(self, _symbol: str) -> float:
        return self.held


def _feed(strategy: MovingAverageCross, closes: list[float]) -> list[tuple[int, str]]:
    ctx: Any = _Orders()
    table = _session(closes)
    seen = []
    for i in range(table.height):
        before = len(ctx.calls)
        strategy.on_bars(ctx, BarsView(table.slice(i, 1)))
        seen += [(i, call[0]) for call in ctx.calls[before:]]
    return seen


def test_crossover_buys_on_the_cross_up_and_sells_on_the_cross_down() -> None:
    closes = [10.0, 9.0, 8.0, 9.0, 12.0, 13.0, 9.0, 5.0]
    # SMA2 vs SMA3 from bar 2: below at 2 and 3, above at 4 (cross up), below at 6 (down)
    assert _feed(MovingAverageCross(fast=2, slow=3), closes) == [(4, "percent"), (6, "quantity")]


def test_crossover_tie_breaks_a_cross() -> None:
    # SMA1 vs SMA3: below at 2, tie at 3 (8.5 == mean(9, 8, 8.5)), above at 4: no cross
    closes = [10.0, 9.0, 8.0, 8.5, 12.0]
    assert _feed(MovingAverageCross(fast=1, slow=3), closes) == []


def test_crossover_needs_slow_bars_before_its_first_signal() -> None:
    closes = [1.0, 2.0, 3.0, 4.0]  # fast above slow as soon as both exist: no cross
    assert _feed(MovingAverageCross(fast=1, slow=2), closes) == []


def test_crossover_ignores_other_intervals_and_symbols() -> None:
    strategy = MovingAverageCross(fast=2, slow=3, interval="5m", symbol="BOLT")
    assert _feed(strategy, [10.0, 9.0, 8.0, 9.0, 12.0]) == []
    assert _feed(MovingAverageCross(2, 3, symbol="BOLT"), [10.0, 9.0, 8.0, 9.0, 12.0]) == []
