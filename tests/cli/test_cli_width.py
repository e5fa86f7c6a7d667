"""Every table the CLI prints fits an 80-column terminal (stdout that is not a terminal: 80)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from cli_commands import command_paths
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
CONFIG = REPO / "configs" / "sample.toml"
CASES = REPO / "tests" / "regression" / "cases"
runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def table(*args: str) -> str:
    """Return the stdout of a command printing a table; check that it fits 80 columns."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines
    assert max(len(line) for line in lines) <= 80, result.stdout
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding one run of the sample config."""
    reset_catalog()
    folder = tmp_path_factory.mktemp("runs")
    args = ["run", str(CONFIG), "--root", str(SAMPLE), "--runs", str(folder), "-f", "json"]
    assert runner.invoke(app, args).exit_code == 0
    return folder


def test_run_summary_fits(tmp_path: Path) -> None:
    out = table("run", str(CONFIG), "--root", str(SAMPLE), "--runs", str(tmp_path))
    assert "seconds_per_phase" in out  # the longest value wraps inside its column


def test_run_sessions_fits(tmp_path: Path) -> None:
    args = ["run", str(CONFIG), "--root", str(SAMPLE), "--runs", str(tmp_path), "--sessions"]
    out = table(*args)
    assert "2024-07-10" in out


def test_flow_only_run_fits(tmp_path: Path) -> None:
    config = tmp_path / "flow.toml"
    config.write_text(
        'name = "flow"\nstart = 2024-07-02\nend = 2024-07-03\nsymbols = ["ACME", "BOLT"]\n'
        'streams = ["1m", "5m"]\n'
    )
    out = table("run", str(config), "--root", str(SAMPLE), "--runs", str(tmp_path))
    assert "2024-07-03" in out


def test_runs_list_fits(runs: Path) -> None:
    out = table("runs", "list", "--runs", str(runs))
    [run_id] = [p.name for p in runs.iterdir()]
    head, tail = run_id.split("-")
    assert f"{head}-" in out  # the id folds after its dash
    assert tail in out


def test_runs_show_fits(runs: Path) -> None:
    [run_id] = [p.name for p in runs.iterdir()]
    out = table("runs", "show", run_id[:8], "--runs", str(runs))
    assert "max_drawdown" in out


def test_data_list_fits() -> None:
    table("data", "list", "--root", str(SAMPLE))


@pytest.mark.parametrize(
    "detail", [[], ["--sessions"], ["--gaps"]], ids=["summary", "sessions", "gaps"]
)
def test_data_check_fits(detail: list[str]) -> None:
    table("data", "check", "--root", str(SAMPLE), *detail)


def test_data_import_with_skipped_rows_fits(tmp_path: Path) -> None:
    src = tmp_path / "A_SYMBOL_WITH_A_LONG_NAME.csv"
    src.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-07-01 09:31:00,10.0,10.5,9.9,10.2,100\n"
        "2024-07-01 09:32:00,10.2,10.0,10.1,10.3,200\n"
    )
    root = tmp_path / "a folder with a long name" / "and another one" / "store"
    args = ["-i", "1m", "--tz", "UTC", "--stamp", "open", "--skip-invalid", "--root", str(root)]
    out = table("data", "import", str(src), *args)
    assert "ohlc_order" in out


def test_data_sample_fits(tmp_path: Path) -> None:
    table("data", "sample", "--root", str(tmp_path))


def test_sql_with_many_columns_leaves_some_out_and_names_them() -> None:
    columns = ", ".join(f"close * {i} AS column_number_{i}" for i in range(12))
    out = table("sql", f"SELECT *, {columns} FROM bars_1m LIMIT 5", "--root", str(SAMPLE))
    assert "more column(s)" in out
    assert "column_number_11" in out  # named below the table
    full = runner.invoke(app, ["sql", f"SELECT *, {columns} FROM bars_1m LIMIT 5", "-f", "json"])
    assert len(json.loads(full.stdout)[0]) == 7 + 12


def test_sql_with_long_text_folds() -> None:
    text = "word " * 60
    out = table("sql", f"SELECT 'ACME' AS symbol, '{text}' AS note, 1.5 AS x")
    assert "note" in out


def test_query_list_and_run_fit() -> None:
    table("query")
    table("query", "gaps", "-p", "interval=1m", "--root", str(SAMPLE))


def fits(text: str) -> list[str]:
    """Return the lines of `text`; check that there are some and each fits 80 columns."""
    lines = text.splitlines()
    assert lines
    assert [line for line in lines if len(line) > 80] == []
    return lines


def test_regress_ok_run_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # case configs name their store relative to the repository root
    assert table("regress", "early_close", "ma_cross").splitlines() == [
        "ok    early_close",
        "ok    ma_cross",
    ]


def test_regress_failing_run_with_a_diff_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = tmp_path / "a folder with a long name" / "and another one to pass 80" / "cases"
    shutil.copytree(CASES / "ma_cross", cases / "ma_cross")
    config = cases / "ma_cross" / "config.toml"
    config.write_text(config.read_text().replace("fast = 10", "fast = 7"))
    (cases / "ma_cross" / "summary.json").unlink()
    assert len(f"FAIL  ma_cross ({cases / 'ma_cross'})") > 80
    monkeypatch.chdir(REPO)
    result = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert result.exit_code == 1
    lines = fits(result.stdout)
    assert lines[0] == "FAIL  ma_cross"
    assert "  no golden summary.json" in lines
    assert "trades: 6 appeared, 6 vanished" in result.stdout
    assert any(line.endswith("pipeline regress ma_cross --update") for line in lines)
    assert "... and 5 more (--format json shows all)" in result.stdout  # fills cut at 20 rows
    update = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert update.exit_code == 0, update.stderr
    assert fits(update.stdout)[0] == "updated ma_cross"


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "pipeline")
def test_help_fits(path: tuple[str, ...]) -> None:
    table(*path, "--help")


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "pipeline")
def test_help_lines_are_not_rewrapped(path: tuple[str, ...]) -> None:
    # Rich help keeps a docstring's line breaks and wraps longer lines at 78 columns,
    # which leaves a word alone on a line: keep each line within 78 characters.
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    lines = (command.help or "").splitlines()
    assert [line for line in lines if len(line) > 78] == []
