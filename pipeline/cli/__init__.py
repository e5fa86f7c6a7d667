"""The ``pipeline`` command line: a thin layer that parses, calls the library, renders.

Command groups live one per file (`data`, `run`, `runs`, `sql`); every command runs inside the one
error boundary in `_common.boundary`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import __version__
from pipeline.cli import _common, data, regress, run, runs, sql, sweep

app = typer.Typer(
    name="pipeline",
    cls=_common.FlagGroup,
    help="A columnar backtest pipeline for intraday market bars.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data.app, name="data")
app.command("run")(run.run_command)
app.add_typer(runs.app, name="runs")
app.command("sql")(sql.sql_command)
app.command("query")(sql.query_command)
app.command("regress")(regress.regress_command)
app.command("sweep")(sweep.sweep_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Show progress logs (-vv: debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show errors only.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[  # noqa: ARG001 - handled by its eager callback
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A columnar backtest pipeline for intraday market bars."""
    _common.setup_logging(verbose, quiet)
    _common.set_debug(debug)


def main() -> None:
    """Run the command line (the ``pipeline`` console script)."""
    app()
