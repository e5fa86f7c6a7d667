"""``pipeline sweep --out``: a file it cannot write is refused before any run, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_commands import one_line_error, sweep_args
from typer.testing import CliRunner

from pipeline import sweep
from pipeline.cli import app

runner = CliRunner()


def no_runs(*args: object, **kwargs: object) -> object:
    raise AssertionError("the sweep ran before --out was checked")


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("a_file/sweep.csv", "cannot write in"),  # a file stands where a folder should be
        ("a_file/deeper/sweep.json", "cannot write in"),
        ("a_folder.csv", "is a folder; name a file"),
    ],
)
def test_out_that_cannot_be_written_is_a_one_line_error_before_running(
    out: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder.csv").mkdir()
    monkeypatch.setattr(sweep, "run", no_runs)
    args = sweep_args("-g", "strategy.params.fast=5", "--out", str(tmp_path / out))
    result = runner.invoke(app, args)
    one_line_error(result, message, out.split("/", maxsplit=1)[0])
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder.csv"]


def test_folder_turned_file_after_the_check_is_a_store_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    from pipeline.errors import StoreError

    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr(sweep, "check_out", lambda path: None)  # it was a folder when checked
    with pytest.raises(StoreError, match="Check --out"):
        sweep.write_table(pa.table({"x": [1]}), tmp_path / "a_file" / "sweep.csv")


def test_out_in_a_folder_still_to_make_is_accepted_and_written(tmp_path: Path) -> None:
    out = tmp_path / "new" / "sub" / "sweep.csv"
    sweep.check_out(out)
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing behind
    result = runner.invoke(app, sweep_args("-g", "strategy.params.fast=5", "--out", str(out)))
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith("strategy.params.fast,")
