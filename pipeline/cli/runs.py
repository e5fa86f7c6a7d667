"""``pipeline runs``: list the run folders and show one run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli._common import FlagGroup, Format, FormatOption, boundary, render
from pipeline.cli.run import DEFAULT_RUNS, RunsOption, render_summary

if TYPE_CHECKING:
    import polars as pl

app = typer.Typer(
    help="List and show backtest runs (runs/<run_id>/).",
    cls=FlagGroup,
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

    found = list_runs(runs)
    render(found if fmt is not Format.table else _compact(found), fmt)


def _compact(found: pl.DataFrame) -> pl.DataFrame:
    """Return the run list as an 80-column table: the id over two lines, dates stacked."""
    import polars as pl

    return found.select(
        pl.col("run_id").str.replace("-", "-\n", literal=True),
        "name",
        pl.concat_str("start", "end", separator="\n").alias("dates"),
        "total_return",
        "max_drawdown",
        "trades",
    )


@app.command("show")
@boundary
def show_command(
    run_id: RunIdArgument, runs: RunsOption = DEFAULT_RUNS, fmt: FormatOption = Format.table
) -> None:
    """Show the summary of run RUN_ID (its summary.json).

    Example: pipeline runs show 6fbfdd3935fac1d7-5bbd4a7f
    """
    from pipeline.results import read_run

    render_summary(read_run(runs, run_id).summary, fmt)
