"""``pipeline regress``: rerun the regression cases and compare them with their goldens."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli._common import WIDTH, Format, boundary, note, progress, render

if TYPE_CHECKING:
    from pipeline.regress import CaseDiff

#: `pipeline.regress.CASES_DIR`, repeated here so that ``--help`` does not import Polars.
DEFAULT_CASES = Path("tests/regression/cases")


@boundary
def regress_command(
    cases: Annotated[
        list[str] | None,
        typer.Argument(
            help="Case names: folders under --cases (default: every case).", show_default=False
        ),
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Rewrite the goldens from the rerun (after every case has run)."
        ),
    ] = False,
    cases_dir: Annotated[
        Path, typer.Option("--cases", help="Folder of regression cases.", show_default=True)
    ] = DEFAULT_CASES,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="Print the differences as text (table), every one as JSON, or counts as CSV.",
        ),
    ] = Format.table,
) -> None:
    """Rerun regression backtests and compare them with their golden results.

    A case is a folder CASES/<name>/ with a run config (config.toml) and its
    goldens: trades, fills, orders, equity per session and quality (Parquet),
    and summary.json.

    Floats must agree to 1e-9 relative, everything else exactly; timings are
    ignored. Prints ok or the differences of each case (trades that appeared,
    vanished or changed; summary figures with old, new and delta); exit code 1
    on any difference. A case that cannot run (no bar store, a strategy that
    raises, an unreadable golden) is an ERROR with its reason, and the other
    cases still run; --update writes nothing unless every case runs.

    --format csv prints one row per case with the columns case, ok,
    trades_appeared, trades_vanished, trades_changed, figures_changed (summary
    figures), tables_changed (golden tables that differ, trades included),
    goldens_missing (golden files not found) and error (why the case could not
    run); with --update they count what the rewrite changed.

    Each case reads the bar store its config names in data_root (required):
    the goldens pin the bars they came from, so --root and $PIPELINE_DATA_ROOT
    do not apply. Relative paths in the configs start at the working
    directory: run it from the repository root.

    --update reruns the cases, then rewrites their goldens (only once every case
    has run) and prints what changed: review it (git status, git diff) before
    committing.

    Example: pipeline regress ma_cross early_close

    Example: pipeline regress ma_cross --update
    """
    from pipeline import regress

    selected = regress.load_cases(cases_dir, cases or [])
    workdir = Path.cwd()
    label = "Updating goldens" if update else "Regression cases"
    with progress(label) as advance:
        run = regress.update_all if update else regress.check_all
        diffs = run(selected, workdir, progress=advance)
    _render(diffs, fmt, update=update, cases=cases_dir)
    _conclude(diffs, update=update)
    if not update and not all(d.ok for d in diffs):
        raise typer.Exit(1)


def _render(diffs: list[CaseDiff], fmt: Format, *, update: bool, cases: Path) -> None:
    """Print the diffs: JSON with every difference, CSV counts, or text fitted to the width."""
    if fmt is Format.json:
        import json

        data = {
            "ok": all(d.ok for d in diffs),
            "updated": update,
            "cases": [d.to_dict() for d in diffs],
        }
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    elif fmt is Format.csv:
        import polars as pl

        render(pl.DataFrame([d.to_row() for d in diffs]), fmt)
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else WIDTH
        for diff in diffs:
            typer.echo(diff.describe(width=width, update=update, cases=cases))


def _conclude(diffs: list[CaseDiff], *, update: bool) -> None:
    """Say on stderr what the run came to (unless -q)."""
    failed = sum(not d.ok for d in diffs)
    if update:
        note(f"Rewrote the goldens of {_cases(len(diffs))}; review: git status, git diff.")
    elif failed:
        errors = sum(bool(d.error) for d in diffs)
        differ, total = failed - errors, _cases(len(diffs))
        verb = "differs from its" if differ == 1 else "differ from their"
        parts = [f"{differ} of {total} {verb} goldens"] if differ else []
        parts += [f"{errors} of {total} could not run (ERROR above)"] if errors else []
        note("; ".join(parts) + ".")
    else:
        note(f"All {_cases(len(diffs))} match their goldens.")


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"
