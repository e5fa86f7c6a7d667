"""``pipeline sweep`` table headers: a grid key over a list position keeps the list's name."""

from __future__ import annotations

from cli_commands import sweep_args
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_list_position_key_is_headed_by_its_list_not_a_bare_number() -> None:
    grid = ["-g", "symbols.2=TINY,NOPE", "-g", "indicators.0.period=5"]
    result = runner.invoke(app, sweep_args(*grid))
    assert result.exit_code == 0, result.stderr
    header = next(
        line for line in result.stdout.splitlines() if "sharpe" in line and "(" not in line
    )
    assert header.split()[:2] == ["symbols.2", "period"]  # not "0" for symbols.2
