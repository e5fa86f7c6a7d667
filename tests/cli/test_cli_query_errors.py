"""``pipeline query``: unreadable and clashing saved queries, repeated parameters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_commands import one_line_error
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def queries(tmp_path: Path) -> Path:
    folder = tmp_path / "queries"
    shutil.copytree(REPO / "queries", folder)
    return folder


def test_a_saved_query_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    folder = queries(tmp_path)
    (folder / "latin.sql").write_bytes(b"-- name: latin\n-- description: caf\xe9\nSELECT 1\n")

    result = runner.invoke(app, ["query", "--queries", str(folder)])

    one_line_error(result, "latin.sql", "not UTF-8")


def test_two_saved_queries_with_one_name_are_both_named(tmp_path: Path) -> None:
    folder = queries(tmp_path)
    shutil.copy(folder / "gaps.sql", folder / "gaps_copy.sql")

    result = runner.invoke(app, ["query", "gaps", "--queries", str(folder)])

    one_line_error(result, "gaps.sql", "gaps_copy.sql", "both named 'gaps'")


def test_a_parameter_given_twice_is_refused() -> None:
    result = runner.invoke(
        app, ["query", "gaps", "--param", "interval=1m", "--param", "interval=5m"]
    )

    one_line_error(result, "'interval' is given twice")
