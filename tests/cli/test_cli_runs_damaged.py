"""Damaged run folders: `runs list` leaves them out; `runs show`, `sql --run` name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_commands import one_line_error
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

runner = CliRunner()
GOOD = "6c0deb1099c90cc6-00000000"
BROKEN = "6c0deb1099c90cc6-11111111"
SUMMARY = {
    "run_id": GOOD,
    "name": "sample",
    "start": "2024-07-02",
    "end": "2024-07-10",
    "total_return": -0.02,
    "max_drawdown": -0.06,
    "trades": 9,
}


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def run_folder(runs: Path, rid: str, summary: str | None = None) -> Path:
    folder = runs / rid
    folder.mkdir(parents=True)
    text = json.dumps({**SUMMARY, "run_id": rid}) if summary is None else summary
    (folder / "summary.json").write_text(text, encoding="utf-8")
    (folder / "config.json").write_text('{"name": "sample"}', encoding="utf-8")
    return folder


BAD_SUMMARIES = ["{not json", "[1, 2]", json.dumps({**SUMMARY, "trades": "many"})]


@pytest.mark.parametrize("summary", BAD_SUMMARIES)
def test_runs_list_leaves_out_a_damaged_summary_and_lists_the_others(
    tmp_path: Path, summary: str
) -> None:
    run_folder(tmp_path, GOOD)
    run_folder(tmp_path, BROKEN, summary)

    result = runner.invoke(app, ["runs", "list", "--runs", str(tmp_path), "-f", "json"])

    assert result.exit_code == 0, result.stderr
    assert [r["run_id"] for r in json.loads(result.stdout)] == [GOOD]
    assert BROKEN in result.stderr


@pytest.mark.parametrize("summary", BAD_SUMMARIES)
def test_runs_show_of_a_damaged_summary_names_the_file(tmp_path: Path, summary: str) -> None:
    run_folder(tmp_path, BROKEN, summary)

    result = runner.invoke(app, ["runs", "show", BROKEN, "--runs", str(tmp_path)])

    one_line_error(result, BROKEN, "summary.json", "Run its config again")


def test_a_run_folder_without_config_json_is_left_out_and_named_by_show(tmp_path: Path) -> None:
    run_folder(tmp_path, GOOD)
    (run_folder(tmp_path, BROKEN) / "config.json").unlink()

    listed = runner.invoke(app, ["runs", "list", "--runs", str(tmp_path), "-f", "json"])
    shown = runner.invoke(app, ["runs", "show", BROKEN, "--runs", str(tmp_path)])

    assert [r["run_id"] for r in json.loads(listed.stdout)] == [GOOD]
    one_line_error(shown, "config.json is missing")


def test_sql_over_a_run_with_a_missing_table_names_the_file(tmp_path: Path) -> None:
    run_folder(tmp_path, BROKEN)

    result = runner.invoke(app, ["sql", "--runs", str(tmp_path), "--run", "6c", "SELECT 1"])

    one_line_error(result, "orders.parquet is missing", "Run its config again")


def test_sql_over_a_run_with_a_truncated_table_names_the_file(tmp_path: Path) -> None:
    folder = run_folder(tmp_path, BROKEN)
    (folder / "orders.parquet").write_bytes(b"PAR1\x00\x01")

    result = runner.invoke(app, ["sql", "--runs", str(tmp_path), "--run", "6c", "SELECT 1"])

    one_line_error(result, "orders.parquet cannot be read", "Run its config again")
