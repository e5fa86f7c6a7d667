"""Shared CLI pieces: the error boundary, logging, the data root, and result rendering.

Heavy libraries (polars, duckdb, pandas) are imported inside functions so that
``pipeline --help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import polars as pl

P = ParamSpec("P")
R = TypeVar("R")

_STATE = {"debug": False}


class Format(StrEnum):
    """How a result is printed on stdout."""

    table = "table"
    json = "json"
    csv = "csv"


RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Data root of the bar store [default: $PIPELINE_DATA_ROOT or ./data].",
        show_default=False,
    ),
]
FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="Print the result as a table, JSON or CSV.")
]


def resolve_root(root: Path | None) -> Path:
    """Return the data root: the option, else ``$PIPELINE_DATA_ROOT``, else ``./data``."""
    if root is not None:
        return root
    return Path(os.environ.get("PIPELINE_DATA_ROOT") or "data")


def set_debug(debug: bool) -> None:
    """Remember whether errors should show their traceback."""
    _STATE["debug"] = debug


def setup_logging(verbose: int, quiet: bool) -> None:
    """Send log records to stderr at a level set by -v/-q: rich in a terminal, else plain lines.

    Plain lines (``INFO [SESSION_FLOW] PHASE_2.1: ...``) are never wrapped, so a log
    written to a file can be searched line by line.
    """
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def boundary(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a `PipelineError` into a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            if _STATE["debug"]:
                raise
            one_line = " ".join(str(exc).split())  # a path or a library's text may hold breaks
            typer.echo(f"error: {one_line}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def render(frame: pl.DataFrame, fmt: Format, *, title: str | None = None) -> None:
    """Print `frame` on stdout as a rich table, JSON records, or CSV."""
    if fmt is Format.json:
        sys.stdout.write(frame.write_json() + "\n")
        return
    if fmt is Format.csv:
        sys.stdout.write(frame.write_csv())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for name in frame.columns:
        numeric = frame.schema[name].is_numeric()
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120).print(table)
    if frame.is_empty():
        typer.echo("(no rows)", err=True)


def _cell(value: object) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ" if value.tzinfo else "%Y-%m-%d %H:%M:%S")
    return str(value)


class Progress:
    """A rich progress bar on stderr, drawn from the first step on (never for an early error)."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
        )
        self._label = label
        self._task: int | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._bar.start()
            self._task = int(self._bar.add_task(self._label, total=total))
        self._bar.update(self._task, completed=done, total=total)  # type: ignore[arg-type]


def progress(label: str) -> Progress:
    """Return a progress bar on stderr for a long step (a context manager and a callback)."""
    return Progress(label)
