"""``pipeline runs``: list the run folders and show one run's summary."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli._common import Format, FormatOption, boundary, render
from pipeline.cli.run import DEFAULT_RUNS, RunsOption, render_summary

app = typer.Typer(
    help="List and show backtest runs (runs/<run_id>/).",
    no_args_is_help=True,
)

RunIdArgument = Annotated[str, typer.Argument(help="A run id, or a unique start of one.")]


@app.command("list")
@boundary
def list_command(runs: RunsOption = DEFAULT_RUNS, fmt: FormatOption = Format.table) -> None:
    """List the runs under --runs, newest first, with their headline figures.

    Example: pipeline runs list --runs runs
    """
    from pipeline.results import list_runs

    render(list_runs(runs), fmt)


@app.command("show")
@boundary
def show_command(
    run_id: RunIdArgument, runs: RunsOption = DEFAULT_RUNS, fmt: FormatOption = Format.table
) -> None:
    """Show the summary of run RUN_ID (its summary.json).

    Example: pipeline runs show 6c0deb1099c90cc6-5bbd4a7f
    """
    from pipeline.results import read_run

    render_summary(read_run(runs, run_id).summary, fmt)
