"""``pipeline run``: bad options, a bad runs folder and failing strategies are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_commands import one_line_error
from click.testing import Result
from typer.testing import CliRunner

from pipeline.catalog import reset_catalog
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
runner = CliRunner()

STRATEGY = """
from pipeline.strategy import Strategy


class X(Strategy):
    def __init__(self, mode: str = "ok") -> None:
        if mode == "init":
            raise ValueError("bad mode")
        self.mode = mode

    def on_session_start(self, ctx):
        if self.mode == "start":
            raise KeyError("k")

    def on_bars(self, ctx, bars):
        if self.mode == "bars":
            raise RuntimeError("bad x")
"""


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def config(tmp_path: Path, strategy: str = "", extra: str = "") -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        'name = "t"\nstart = 2024-07-02\nend = 2024-07-02\nsymbols = ["ACME"]\n'
        f'streams = ["1m"]\n{extra}\n{strategy}',
        encoding="utf-8",
    )
    return path


def strategy_file(tmp_path: Path, text: str = STRATEGY) -> Path:
    path = tmp_path / "x.py"
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, *options: str) -> Result:
    return runner.invoke(app, ["run", str(path), "--root", str(SAMPLE), *options])


@pytest.mark.parametrize("speed", ["nan", "0", "-1", "-inf"])
def test_a_speed_that_is_not_above_zero_is_refused(tmp_path: Path, speed: str) -> None:
    result = run(config(tmp_path), "--speed", speed, "--runs", str(tmp_path / "runs"))

    one_line_error(result, "--speed", "is not valid: pass a number above 0")


def test_runs_that_is_a_file_is_refused_before_the_run(tmp_path: Path) -> None:
    strategy = strategy_file(tmp_path)
    path = config(tmp_path, f'[strategy]\nclass = "{strategy}:X"\nparams = {{ mode = "bars" }}')
    (tmp_path / "runs").write_text("", encoding="utf-8")

    result = run(path, "--runs", str(tmp_path / "runs"))

    one_line_error(result, "is a file, not a folder")


def test_runs_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    strategy = strategy_file(tmp_path)
    path = config(tmp_path, f'[strategy]\nclass = "{strategy}:X"')
    (tmp_path / "file").write_text("", encoding="utf-8")

    result = run(path, "--runs", str(tmp_path / "file" / "runs"))

    one_line_error(result, "cannot hold run folders")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("init", "raised ValueError in __init__: bad mode"),
        ("start", "raised KeyError in on_session_start: 'k'"),
        ("bars", "raised RuntimeError in on_bars: bad x"),
    ],
)
def test_a_strategy_that_raises_is_one_line_and_writes_no_run(
    tmp_path: Path, mode: str, expected: str
) -> None:
    strategy = strategy_file(tmp_path)
    spec = f"{strategy}:X"
    path = config(tmp_path, f'[strategy]\nclass = "{spec}"\nparams = {{ mode = "{mode}" }}')
    runs = tmp_path / "runs"

    result = run(path, "--runs", str(runs))

    one_line_error(result, f"strategy '{spec}' {expected}", "--debug")
    assert list(runs.iterdir()) == []  # checked writable before the run, then left empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("class X(\n", "raised SyntaxError while importing it"),
        ("import not_a_module_xyz\n", "raised ModuleNotFoundError while importing it"),
    ],
)
def test_a_strategy_file_that_does_not_import_is_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    strategy = strategy_file(tmp_path, text)
    path = config(tmp_path, f'[strategy]\nclass = "{strategy}:X"')

    result = run(path, "--runs", str(tmp_path / "runs"))

    one_line_error(result, expected)


def test_a_missing_data_root_in_the_config_is_named(tmp_path: Path) -> None:
    path = config(tmp_path, extra='data_root = "nowhere"')

    result = runner.invoke(app, ["run", str(path), "--runs", str(tmp_path / "runs")])

    one_line_error(result, "Data root 'nowhere' (data_root in", "is not a folder")
