"""Summary figures on a tiny hand-checked run, and the run folder's write/read round trip."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest

from pipeline import schema
from pipeline._broker_models import EQUITY, FILLS, ORDERS, POSITIONS, TRADES
from pipeline.config import RunConfig, parse_config
from pipeline.errors import DataNotFoundError
from pipeline.results import list_runs, read_run, summary, write_run
from pipeline.runner import RunReport

CONFIG = parse_config(
    {
        "name": "tiny",
        "start": dt.date(2024, 7, 1),
        "end": dt.date(2024, 7, 2),
        "symbols": ["ACME"],
        "broker": {"cash": 1000, "fill": "close"},
    }
)


def _ts(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 7, day, hour, minute, tzinfo=dt.UTC)


def tiny_results() -> dict[str, pl.DataFrame]:
    """Four bars over two sessions: 1000 -> 1100 (peak) -> 990 (trough) -> 1045."""
    ts = [_ts(1, 14), _ts(1, 15), _ts(2, 14), _ts(2, 15)]
    equity = [1000.0, 1100.0, 990.0, 1045.0]
    cash = [1000.0, 500.0, 990.0, 1045.0]
    peak = [1000.0, 1100.0, 1100.0, 1100.0]
    equity_frame = pl.DataFrame(
        {
            "run_id": "r",
            "ts": ts,
            "cash": cash,
            "equity": equity,
            "drawdown": [e / p - 1 for e, p in zip(equity, peak, strict=True)],
        },
        schema=EQUITY,
    )
    pnl = [100.0, -50.0, 30.0, -20.0]
    trades = pl.DataFrame(
        {
            "run_id": "r",
            "symbol": "ACME",
            "entry_ts": ts,
            "exit_ts": ts,
            "quantity": 1.0,
            "entry_price": 10.0,
            "exit_price": 10.0,
            "pnl": pnl,
            "return": 0.0,
            "bars_held": 1,
            "side": "long",
            "commission": 0.0,
        },
        schema=TRADES,
    )
    fills = pl.DataFrame(
        {
            "run_id": "r",
            "order_id": [1, 2],
            "symbol": "ACME",
            "ts": ts[:2],
            "side": ["buy", "sell"],
            "quantity": [50.0, 50.0],
            "price": [10.0, 12.0],
            "commission": [1.0, 1.5],
            "slippage": 0.0,
            "at_close": True,
        },
        schema=FILLS,
    )
    return {
        "orders": schema.empty(ORDERS),
        "fills": fills,
        "trades": trades,
        "positions": schema.empty(POSITIONS),
        "equity": equity_frame,
    }


def tiny_report() -> RunReport:
    sessions = pl.DataFrame(
        {"session": [dt.date(2024, 7, 1), dt.date(2024, 7, 2)], "session_bars": [2, 2]}
    )
    return RunReport("r", sessions, 0.5)


def phases() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": "r",
            "session": [dt.date(2024, 7, 1), dt.date(2024, 7, 1), dt.date(2024, 7, 2)],
            "phase": ["2.1", "5", "5"],
            "bars": [0, 2, 2],
            "seconds": [0.25, 0.5, 0.25],
            "quality": 100.0,
        },
        schema=schema.SESSIONS,
    )


def tiny_summary(config: RunConfig = CONFIG) -> dict[str, object]:
    return summary(tiny_results(), tiny_report(), config, run_id="abc-123", sessions=phases())


def test_summary_returns_and_drawdown_by_hand() -> None:
    figures = tiny_summary()
    assert figures["total_return"] == pytest.approx(0.045)
    assert figures["final_equity"] == 1045.0
    assert figures["max_drawdown"] == pytest.approx(-0.1)
    assert figures["max_drawdown_peak"] == "2024-07-01T15:00:00+00:00"
    assert figures["max_drawdown_trough"] == "2024-07-02T14:00:00+00:00"
    days = 25 / 24  # 2024-07-01 14:00 to 2024-07-02 15:00
    assert figures["cagr"] == pytest.approx(1.045 ** (365.25 / days) - 1, rel=1e-9)


def test_summary_trade_figures_by_hand() -> None:
    figures = tiny_summary()
    assert figures["trades"] == 4
    assert figures["win_rate"] == 0.5
    assert figures["profit_factor"] == pytest.approx(130 / 70)
    assert figures["avg_win"] == 65.0
    assert figures["avg_loss"] == -35.0
    assert figures["fees"] == 2.5
    assert figures["traded_notional"] == 1100.0
    assert figures["turnover"] == pytest.approx(1100 / 1033.75)


def test_summary_session_returns_exposure_and_run_facts() -> None:
    figures = tiny_summary()
    # Session closes 1100 and 1045 against a start of 1000: +10%, -5%.
    r = [0.1, 1045 / 1100 - 1]
    mean, std = sum(r) / 2, math.sqrt(sum((x - sum(r) / 2) ** 2 for x in r))
    assert figures["volatility"] == pytest.approx(std * math.sqrt(252))
    assert figures["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    downside = math.sqrt(r[1] ** 2 / 2)
    assert figures["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert figures["exposure"] == 0.25  # one of four bars holds a position
    assert figures["sessions"] == 2
    assert figures["bars_processed"] == 4
    assert figures["seconds_per_phase"] == {"2.1": 0.25, "5": 0.75}
    assert figures["fill"] == "close"
    assert figures["fill_at_close"] is True
    assert figures["run_id"] == "abc-123"


def test_summary_without_trades_or_losses_gives_none_not_nan() -> None:
    results = tiny_results()
    results["trades"] = schema.empty(TRADES)
    figures = summary(results, tiny_report(), CONFIG)
    assert figures["trades"] == 0
    assert figures["win_rate"] is None
    assert figures["profit_factor"] is None
    assert figures["avg_win"] is None


def test_one_session_gives_no_annualised_figures() -> None:
    results = tiny_results()
    results["equity"] = results["equity"].head(2)  # the first session alone: +10%
    figures = summary(results, tiny_report(), CONFIG)
    assert figures["total_return"] == pytest.approx(0.1)
    for name in ("cagr", "volatility", "sharpe", "sortino"):
        assert figures[name] is None, name


def test_write_then_read_and_list_a_run(tmp_path: Path) -> None:
    figures = tiny_summary()
    folder = write_run(tmp_path, CONFIG, tiny_results(), figures, phases(), chart=False)
    assert folder == tmp_path / "abc-123"
    assert json.loads((folder / "summary.json").read_text()) == figures
    run = read_run(tmp_path, "abc")
    assert run.config["name"] == "tiny"
    assert run.table("trades")["run_id"].unique().to_list() == ["abc-123"]
    sessions = run.table("equity_sessions")
    assert sessions["equity"].to_list() == [1100.0, 1045.0]
    assert sessions["session_return"].to_list() == pytest.approx([0.1, 1045 / 1100 - 1])
    assert list_runs(tmp_path)["run_id"].to_list() == ["abc-123"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rewriting_a_run_replaces_its_folder(tmp_path: Path) -> None:
    figures = tiny_summary()
    folder = write_run(tmp_path, CONFIG, tiny_results(), figures, phases(), chart=False)
    (folder / "stale.txt").write_text("old")
    write_run(tmp_path, CONFIG, tiny_results(), figures, phases(), chart=False)
    assert not (folder / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc-123"]


def test_unknown_run_id_names_the_closest(tmp_path: Path) -> None:
    write_run(tmp_path, CONFIG, tiny_results(), tiny_summary(), phases(), chart=False)
    with pytest.raises(DataNotFoundError, match="did you mean 'abc-123'"):
        read_run(tmp_path, "abc-124")
    with pytest.raises(DataNotFoundError, match="holds no runs"):
        read_run(tmp_path / "empty", "abc")
