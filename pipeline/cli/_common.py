"""Shared CLI pieces: the error boundary, logging, the data root, and result rendering.

Results go to stdout (a table, JSON or CSV); logs, notes and progress go to stderr.
Tables fit the terminal, or 80 columns when stdout is not a terminal. Heavy libraries
(polars, duckdb, pandas) are imported inside functions so that ``pipeline --help``
stays fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from typer.core import TyperGroup

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import polars as pl
    from polars._typing import PolarsDataType
    from rich.console import Console

P = ParamSpec("P")
R = TypeVar("R")

#: Width of a table when stdout is not a terminal (a file, a pipe, a test).
WIDTH = 80
#: Columns between two cells of a table: one space of padding and one of separator.
_GAP = 2
#: The narrowest a text column is squeezed to before columns are left out.
_MIN_TEXT = 10
#: The most rows a table shows (JSON and CSV show all).
MAX_ROWS = 1000

_STATE: dict[str, Any] = {"debug": False, "quiet": False, "console": None}


class Format(StrEnum):
    """How a result is printed on stdout."""

    table = "table"
    json = "json"
    csv = "csv"


RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Data root of the bar store (default: $PIPELINE_DATA_ROOT, else ./data).",
        show_default=False,
    ),
]
FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="Print the result as a table, JSON or CSV.")
]


class FlagGroup(TyperGroup):
    """A command group whose help shows no value placeholder beside a flag or a count.

    Typer shows ``<bool>`` beside a flag, as if it took a value (``--gaps true`` is an
    error), and ``<int>`` beside a count (``-vv``). This group blanks the placeholder of
    every such option, its own and Typer's (``--help``, ``--install-completion``,
    ``--show-completion``), on itself and on each command it hands out. Every
    ``typer.Typer`` of the CLI uses it.
    """

    # Typer hands Click's own classes over (its vendored copy, in recent versions): typed Any.
    def get_params(self, ctx: Any) -> Any:
        return _blank_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, FlagGroup):
            _blank_flags([*command.params, command.get_help_option(ctx)])
        return command


def _blank_flags(params: list[Any]) -> list[Any]:
    """Give each flag or count among `params` without a placeholder of its own an empty one."""
    for param in params:
        takes_none = getattr(param, "is_flag", False) or getattr(param, "count", False)
        if takes_none and param.metavar is None:
            param.metavar = ""
    return params


def resolve_root(root: Path | None) -> Path:
    """Return the data root: the option, else ``$PIPELINE_DATA_ROOT``, else ``./data``."""
    if root is not None:
        return root
    return Path(os.environ.get("PIPELINE_DATA_ROOT") or "data")


def run_root(root: Path | None, data_root: str | None, config: Path) -> Path:
    """Return the data root of a run: --root, else the config's data_root, else `resolve_root`.

    Raise `ConfigError` naming the folder and where it came from when it does not exist.
    """
    from pipeline.errors import ConfigError

    found = resolve_root(root if root is not None else Path(data_root) if data_root else None)
    if found.is_dir():
        return found
    if root is not None:
        origin = "--root"
    elif data_root:
        origin = f"data_root in {config}"
    elif os.environ.get("PIPELINE_DATA_ROOT"):
        origin = "$PIPELINE_DATA_ROOT"
    else:
        origin = "the default data root"
    raise ConfigError(
        f"Data root '{found}' ({origin}) is not a folder: point it at the bar store "
        "(relative paths start from the current folder), or import bars there first with "
        f"pipeline data import FILES --root {found}."
    )


def set_debug(debug: bool) -> None:
    """Remember whether errors should show their traceback."""
    _STATE["debug"] = debug


def is_quiet() -> bool:
    """True when -q asked for errors only: no notes, warnings or progress on stderr."""
    return bool(_STATE["quiet"])


def setup_logging(verbose: int, quiet: bool) -> None:
    """Send log records to stderr at a level set by -v/-q: rich in a terminal, else plain lines.

    Plain lines (``INFO [SESSION_FLOW] PHASE_2.1: ...``) are never wrapped, so a log
    written to a file can be searched line by line. -q also silences notes and progress.
    """
    _STATE["quiet"] = quiet
    _STATE["console"] = None
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(console=stderr_console(), show_path=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def stderr_console() -> Console:
    """Return the rich console on stderr that logs and progress bars share."""
    if _STATE["console"] is None:
        from rich.console import Console

        _STATE["console"] = Console(stderr=True)
    console: Console = _STATE["console"]
    return console


def note(message: str) -> None:
    """Tell the user something on stderr (a file written, no rows found), unless -q."""
    if not is_quiet():
        typer.echo(message, err=True)


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


# --- results ---------------------------------------------------------------------------


def render(frame: pl.DataFrame, fmt: Format, *, title: str | None = None) -> None:
    """Print `frame` on stdout as a table, JSON records, or CSV.

    JSON is one array of objects; CSV has a header row, nested values as JSON text. The
    table fits the terminal (80 columns when stdout is not one): long text folds, and
    columns that still do not fit are left out and named below the table, as are the
    rows after the first `MAX_ROWS`.
    """
    import polars as pl

    from pipeline.errors import QueryError

    if fmt is not Format.table:
        _check_writable(frame, fmt)
    try:
        if fmt is Format.json:
            text = frame.write_json() + "\n"
        elif fmt is Format.csv:
            text = _flat(frame).write_csv()
        else:
            print_table(frame, title=title)
            return
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        raise QueryError(
            f"The result cannot be printed as {fmt.value} ({exc}): cast its unusual columns "
            "in the SQL, e.g. to VARCHAR, or try another --format."
        ) from exc
    sys.stdout.write(text)


def _check_writable(frame: pl.DataFrame, fmt: Format) -> None:
    """Raise `QueryError` for a binary column, which JSON and CSV cannot hold."""
    from pipeline.errors import QueryError

    for name, dtype in frame.schema.items():
        if _binary(dtype):
            raise QueryError(
                f"Column {name} holds binary data (DuckDB BLOB, BIT or BIGNUM), which "
                f"--format {fmt.value} cannot print: cast it in the SQL, e.g. hex({name}) "
                f"or {name}::VARCHAR, or use --format table."
            )


def _binary(dtype: PolarsDataType) -> bool:
    """True when `dtype` is, or holds, binary data (Binary, an extension type, an Object)."""
    import polars as pl

    if isinstance(dtype, pl.List | pl.Array):
        return _binary(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_binary(field.dtype) for field in dtype.fields)
    return dtype == pl.Binary or dtype.is_extension() or dtype.is_object()


def print_table(frame: pl.DataFrame, *, title: str | None = None) -> None:
    """Print `frame` as a rich table on stdout, fitted to the terminal or to `WIDTH`."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else WIDTH)
    head = frame.head(MAX_ROWS)
    shown, hidden = _fit([_column(head, name) for name in head.columns], console.width)
    table = Table(
        title=Text(title) if title else None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
        show_lines=any("\n" in text for col in shown for text in col.texts),
    )
    for col in shown:
        table.add_column(
            Text(col.header),
            justify="right" if col.numeric else "left",
            no_wrap=not col.wraps,
            overflow="fold",
        )
    for row in zip(*(col.texts for col in shown), strict=True):
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    left_out = _left_out(hidden, frame.height - head.height)
    if left_out:
        console.print(Text(left_out))
    if frame.is_empty():
        note("(no rows)")


