"""``pipeline sql``: results a frame cannot hold or print are one-line errors, not tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def sql(statement: str, *options: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["sql", statement, "--root", str(SAMPLE), *options])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *parts: str) -> None:
    assert code == 1, stderr
    assert stderr.startswith("error: ")
    assert len(stderr.strip().splitlines()) == 1, stderr
    for part in parts:
        assert part in stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_duplicate_column_names_ask_for_aliases(fmt: str) -> None:
    code, _, stderr = sql("SELECT 1 AS a, 2 AS a, 3 AS b", "-f", fmt)
    assert_one_line_error(code, stderr, "duplicate column names a:", "alias")


def test_an_interval_column_says_to_cast_it() -> None:
    code, _, stderr = sql("SELECT max(ts) - min(ts) AS span FROM bars_1m")
    assert_one_line_error(code, stderr, "span has DuckDB type INTERVAL", "epoch(")


def test_an_interval_nested_in_a_list_or_struct_is_refused() -> None:
    for statement in ["SELECT [INTERVAL 1 DAY] AS l", "SELECT {'k': INTERVAL 1 DAY} AS s"]:
        code, _, stderr = sql(statement)
        assert_one_line_error(code, stderr, "INTERVAL", "cannot be returned")


def test_a_union_column_says_how_to_take_a_member() -> None:
    code, _, stderr = sql("SELECT union_value(k := 1) AS u")
    assert_one_line_error(code, stderr, "u has DuckDB type UNION", "union_extract(u")


@pytest.mark.parametrize(
    "value", ["'inf'::TIMESTAMP", "'-infinity'::TIMESTAMPTZ", "'infinity'::DATE"]
)
def test_an_infinite_date_or_time_says_to_filter_it(value: str) -> None:
    for fmt in ["table", "json", "csv"]:
        code, _, stderr = sql(f"SELECT {value} AS t", "-f", fmt)
        assert_one_line_error(code, stderr, "Column t holds a date or time", "isfinite(t)")


def test_an_infinite_time_inside_a_list_is_refused() -> None:
    code, _, stderr = sql("SELECT ['infinity'::TIMESTAMP] AS l")
    assert_one_line_error(code, stderr, "Column l holds a date or time")


def test_a_date_after_the_year_9999_prints_as_a_table() -> None:
    code, stdout, stderr = sql("SELECT DATE '20000-01-02' AS d, NULL::DATE AS e")
    assert code == 0, stderr
    assert "+20000-01-02" in stdout


@pytest.mark.parametrize("value", ["'x'::BLOB", "'101'::BITSTRING", "['x'::BLOB]"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_binary_columns_as_json_or_csv_say_to_cast_them(value: str, fmt: str) -> None:
    code, _, stderr = sql(f"SELECT {value} AS b", "-f", fmt)
    assert_one_line_error(code, stderr, "Column b holds binary data", "hex(b)")


def test_a_binary_column_still_prints_as_a_table() -> None:
    code, stdout, stderr = sql("SELECT 'x'::BLOB AS b")
    assert code == 0, stderr
    assert "b'x'" in stdout


def test_the_cast_suggested_for_an_interval_works() -> None:
    code, stdout, stderr = sql("SELECT epoch(max(ts) - min(ts)) AS span FROM bars_1m", "-f", "json")
    assert code == 0, stderr
    assert json.loads(stdout)[0]["span"] > 0


def test_refused_statements_name_their_own_keyword_without_the_library_api() -> None:
    code, _, stderr = sql("INSTALL httpfs")
    assert_one_line_error(code, stderr, "INSTALL statements are refused")
    code, _, stderr = sql("INSERT INTO trades SELECT * FROM trades")
    assert_one_line_error(code, stderr, "INSERT statements are refused")
    code, _, stderr = sql("SELECT 1; SELECT 2")
    assert_one_line_error(code, stderr, "exactly one statement")
    assert "catalog.sql()" not in stderr


def test_an_unknown_table_lists_the_store_views_too() -> None:
    code, _, stderr = sql("SELECT * FROM nope")
    assert_one_line_error(code, stderr, "Tables: bars, bars_1d, bars_1m, calendar_sessions")


def test_json_writes_nan_and_infinite_floats_as_null_csv_and_table_spell_them() -> None:
    statement = "SELECT 'nan'::DOUBLE a, '-inf'::DOUBLE b, NULL::DOUBLE c, 1.5::DOUBLE d"
    code, out, stderr = sql(statement, "-f", "json")
    assert code == 0, stderr
    assert json.loads(out) == [{"a": None, "b": None, "c": None, "d": 1.5}]  # strict JSON
    code, out, _ = sql(statement, "-f", "csv")
    assert out.splitlines() == ["a,b,c,d", "NaN,-inf,,1.5"]
    code, out, _ = sql(statement)
    assert out.splitlines()[-1].split() == ["nan", "-inf", "1.5"]  # c is blank
