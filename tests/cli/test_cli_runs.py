"""``pipeline run`` writes a run folder; ``runs list/show`` and ``sql --run`` read it back."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app
from pipeline.results import IDENTICAL_TABLES

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
CONFIG = REPO / "configs" / "sample.toml"
FILES = [
    "config.json",
    "equity.parquet",
    "equity.png",
    "equity_sessions.parquet",
    "fills.parquet",
    "orders.parquet",
    "positions.parquet",
    "report.html",
    "sessions.parquet",
    "summary.json",
    "trades.parquet",
]
runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def run_sample(runs: Path) -> dict[str, object]:
    result = runner.invoke(
        app, ["run", str(CONFIG), "--root", str(SAMPLE), "--runs", str(runs), "-f", "json"]
    )
    assert result.exit_code == 0, result.stderr
    figures: dict[str, object] = json.loads(result.stdout)
    return figures


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One run of the sample config, shared: (runs folder, summary)."""
    reset_catalog()
    runs = tmp_path_factory.mktemp("runs")
    return runs, run_sample(runs)


def test_run_writes_the_folder_and_prints_the_summary(
    sample_run: tuple[Path, dict[str, object]],
) -> None:
    runs, figures = sample_run
    folder = runs / str(figures["run_id"])
    assert sorted(p.name for p in folder.iterdir()) == FILES
    assert json.loads((folder / "summary.json").read_text()) == figures
    assert figures["sessions"] == 6
    assert figures["fill"] == "next_open"
    assert figures["fill_at_close"] is False
    assert figures["trades"] == 9
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{8}", str(figures["run_id"]))
    assert json.loads((folder / "config.json").read_text())["name"] == "sample"


def test_png_is_a_png_and_the_html_holds_the_summary(
    sample_run: tuple[Path, dict[str, object]],
) -> None:
    runs, figures = sample_run
    folder = runs / str(figures["run_id"])
    assert (folder / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "report.html").read_text()
    assert str(figures["run_id"]) in page
    assert "total_return" in page
    assert "max_drawdown" in page
    assert "data:image/png;base64," in page