def _left_out(hidden: Sequence[_Column], rows_left: int) -> str:
    """Return the line under a table naming what it leaves out ("": nothing)."""
    parts = []
    if rows_left:
        parts.append(f"+{rows_left:,} more row(s)")
    if hidden:
        parts.append(f"+{len(hidden)} more column(s): {', '.join(c.name for c in hidden)}")
    return f"{'; '.join(parts)} (--format csv shows all)" if parts else ""


@dataclass(frozen=True)
class _Column:
    """One column of a table as text: its header, its cells and how it may shrink."""

    name: str
    header: str
    texts: list[str]
    numeric: bool
    wraps: bool

    @property
    def widest(self) -> int:
        from rich.cells import cell_len

        return max((cell_len(line) for t in self.texts for line in t.split("\n")), default=0)

    @property
    def need(self) -> int:
        """The width this column takes at least: all of it, or `_MIN_TEXT` for text."""
        from rich.cells import cell_len

        natural = max(self.widest, *(cell_len(line) for line in self.header.split("\n")))
        return min(natural, _MIN_TEXT) if self.wraps else natural

    def folded_header(self) -> _Column:
        """Return the column with its header broken after underscores to fit its cells."""
        if self.wraps or "_" not in self.header or len(self.header) <= self.widest:
            return self
        parts = [p + "_" for p in self.header.split("_")]
        parts[-1] = parts[-1][:-1]
        limit = max(self.widest, *(len(p) for p in parts))
        lines = [parts[0]]
        for part in parts[1:]:
            if len(lines[-1]) + len(part) <= limit:
                lines[-1] += part
            else:
                lines.append(part)
        return replace(self, header="\n".join(lines))


