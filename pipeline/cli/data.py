"""``pipeline data``: import bar files, list the store, check quality, make sample data."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli._common import (
    FlagGroup,
    Format,
    FormatOption,
    RootOption,
    boundary,
    note,
    progress,
    render,
    resolve_root,
)

if TYPE_CHECKING:
    from pipeline.importing import ImportReport

app = typer.Typer(help="Import, list and check the bar store.", no_args_is_help=True, cls=FlagGroup)
log = logging.getLogger("pipeline.cli")


@app.command("import")
@boundary
def import_command(
    paths: Annotated[list[Path], typer.Argument(help="CSV, Parquet or zip files, or folders.")],
    interval: Annotated[
        str | None, typer.Option("--interval", "-i", help="Bar interval, e.g. 1m, 5m, 1d.")
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol", "-s", help="Symbol (default: from the file name or a symbol column)."
        ),
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone of naive stamps, e.g. America/New_York.")
    ] = None,
    stamp: Annotated[
        str | None,
        typer.Option("--stamp", help="Do stamps mark the bar's 'open' or its 'close'?"),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="Vendor format: lean, ninjatrader or alphavantage."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--column", "-c", help="Map a column as TARGET=SOURCE, e.g. ts=Time."),
    ] = None,
    separator: Annotated[
        str | None,
        typer.Option("--separator", help="CSV field separator: , ; | or tab (default: detected)."),
    ] = None,
    calendar: Annotated[
        str,
        typer.Option("--calendar", help="Exchange MIC: warn about bars outside its hours."),
    ] = "XNYS",
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows, report the rest.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite stored bars that conflict.")
    ] = False,
    root: RootOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Import bar files into the store; a bad file is refused, nothing written.

    Every row is validated; --skip-invalid imports the valid rows and lists the
    others. --tz names the time zone of naive stamps and --stamp says whether
    they mark the bar's open or its close (a --preset sets both). Bars outside the
    --calendar's regular hours are imported, with a warning.

    Example: pipeline data import AAPL.csv -i 1m --tz UTC --stamp open
    """
    from pipeline.errors import ConfigError
    from pipeline.importing import ImportOptions, import_files
    from pipeline.store import Store

    if stamp is not None and stamp not in ("open", "close"):
        raise ConfigError(f"--stamp {stamp!r} is not valid: pass --stamp open or --stamp close.")
    options = ImportOptions(
        interval=interval,
        symbol=symbol,
        tz=tz,
        stamp=stamp,  # type: ignore[arg-type]
        preset=preset,
        columns=_mapping(column or []),
        skip_invalid=skip_invalid,
        separator=separator,
        calendar=calendar,
    )
    with progress("Importing") as advance:
        report = import_files(
            Store(resolve_root(root)), paths, options, replace=replace, progress=advance
        )
    _render_import(report, fmt)


def _mapping(items: list[str]) -> dict[str, str]:
    from pipeline.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise ConfigError(
                f"--column {item!r} is not TARGET=SOURCE: write e.g. --column ts=Time."
            )
        out[target.strip().lower()] = source.strip()
    return out


def _render_import(report: ImportReport, fmt: Format) -> None:
    """Print what an import did: one summary row, and the skipped rows.

    JSON is one object (the summary's fields and ``rejected``, a list of rows); CSV is
    the summary row only; a table is the summary, then the skipped rows.
    """
    import json
    import sys

    import polars as pl

    symbols = sorted({s for names in report.symbols.values() for s in names})
    summary = {
        "files": report.files,
        "rows_read": report.rows_read,
        "rows_written": report.rows_written,
        "rows_skipped": report.rows_skipped,
        "intervals": ", ".join(report.symbols),
        "symbols": ", ".join(symbols),
    }
    skipped = report.rejected
    if fmt is Format.json:
        rows = json.loads(skipped.write_json())
        sys.stdout.write(json.dumps({**summary, "rejected": rows}) + "\n")
        return
    render(pl.DataFrame([summary]), fmt, title="Imported")
    if skipped.is_empty():
        return
    if fmt is Format.csv:
        log.warning("%d invalid row(s) skipped; --format json lists them.", report.rows_skipped)
        return
    log.warning("%d invalid row(s) skipped; they are listed below.", report.rows_skipped)
    render(skipped, fmt, title="Skipped rows")


@app.command("list")
@boundary
def list_command(root: RootOption = None, fmt: FormatOption = Format.table) -> None:
    """List what the store holds: interval, symbol, first and last bar, rows, files.

    Example: pipeline data list --root data
    """
    from pipeline.store import Store

    store = Store(resolve_root(root))
    store.check_root()
    render(store.inventory(), fmt)


@app.command("check")
@boundary
def check_command(
    root: RootOption = None,
    calendar: Annotated[str, typer.Option("--calendar", help="Exchange MIC.")] = "XNYS",
    interval: Annotated[
        list[str] | None, typer.Option("--interval", "-i", help="Only these intervals.")
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="Only these symbols.")
    ] = None,
    start: Annotated[
        dt.datetime | None, typer.Option(help="First session date.", formats=["%Y-%m-%d"])
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option(help="Last session date.", formats=["%Y-%m-%d"])
    ] = None,
    sessions: Annotated[
        bool, typer.Option("--sessions", help="One row per symbol, interval and session.")
    ] = False,
    incomplete: Annotated[
        bool, typer.Option("--incomplete", help="With --sessions: only incomplete sessions.")
    ] = False,
    gaps: Annotated[bool, typer.Option("--gaps", help="List the runs of missing bars.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Check stored bars against the exchange calendar: quality and gaps per session.

    Quality = 100 * bars present / bars expected in regular hours (390 one-minute
    bars on a full XNYS day, 210 on an early close). By default prints one row per
    symbol and interval; --sessions and --gaps show the detail.

    Example: pipeline data check --sessions --incomplete
    """
    import polars as pl

    from pipeline.check import check_store
    from pipeline.errors import ConfigError
    from pipeline.store import Store

    if incomplete and not sessions:
        raise ConfigError("--incomplete picks sessions: pass it with --sessions.")
    if start and end and start > end:
        raise ConfigError(f"--start {start:%Y-%m-%d} is after --end {end:%Y-%m-%d}: swap them.")
    result = check_store(
        Store(resolve_root(root)),
        calendar,
        intervals=interval,
        symbols=symbol,
        start=start.date() if start else None,
        end=end.date() if end else None,
    )
    if gaps:
        render(result.gaps, fmt, title="Gaps")
    elif sessions:
        rows = result.sessions.filter(~pl.col("complete")) if incomplete else result.sessions
        render(rows, fmt, title="Quality per session")
    else:
        render(result.summary, fmt, title="Quality")


@app.command("sample")
@boundary
def sample_command(root: RootOption = None, fmt: FormatOption = Format.table) -> None:
    """Write the bundled sample data set (synthetic, deterministic) into the store.

    Prints what the store then holds, as `data list` does.

    Example: pipeline data sample --root data
    """
    from pipeline.sample import write_sample
    from pipeline.store import Store

    store_root = resolve_root(root)
    note(write_sample(store_root))
    render(Store(store_root).inventory(), fmt)
