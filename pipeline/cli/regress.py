"""``pipeline regress``: rerun the regression cases and compare them with their goldens."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli._common import boundary, progress

if TYPE_CHECKING:
    from pipeline.regress import CaseDiff

DEFAULT_CASES = Path("tests/regression/cases")


class DiffFormat(StrEnum):
    """How the per-case results are printed."""

    table = "table"
    json = "json"


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
        DiffFormat, typer.Option("--format", "-f", help="Print the results as text or JSON.")
    ] = DiffFormat.table,
) -> None:
    """Rerun regression backtests and compare them with their golden results.

    A case is a folder CASES/<name>/ with a run config (config.toml) and its
    goldens: trades, fills, orders, equity per session and quality (Parquet),
    and summary.json.

    Floats must agree to 1e-9 relative, everything else exactly; timings are
    ignored. Prints ok or the differences of each case (trades that appeared,
    vanished or changed; summary figures with old, new and delta); exit code 1
    on any difference.

    Relative paths in the configs start at the working directory: run it from
    the repository root.

    --update reruns the cases, then rewrites their goldens (only once every case
    has run) and prints what changed: review it with git diff before committing.

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
    _render(diffs, fmt, update=update)
    if not update and not all(d.ok for d in diffs):
        raise typer.Exit(1)


def _render(diffs: list[CaseDiff], fmt: DiffFormat, *, update: bool) -> None:
    import json

    if fmt is DiffFormat.json:
        data = {
            "ok": all(d.ok for d in diffs),
            "updated": update,
            "cases": [d.to_dict() for d in diffs],
        }
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        return
    for diff in diffs:
        typer.echo(_updated(diff) if update else diff.describe())
    failed = sum(not d.ok for d in diffs)
    if update:
        typer.echo(f"Rewrote the goldens of {_cases(len(diffs))}; review: git diff.", err=True)
    elif failed:
        typer.echo(f"{failed} of {_cases(len(diffs))} differ from their goldens.", err=True)
    else:
        typer.echo(f"All {_cases(len(diffs))} match their goldens.", err=True)


def _updated(diff: CaseDiff) -> str:
    """Return what `--update` did to a case: nothing changed, or what changed."""
    import dataclasses

    if diff.ok:
        return f"same  {diff.case}"
    head = f"updated {diff.case} ({diff.path})"
    if diff.missing:
        head += f": wrote {', '.join(diff.missing)}"
    return "\n".join([head, *dataclasses.replace(diff, missing=()).lines()])


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"