def test_rerun_gives_the_same_id_and_byte_identical_tables(
    sample_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    runs, figures = sample_run
    again = run_sample(tmp_path)
    assert again["run_id"] == figures["run_id"]
    first, second = runs / str(figures["run_id"]), tmp_path / str(again["run_id"])
    for name in IDENTICAL_TABLES:
        path = f"{name}.parquet"
        assert (first / path).read_bytes() == (second / path).read_bytes(), name
    assert (first / "config.json").read_bytes() == (second / "config.json").read_bytes()


def test_runs_list_and_show(sample_run: tuple[Path, dict[str, object]]) -> None:
    runs, figures = sample_run
    listed = runner.invoke(app, ["runs", "list", "--runs", str(runs), "-f", "json"])
    assert listed.exit_code == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [figures["run_id"]]
    shown = runner.invoke(app, ["runs", "show", str(figures["run_id"])[:8], "--runs", str(runs)])
    assert shown.exit_code == 0, shown.stderr
    assert "total_return" in shown.stdout
    assert "max_drawdown" in shown.stdout


def test_sql_over_a_runs_tables(sample_run: tuple[Path, dict[str, object]]) -> None:
    runs, figures = sample_run
    query = "SELECT count(*) AS n, count(DISTINCT run_id) AS ids FROM trades"
    result = runner.invoke(
        app, ["sql", "--run", str(figures["run_id"]), "--runs", str(runs), "-f", "json", query]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": figures["trades"], "ids": 1}]
    full = "SELECT count(*) AS n FROM equity_sessions"
    result = runner.invoke(
        app, ["sql", "--run", str(figures["run_id"]), "--runs", str(runs), "-f", "json", full]
    )
    assert json.loads(result.stdout) == [{"n": 6}]


def test_sql_over_a_run_shows_the_brokers_columns(
    sample_run: tuple[Path, dict[str, object]],
) -> None:
    runs, figures = sample_run
    query = (
        "SELECT (SELECT sum(slippage) FROM fills) AS slippage,"
        " (SELECT bool_or(at_close) FROM fills) AS at_close,"
        " (SELECT count(filled_quantity) FROM orders) AS filled,"
        " (SELECT count(side) - count(commission) FROM trades) AS trades,"
        " (SELECT count(realised_pnl) - count(unrealised_pnl) FROM positions) AS positions"
    )
    result = runner.invoke(
        app, ["sql", "--run", str(figures["run_id"]), "--runs", str(runs), "-f", "json", query]
    )
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["slippage"] == pytest.approx(figures["slippage"])
    assert row["at_close"] is False
    assert row["filled"] > 0
    assert (row["trades"], row["positions"]) == (0, 0)


def test_sql_over_an_old_run_folder_without_the_columns_says_to_rerun(
    sample_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    runs, figures = sample_run
    old = tmp_path / "runs"
    shutil.copytree(runs / str(figures["run_id"]), old / str(figures["run_id"]))
    fills = old / str(figures["run_id"]) / "fills.parquet"
    pl.read_parquet(fills).drop("slippage", "at_close").write_parquet(fills)
    result = runner.invoke(
        app, ["sql", "--run", str(figures["run_id"]), "--runs", str(old), "SELECT 1"]
    )
    assert result.exit_code == 1
    assert "fills.parquet has no column slippage, at_close" in result.stderr
    assert "Run its config again" in result.stderr


@pytest.mark.parametrize("command", [["runs", "show"], ["sql", "SELECT 1", "--run"]])
def test_unknown_run_id_is_one_line_error(
    command: list[str], sample_run: tuple[Path, dict[str, object]]
) -> None:
    runs, figures = sample_run
    wrong = str(figures["run_id"])[:-1] + "x"
    result = runner.invoke(app, [*command, wrong, "--runs", str(runs)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"did you mean '{figures['run_id']}'" in result.stderr


def test_a_changed_store_changes_the_run_id(
    sample_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    _, figures = sample_run
    store = tmp_path / "data"
    shutil.copytree(SAMPLE, store)
    next(store.glob("bars/interval=1d/symbol=TINY/year=2023/*.parquet")).unlink()
    result = runner.invoke(
        app,
        ["run", str(CONFIG), "--root", str(store), "--runs", str(tmp_path / "runs"), "-f", "json"],
    )
    assert result.exit_code == 0, result.stderr
    changed = json.loads(result.stdout)["run_id"]
    config_part = str(figures["run_id"]).split("-")[0]
    assert changed.startswith(config_part + "-")
    assert changed != figures["run_id"]


def test_runs_show_as_json_and_csv_is_the_summary(
    sample_run: tuple[Path, dict[str, object]],
) -> None:
    runs, figures = sample_run
    args = ["runs", "show", str(figures["run_id"]), "--runs", str(runs)]
    as_json = runner.invoke(app, [*args, "-f", "json"])
    assert json.loads(as_json.stdout) == figures
    as_csv = runner.invoke(app, [*args, "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["figure"] for r in rows] == list(figures)
    values = {r["figure"]: r["value"] for r in rows}
    assert float(values["total_return"]) == figures["total_return"]  # exact, not rounded
    assert json.loads(values["fill_at_close"]) is False
    assert json.loads(values["seconds_per_phase"]) == figures["seconds_per_phase"]


def test_runs_list_as_csv_has_every_column(sample_run: tuple[Path, dict[str, object]]) -> None:
    runs, figures = sample_run
    result = runner.invoke(app, ["runs", "list", "--runs", str(runs), "-f", "csv"])
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["run_id"] == figures["run_id"]
    assert int(row["trades"]) == figures["trades"]
    assert "written" in row


def test_run_prints_only_the_result_on_stdout(tmp_path: Path) -> None:
    args = ["-v", "run", str(CONFIG), "--root", str(SAMPLE), "--runs", str(tmp_path), "-f", "csv"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0] == {"figure": "run_id", "value": rows[0]["value"]}
    assert "SESSION_FLOW" not in result.stdout
    quiet = runner.invoke(app, ["-q", *args[1:]])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_a_vectorised_run_writes_the_event_runs_tables(
    sample_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    # the CLI's progress bar takes the steps between the orders at once: same tables
    text = CONFIG.read_text()
    spec = 'class = "pipeline.vectorised:VectorisedMovingAverageCross"'
    config = tmp_path / "vectorised.toml"
    config.write_text(re.sub(r'(?m)^class = ".*MovingAverageCross"$', spec, text))
    assert spec in config.read_text()
    result = runner.invoke(
        app, ["run", str(config), "--root", str(SAMPLE), "--runs", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.stderr
    (mine,) = (tmp_path / "runs").iterdir()
    runs, figures = sample_run
    theirs = runs / str(figures["run_id"])
    for name in ("orders", "fills", "trades", "positions", "equity"):
        got, want = (pl.read_parquet(d / f"{name}.parquet").drop("run_id") for d in (mine, theirs))
        assert got.height
        assert got.equals(want), name
