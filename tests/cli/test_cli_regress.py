"""``pipeline regress``: exit codes, one-line errors, and nothing written when it fails."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "regression" / "cases"
runner = CliRunner()


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the case configs start at the repository root."""
    monkeypatch.chdir(REPO)


def copy_cases(tmp_path: Path, *names: str) -> Path:
    cases = tmp_path / "cases"
    for name in names:
        shutil.copytree(CASES / name, cases / name)
    return cases


def snapshot(cases: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cases)): p.read_bytes() for p in sorted(cases.rglob("*"))
            if p.is_file()}  # fmt: skip


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_ok_case_exits_0_and_prints_ok() -> None:
    result = runner.invoke(app, ["regress", "early_close"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout == "ok    early_close\n"


def test_json_format_gives_one_object_per_case() -> None:
    result = runner.invoke(app, ["regress", "early_close", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [c["case"] for c in data["cases"]] == ["early_close"]
    assert data["cases"][0]["tables"] == {}


def test_unknown_case_is_a_one_line_error_naming_close_matches() -> None:
    result = runner.invoke(app, ["regress", "ma_cros"])
    assert result.exit_code == 1
    line = one_line_error(result.stderr)
    assert "No regression case 'ma_cros'" in line
    assert "did you mean 'ma_cross'?" in line
    assert result.stdout == ""


def test_missing_cases_folder_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["regress", "--cases", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "Pass --cases DIR" in one_line_error(result.stderr)


def test_broken_config_is_a_one_line_error_and_nothing_is_written(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "ma_cross", "early_close")
    config = cases / "ma_cross" / "config.toml"
    config.write_text(config.read_text().replace('streams = ["1m", "5m"]', 'streams = ["1x"]'))
    before = snapshot(cases)
    result = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert result.exit_code == 1
    line = one_line_error(result.stderr)
    assert "ma_cross" in line
    assert "streams" in line
    assert snapshot(cases) == before


def test_failing_run_during_update_leaves_every_golden_as_it_was(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close", "ma_cross")
    early = cases / "early_close" / "config.toml"
    early.write_text(early.read_text().replace("band_pct = 0.4", "band_pct = 0.3"))
    broken = cases / "ma_cross" / "config.toml"
    broken.write_text(broken.read_text().replace('data_root = "data"', 'data_root = "nowhere"'))
    before = snapshot(cases)
    result = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert result.exit_code == 1
    assert "no bar store" in one_line_error(result.stderr)
    assert snapshot(cases) == before  # early_close ran first, but nothing was written


def test_a_case_that_cannot_run_is_reported_and_the_next_cases_still_run(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close", "ma_cross")
    broken = cases / "early_close" / "config.toml"
    broken.write_text(broken.read_text().replace('data_root = "data"', 'data_root = "nowhere"'))
    result = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ERROR early_close")
    assert any(line.startswith("  Regression case 'early_close': no bar store") for line in lines)
    assert lines[-1] == "ok    ma_cross"
    assert "1 of 2 cases could not run (ERROR above)." in result.stderr
    rows = list(
        csv.DictReader(
            io.StringIO(runner.invoke(app, ["regress", "--cases", str(cases), "-f", "csv"]).stdout)
        )
    )
    assert [(r["case"], r["ok"], bool(r["error"])) for r in rows] == [
        ("early_close", "false", True), ("ma_cross", "true", False)]  # fmt: skip


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["regress", "--help"])
    assert result.exit_code == 0
    assert "Example: pipeline regress" in result.stdout
    assert "--update" in result.stdout


def test_unreadable_golden_is_an_error_that_update_repairs(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close")
    golden = cases / "early_close" / "trades.parquet"
    good = golden.read_bytes()
    golden.write_bytes(b"not parquet")
    result = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert result.exit_code == 1
    assert result.stdout.startswith("ERROR early_close")
    assert "pipeline regress early_close --update" in result.stdout
    repaired = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert repaired.exit_code == 0, repaired.stderr
    assert "trades.parquet (unreadable)" in repaired.stdout
    assert golden.read_bytes() == good


def test_csv_gives_one_row_of_counts_per_case(tmp_path: Path) -> None:
    result = runner.invoke(app, ["regress", "early_close", "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row == {
        "case": "early_close", "ok": "true", "trades_appeared": "0", "trades_vanished": "0",
        "trades_changed": "0", "figures_changed": "0", "tables_changed": "0",
        "goldens_missing": "0", "error": "",
    }  # fmt: skip
    cases = copy_cases(tmp_path, "ma_cross")
    config = cases / "ma_cross" / "config.toml"
    config.write_text(config.read_text().replace("fast = 10", "fast = 7"))
    (cases / "ma_cross" / "summary.json").unlink()
    failed = runner.invoke(app, ["regress", "--cases", str(cases), "-f", "csv"])
    assert failed.exit_code == 1
    [row] = list(csv.DictReader(io.StringIO(failed.stdout)))
    assert (row["ok"], row["trades_appeared"], row["trades_vanished"]) == ("false", "6", "6")
    assert (row["figures_changed"], row["goldens_missing"]) == ("0", "1")  # no summary to diff
    assert int(row["tables_changed"]) >= 3  # trades, fills, orders at least


def test_help_documents_the_csv_columns_and_the_data_root() -> None:
    result = runner.invoke(app, ["regress", "--help"])
    assert result.exit_code == 0
    for column in ("trades_appeared", "figures_changed", "goldens_missing", "data_root"):
        assert column in result.stdout


def test_quiet_leaves_stderr_empty(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close")
    for args in (["regress", "early_close"], ["regress", "--cases", str(cases), "--update"]):
        loud = runner.invoke(app, args)
        assert loud.exit_code == 0, loud.stderr
        assert loud.stderr  # a closing note without -q
        quiet = runner.invoke(app, ["-q", *args])
        assert quiet.exit_code == 0
        assert quiet.stderr == "", args
        assert quiet.stdout == loud.stdout


def test_quiet_failing_run_still_exits_1_with_its_diff(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close")
    (cases / "early_close" / "summary.json").unlink()
    result = runner.invoke(app, ["-q", "regress", "--cases", str(cases)])
    assert result.exit_code == 1
    assert result.stderr == ""
    assert result.stdout.startswith("FAIL  early_close")


def test_cases_read_their_own_data_root_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(tmp_path))  # an empty store
    result = runner.invoke(app, ["regress", "early_close"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout == "ok    early_close\n"
    refused = runner.invoke(app, ["regress", "early_close", "--root", str(tmp_path)])
    assert refused.exit_code == 2  # no such option: a case names its store
    assert "--root" in refused.stderr


def test_case_without_data_root_is_a_one_line_error(tmp_path: Path) -> None:
    cases = copy_cases(tmp_path, "early_close")
    config = cases / "early_close" / "config.toml"
    config.write_text(config.read_text().replace('data_root = "data"\n', ""))
    result = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert result.exit_code == 1
    line = one_line_error(result.stderr)
    assert "'early_close' names no data_root" in line
    assert 'data_root = "data"' in line
    assert result.stdout == ""
