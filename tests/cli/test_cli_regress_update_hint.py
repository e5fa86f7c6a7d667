"""``pipeline regress`` fix hints: the --update command it suggests works as printed."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import regress
from pipeline.cli import app
from pipeline.cli.regress import DEFAULT_CASES

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the case configs start at the repository root."""
    monkeypatch.chdir(REPO)


def odd_case(tmp_path: Path) -> Path:
    """Return a cases folder outside tests/regression/cases holding the case 'my case'."""
    cases = tmp_path / "odd cases"
    shutil.copytree(REPO / "tests" / "regression" / "cases" / "early_close", cases / "my case")
    return cases


def suggested(text: str) -> list[str]:
    """Return the arguments of the ``pipeline regress ...`` command at the end of `text`."""
    command = " ".join(text.split())  # a long hint wraps onto a second line
    return shlex.split(command[command.index("pipeline regress") :])[1:]


def test_missing_golden_hint_names_the_cases_folder_and_quotes_the_case(tmp_path: Path) -> None:
    cases = odd_case(tmp_path)
    (cases / "my case" / "summary.json").unlink()
    failed = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert failed.exit_code == 1
    args = suggested(failed.stdout)
    assert args == ["regress", "my case", "--update", "--cases", str(cases)]
    repaired = runner.invoke(app, args)  # the hint, run as printed
    assert repaired.exit_code == 0, repaired.stderr
    assert (cases / "my case" / "summary.json").is_file()


def test_unreadable_golden_error_names_the_cases_folder(tmp_path: Path) -> None:
    cases = odd_case(tmp_path)
    (cases / "my case" / "fills.parquet").write_bytes(b"not parquet")
    failed = runner.invoke(app, ["regress", "--cases", str(cases)])
    assert failed.exit_code == 1
    assert suggested(failed.stdout) == ["regress", "my case", "--update", "--cases", str(cases)]


def test_hint_for_a_case_in_the_default_folder_stays_short() -> None:
    path = regress.CASES_DIR / "ma_cross"
    assert regress.update_command("ma_cross", path.parent) == "pipeline regress ma_cross --update"
    assert DEFAULT_CASES == regress.CASES_DIR  # the CLI's default is the library's
