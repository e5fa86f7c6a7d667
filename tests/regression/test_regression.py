"""Regression backtests: every case under cases/ reruns equal to its reviewed goldens.

A failing case prints the readable diff. When a change is meant, rewrite the goldens
with ``pipeline regress NAME --update`` and review ``git diff tests/regression/cases``.
The tests after the parametrized one pin what each case is there to show, check that a
changed parameter is caught, and that updating is reviewable (byte-identical reruns).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from pipeline import regress
from pipeline.check import check_store
from pipeline.cli import app
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
NAMES = regress.discover(CASES)
runner = CliRunner()


def golden(name: str, table: str) -> pl.DataFrame:
    return pl.read_parquet(CASES / name / f"{table}.parquet")


def golden_summary(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((CASES / name / "summary.json").read_text())
    return data


def copy_case(name: str, tmp_path: Path) -> Path:
    """Copy case `name` to tmp_path/cases/<name>; return the new cases folder."""
    cases = tmp_path / "cases"
    shutil.copytree(CASES / name, cases / name)
    return cases


def set_param(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- every case -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_case_reruns_equal_to_its_goldens(name: str) -> None:
    (case,) = regress.load_cases(CASES, [name])
    diff = regress.check(case, REPO)
    if not diff.ok:
        pytest.fail(diff.describe(limit=40), pytrace=False)


def test_there_are_the_cases_the_suite_promises() -> None:
    assert len(NAMES) >= 5
    classes = {str(regress.load_cases(CASES, [n])[0].config.strategy["class"]) for n in NAMES}
    assert {
        "pipeline.strategies:MovingAverageCross",
        "pipeline.strategies:OpeningRangeBreakout",
        "pipeline.strategies:VwapReversion",
        "tests/regression/strategies.py:Bracket",
    } <= classes
    for name in NAMES:
        assert sorted(p.name for p in (CASES / name).iterdir()) == sorted(
            ["config.toml", *regress.GOLDEN_FILES]
        )


@pytest.mark.parametrize("name", NAMES)
def test_quality_golden_equals_the_store_check(name: str) -> None:
    config = regress.load_cases(CASES, [name])[0].config
    checked = check_store(
        Store(REPO / "data"),
        config.calendar,
        intervals=["1m"],
        symbols=config.symbols,
        start=config.start,
        end=config.end,
    ).sessions.drop("early_close")
    assert_frame_equal(golden(name, "quality"), checked.sort("symbol", "interval", "session"))


def test_summary_goldens_hold_no_timings() -> None:
    for name in NAMES:
        assert not regress.TIMING_FIELDS & set(golden_summary(name))


# --- what each case shows --------------------------------------------------------------


def test_early_close_case_ends_the_session_at_1700_utc() -> None:
    equity = golden("early_close", "equity")
    assert equity["session"].to_list() == [dt.date(2024, 7, 3), dt.date(2024, 7, 5)]  # 4th: holiday
    assert equity["ts"][0] == dt.datetime(2024, 7, 3, 17, 0, tzinfo=dt.UTC)
    fills = golden("early_close", "fills").filter(pl.col("ts").dt.date() == dt.date(2024, 7, 3))
    assert fills["ts"].max() == dt.datetime(2024, 7, 3, 16, 59, tzinfo=dt.UTC)
    assert equity["cash"][0] == equity["equity"][0]  # flat at the early close
    quality = golden("early_close", "quality").filter(pl.col("session") == dt.date(2024, 7, 3))
    assert quality["expected"].to_list() == [210, 210]


def test_gaps_case_refuses_tinys_entries_at_the_quality_gate() -> None:
    orders = golden("vwap_gaps_quality_gate", "orders")
    tiny = orders.filter(pl.col("symbol") == "TINY")
    assert tiny.height == 4
    assert (tiny["status"] == "refused").all()
    assert tiny["reason"].str.contains(r"quality \d+\.\d% < min 95\.0%").all()
    assert golden("vwap_gaps_quality_gate", "fills").filter(pl.col("symbol") == "TINY").is_empty()
    quality = golden("vwap_gaps_quality_gate", "quality")
    assert (quality.filter(pl.col("symbol") == "TINY")["quality"] < 30).all()
    bolt = quality.filter(pl.col("symbol") == "BOLT", pl.col("session") == dt.date(2024, 7, 9))
    assert bolt.select("expected", "present").row(0) == (390, 389)


def test_overnight_case_carries_positions_across_sessions() -> None:
    trades = golden("overnight_positions", "trades")
    overnight = trades.filter(pl.col("exit_ts").dt.date() > pl.col("entry_ts").dt.date())
    assert overnight.height == 3
    equity = golden("overnight_positions", "equity")
    assert equity.height == 5
    held = equity.filter(pl.col("equity") != pl.col("cash"))
    assert held["session"].to_list() == [
        dt.date(2024, 6, 26),
        dt.date(2024, 6, 28),
        dt.date(2024, 7, 2),
    ]


def test_limit_stop_case_fills_and_cancels_each_kind() -> None:
    orders = golden("limit_stop_orders", "orders")
    counts = dict(
        orders.group_by(pl.concat_str("kind", "side", "status", separator=" ")).len().rows()
    )
    for kind in ("limit buy", "limit sell", "stop buy", "stop sell"):
        assert counts[f"{kind} filled"] > 0
        assert counts[f"{kind} cancelled"] > 0
    fills = golden("limit_stop_orders", "fills").join(
        orders.select("order_id", "kind", "limit_price", "stop_price"), on="order_id"
    )
    limit_buys = fills.filter(pl.col("kind") == "limit", pl.col("side") == "buy")
    assert (limit_buys["price"] <= limit_buys["limit_price"]).all()
    stop_sells = fills.filter(pl.col("kind") == "stop", pl.col("side") == "sell")
    assert (stop_sells["slippage"] > 0).all()  # slippage on stops, none on limits
    assert (fills.filter(pl.col("kind") == "limit")["slippage"] == 0).all()


def test_headline_figures_are_pinned() -> None:
    figures = {n: golden_summary(n) for n in NAMES}
    assert {n: f["trades"] for n, f in figures.items()} == {
        "early_close": 11,
        "limit_stop_orders": 22,
        "ma_cross": 6,
        "orb_breakout": 3,
        "overnight_positions": 10,
        "vwap_gaps_quality_gate": 11,
    }
    assert figures["ma_cross"]["final_equity"] == pytest.approx(101110.09, rel=1e-9)


# --- catching a change, and updating ---------------------------------------------------


def test_changed_parameter_gives_a_diff_and_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = copy_case("ma_cross", tmp_path)
    set_param(cases / "ma_cross" / "config.toml", "fast = 10", "fast = 7")
    before = snapshot(cases / "ma_cross")
    (case,) = regress.load_cases(cases, ["ma_cross"])
    diff = regress.check(case, REPO)
    assert not diff.ok
    tables = {t.table: t for t in diff.tables}
    assert tables["trades"].appeared
    assert tables["trades"].vanished
    assert {"total_return", "final_equity", "sharpe"} <= {c.name for c in diff.summary}
    final = next(c for c in diff.summary if c.name == "final_equity")
    assert final.delta == pytest.approx(final.new - final.old)
    monkeypatch.chdir(REPO)
    result = runner.invoke(app, ["regress", "ma_cross", "--cases", str(cases)])
    assert result.exit_code == 1
    assert "FAIL  ma_cross" in result.stdout
    assert "trades: 6 appeared, 6 vanished" in result.stdout
    assert "final_equity" in result.stdout
    assert "101110.09 -> " in result.stdout
    assert snapshot(cases / "ma_cross") == before  # a check writes nothing


def test_update_then_rerun_is_clean_and_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = copy_case("orb_breakout", tmp_path)
    folder = cases / "orb_breakout"
    set_param(folder / "config.toml", "minutes = 15", "minutes = 30")
    monkeypatch.chdir(REPO)
    first = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert first.exit_code == 0, first.stderr
    assert "updated orb_breakout" in first.stdout
    assert "summary:" in first.stdout
    written = snapshot(folder)
    assert written != snapshot(CASES / "orb_breakout")
    check = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert check.exit_code == 0, check.stdout
    assert check.stdout.strip() == "ok    orb_breakout"
    again = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert again.exit_code == 0
    assert again.stdout.strip() == "same  orb_breakout"
    assert snapshot(folder) == written


def test_update_writes_the_goldens_of_a_new_case(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    (cases / "fresh").mkdir(parents=True)
    shutil.copy(CASES / "ma_cross" / "config.toml", cases / "fresh" / "config.toml")
    (case,) = regress.load_cases(cases)
    assert regress.check(case, REPO).missing == regress.GOLDEN_FILES
    assert regress.update(case, REPO).missing == regress.GOLDEN_FILES
    assert regress.check(case, REPO).ok
    for name in ("trades", "fills", "orders", "equity", "quality"):
        assert_frame_equal(
            pl.read_parquet(cases / "fresh" / f"{name}.parquet"), golden("ma_cross", name)
        )


def test_pipeline_run_of_a_case_config_gives_its_golden_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the config names its strategy file relative to the repo root
    config = CASES / "limit_stop_orders" / "config.toml"
    result = runner.invoke(app, ["run", str(config), "--runs", str(tmp_path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    assert {k: v for k, v in figures.items() if k not in regress.TIMING_FIELDS} == golden_summary(
        "limit_stop_orders"
    )
    folder = tmp_path / str(figures["run_id"])
    trades = pl.read_parquet(folder / "trades.parquet").drop("run_id")
    assert_frame_equal(trades, golden("limit_stop_orders", "trades"))
