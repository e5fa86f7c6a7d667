"""``pipeline sweep``: one table of a grid's backtests; a refusal is one line, nothing written."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from cli_commands import sweep_args
from typer.testing import CliRunner

from pipeline import sweep
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "sample.toml"
FAST, SLOW = "strategy.params.fast", "strategy.params.slow"
runner = CliRunner()


def test_table_of_a_2x2_grid_fits_80_columns() -> None:
    result = runner.invoke(app, sweep_args("-g", f"{FAST}=5,10", "-g", f"{SLOW}=30,60"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "Sweep sample: 4 runs by sharpe (descending)" in result.stdout
    header = next(line for line in lines if "sharpe" in line and "fast" in line)
    assert header.split() == ["fast", "slow", "total_return", "sharpe", "max_drawdown", "trades"]
    assert len([line for line in lines if line.strip()[:1].isdigit()]) == 4


def test_json_holds_every_figure_and_out_csv_the_same_rows(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    args = sweep_args(
        "-g", f"{FAST}=5,10", "--sort", "max_drawdown", "-f", "json", "--out", str(out)
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r[FAST] for r in rows] == [10, 5]  # the shallower drawdown first
    assert rows[0]["max_drawdown"] > rows[1]["max_drawdown"]
    assert {"sharpe", "total_return", "trades", "run_id", "error"} <= set(rows[0])
    assert "seconds" not in rows[0]
    with out.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == list(rows[0])
    assert [int(r[FAST]) for r in written] == [10, 5]
    assert f"Wrote {out}" in result.stderr


def test_csv_prints_one_row_per_combination_with_the_error_column() -> None:
    result = runner.invoke(
        app, sweep_args("-g", f"{FAST}=10,30", "-g", f"{SLOW}=30,60", "-f", "csv")
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r[FAST], r[SLOW], r["error"]) for r in rows[:3]] == [
        ("30", "60", ""), ("10", "60", ""), ("10", "30", ""),
    ]  # fmt: skip
    assert (rows[3][FAST], rows[3][SLOW]) == ("30", "30")
    assert "fast < slow" in rows[3]["error"]
    assert rows[3]["sharpe"] == ""
    assert "1 of 4 combinations failed" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (sweep_args("-g", "strategy.params.fsat=5,10"), "did you mean 'fast'?"),
        (sweep_args("-g", "broker.csh=1000"), "did you mean 'cash'?"),
        (sweep_args("-g", "quality.min_for_entry=50,150"), "--grid quality.min_for_entry=150:"),
        (sweep_args("-g", f"{FAST}=5,abc"), "--grid strategy.params.fast=abc"),
        (sweep_args("-g", f"{FAST}"), "is not KEY=V1,V2"),
        (sweep_args("-g", f"{FAST}=5", "--sort", "sharp"), "did you mean 'sharpe'?"),
        (sweep_args("-g", f"{FAST}=5", "--workers", "0"), "--workers 0 is not valid"),
        (sweep_args(), "at least one --grid"),
        (sweep_args("-g", f"{FAST}=5,6,7", "--max-runs", "2"), "pass --max-runs 3"),
        (["sweep", "missing.toml", "-g", f"{FAST}=5"], "does not exist"),
    ],
)
def test_refusal_is_one_line_error_exit_1_and_nothing_written(
    args: list[str], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "sweep.csv"
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_ray_not_installed_is_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    out = tmp_path / "sweep.csv"
    result = runner.invoke(app, sweep_args("-g", f"{FAST}=5", "--ray", "--out", str(out)))
    assert result.exit_code == 1
    assert "pip install 'pipeline[ray]'" in result.stderr
    assert not out.exists()


def test_empty_store_fails_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    args = ["sweep", str(CONFIG), "--root", str(tmp_path), "-g", f"{FAST}=5", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "No stored interval" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0
    assert "Example: pipeline sweep" in result.stdout
    assert f"default: {sweep.MAX_COMBINATIONS:,}" in " ".join(result.stdout.split())


def test_quiet_leaves_stderr_empty_but_still_writes_and_prints(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    args = sweep_args("-g", f"{FAST}=10,30", "-g", f"{SLOW}=30,60", "-f", "csv", "--out", str(out))
    result = runner.invoke(app, ["-q", *args])
    assert result.exit_code == 0
    assert result.stderr == ""  # no "Wrote ...", no "1 of 4 combinations failed"
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4
    assert sum(bool(r["error"]) for r in rows) == 1
    with out.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4
