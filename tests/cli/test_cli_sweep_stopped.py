"""``pipeline sweep --out`` when the sweep stops early: the finished runs are written, not lost."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from cli_commands import sweep_args
from typer.testing import CliRunner

from pipeline import sweep
from pipeline.cli import app

runner = CliRunner()


def test_ctrl_c_in_the_third_run_keeps_the_two_finished_in_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = sweep.run_combination, []

    def interrupted(config: Any, root: str) -> Any:
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(config, root)

    monkeypatch.setattr(sweep, "run_combination", interrupted)
    out = tmp_path / "sweep.csv"
    result = runner.invoke(app, sweep_args("-g", "strategy.params.fast=5,6,7,8", "--out", str(out)))
    assert result.exit_code != 0
    assert f"The sweep stopped: wrote its 2 finished rows to {out}" in result.stderr
    rows = {int(r["strategy.params.fast"]): r for r in csv.DictReader(out.read_text().splitlines())}
    assert [fast for fast, r in sorted(rows.items()) if not r["error"]] == [5, 6]
    assert {rows[7]["error"], rows[8]["error"]} == {sweep.STOPPED}
    monkeypatch.undo()  # the same two runs, not stopped: the same rows
    full = tmp_path / "full.csv"
    assert (
        runner.invoke(
            app, sweep_args("-g", "strategy.params.fast=5,6", "--out", str(full))
        ).exit_code
        == 0
    )
    finished = {
        int(r["strategy.params.fast"]): r for r in csv.DictReader(full.read_text().splitlines())
    }
    assert finished == {5: rows[5], 6: rows[6]}


def test_a_sweep_stopped_before_any_run_finished_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(config: Any, root: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_combination", interrupted)
    out = tmp_path / "sweep.csv"
    result = runner.invoke(app, sweep_args("-g", "strategy.params.fast=5,6", "--out", str(out)))
    assert result.exit_code != 0
    assert not out.exists()
