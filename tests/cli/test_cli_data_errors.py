"""`pipeline data` on bad roots, damaged stores and bad files: one line on stderr, exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_commands import one_line_error
from click.testing import Result
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

runner = CliRunner()
HEADER = "datetime,open,high,low,close,volume\n"
ROW = "2019-02-11 09:31:00,10,11,9,10.5,100\n"  # 09:31 New York, a session


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def import_into(root: Path, path: Path, *more: str) -> Result:
    args = ["-i", "1m", "--tz", "America/New_York", "--stamp", "open", "--root", root]
    return invoke("data", "import", path, *args, *more)


def test_list_of_a_missing_root_says_it_does_not_exist(tmp_path: Path) -> None:
    message = one_line_error(invoke("data", "list", "--root", tmp_path / "nonexist"))
    assert "does not exist" in message
    assert "pipeline data import" in message


def test_list_and_check_of_a_root_that_is_a_file_fail(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()
    for command in ("list", "check"):
        assert "is a file" in one_line_error(invoke("data", command, "--root", tmp_path / "afile"))


def test_list_of_an_empty_root_is_an_empty_table(tmp_path: Path) -> None:
    result = invoke("data", "list", "--root", tmp_path, "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_check_of_a_symbol_stored_at_one_interval_of_two(tmp_path: Path) -> None:
    (tmp_path / "SPY.csv").write_text(HEADER + ROW)
    (tmp_path / "AAPL.csv").write_text(HEADER + ROW.replace("09:31", "09:30"))
    root = tmp_path / "store"
    assert import_into(root, tmp_path / "SPY.csv").exit_code == 0
    args = ["-i", "15m", "--tz", "America/New_York", "--stamp", "open", "--root", root]
    assert invoke("data", "import", tmp_path / "AAPL.csv", *args).exit_code == 0
    result = invoke("data", "check", "--gaps", "--symbol", "AAPL", "--root", root, "-f", "json")
    assert result.exit_code == 0, result.stderr


def test_damaged_partition_is_one_line_and_replace_repairs_it(tmp_path: Path) -> None:
    (tmp_path / "SPY.csv").write_text(HEADER + ROW)
    root = tmp_path / "store"
    import_into(root, tmp_path / "SPY.csv")
    part = next(root.rglob("part-0.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    for args in (["data", "list"], ["data", "check"]):
        assert str(part) in one_line_error(invoke(*args, "--root", root))
    assert "--replace" in one_line_error(import_into(root, tmp_path / "SPY.csv"))
    assert import_into(root, tmp_path / "SPY.csv", "--replace").exit_code == 0
    assert invoke("data", "check", "--root", root).exit_code == 0


def test_import_where_bars_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "OK.csv").write_text(HEADER + ROW)
    (tmp_path / "bf").mkdir()
    (tmp_path / "bf" / "bars").touch()
    message = one_line_error(import_into(tmp_path / "bf", tmp_path / "OK.csv"))
    assert "bars' is a file where a folder is needed" in message


def test_ragged_csv_is_one_line_in_our_words(tmp_path: Path) -> None:
    (tmp_path / "RL.csv").write_text(HEADER + ROW.replace("100", "100,77"))
    message = one_line_error(import_into(tmp_path / "s1", tmp_path / "RL.csv"))
    assert "line 2 has 7 fields" in message
    assert "truncate_ragged_lines" not in message
    assert not (tmp_path / "s1").exists()


def test_import_reads_the_separator_given(tmp_path: Path) -> None:
    (tmp_path / "SEMI.csv").write_text((HEADER + ROW).replace(",", ";"))
    result = import_into(tmp_path / "s", tmp_path / "SEMI.csv", "--separator", ";", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows_written"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--incomplete"], "--incomplete picks sessions: pass it with --sessions"),
        (["--start", "2024-07-05", "--end", "2024-07-01"], "is after --end 2024-07-01: swap"),
    ],
)
def test_check_options_that_cannot_work_are_refused(options: list[str], message: str) -> None:
    assert message in one_line_error(invoke("data", "check", *options))
