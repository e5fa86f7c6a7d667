"""``pipeline regress``: exit codes, one-line errors, and nothing written when it fails."""

from __future__ import annotations

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
    assert "pipeline regress early_close --update" in one_line_error(result.stderr)
    repaired = runner.invoke(app, ["regress", "--cases", str(cases), "--update"])
    assert repaired.exit_code == 0, repaired.stderr
    assert "trades.parquet (unreadable)" in repaired.stdout
    assert golden.read_bytes() == good