def _fit(columns: list[_Column], width: int) -> tuple[list[_Column], list[_Column]]:
    """Return the leading columns that fit in `width`, and the ones left out."""

    def needed(cols: Sequence[_Column]) -> int:
        return sum(c.need for c in cols) + _GAP * (len(cols) - 1)

    if needed(columns) > width:
        columns = [c.folded_header() for c in columns]
    shown: list[_Column] = []
    for col in columns:
        if shown and needed([*shown, col]) > width:
            break
        shown.append(col)
    if shown and needed(shown) > width:  # one column wider than the screen: let it fold
        shown[0] = replace(shown[0], wraps=True)
    return shown, columns[len(shown) :]


def _column(frame: pl.DataFrame, name: str) -> _Column:
    """Return column `name` of `frame` as text cells."""
    import polars as pl

    dtype = frame.schema[name]
    series = frame.get_column(name)
    if isinstance(dtype, pl.Datetime):
        texts = _datetimes(series).fill_null("").to_list()
    elif dtype == pl.Date:  # not via Python dates, which end in the year 9999
        texts = series.dt.strftime("%Y-%m-%d").fill_null("").to_list()
    elif dtype.is_float():
        texts = [_number(v) for v in series.to_list()]
    else:
        texts = [_cell(v) for v in series.to_list()]
    wraps = dtype in (pl.String, pl.Categorical, pl.Object) or dtype.is_nested()
    wraps = wraps or isinstance(dtype, pl.Enum)
    return _Column(name, name, texts, dtype.is_numeric(), wraps)


def _datetimes(series: pl.Series) -> pl.Series:
    """Format date-times to the minute, or to the second when any has seconds."""
    import polars as pl

    whole_minutes = (series.dt.truncate("1m") == series).all()
    fmt = "%Y-%m-%d %H:%M" if whole_minutes else "%Y-%m-%d %H:%M:%S"
    zone = series.dtype.time_zone if isinstance(series.dtype, pl.Datetime) else None
    if zone is not None:
        fmt += "Z" if zone in ("UTC", "Etc/UTC") else "%:z"
    return series.dt.strftime(fmt)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _cell(value: object) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with nested columns (lists, structs) as JSON text, for CSV."""
    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if not nested:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).is_not_null())
        .then(pl.struct(pl.col(name).alias("v")).struct.json_encode().str.slice(5).str.head(-1))
        .alias(name)
        for name in nested
    )


# --- progress --------------------------------------------------------------------------


class Progress:
    """A rich progress bar on stderr, drawn from the first step on (never for an early error).

    It is off when stderr is not a terminal or with -q: then it only counts.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._task: int | None = None
        self.enabled = sys.stderr.isatty() and not is_quiet()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        self._bar.update(self._task, completed=done, total=total)

    def _start(self) -> None:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr_console(),
            redirect_stdout=False,
        )
        self._bar.start()
        self._task = int(self._bar.add_task(escape(self._label), total=None))


def progress(label: str) -> Progress:
    """Return a progress bar on stderr for a long step (a context manager and a callback)."""
    return Progress(label)
