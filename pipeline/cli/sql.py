"""``pipeline sql`` and ``pipeline query``: SQL over the store and the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pipeline.catalog import Catalog

from pipeline.cli._common import Format, FormatOption, RootOption, boundary, render, resolve_root
from pipeline.cli.run import DEFAULT_RUNS, RunsOption

CalendarOption = Annotated[
    str, typer.Option("--calendar", help="Exchange (MIC) for calendar_sessions.")
]


@boundary
def sql_command(
    statement: Annotated[str, typer.Argument(help="One SELECT statement.")],
    root: RootOption = None,
    calendar: CalendarOption = "XNYS",
    run: Annotated[
        str | None,
        typer.Option("--run", help="Load this run's tables (orders, trades, ...) first."),
    ] = None,
    runs: RunsOption = DEFAULT_RUNS,
    fmt: FormatOption = Format.table,
) -> None:
    """Run a SELECT over the store and the catalog's tables.

    Views: bars (every stored bar, with an interval column), bars_1m, bars_1d,
    ... (one per stored interval), calendar_sessions, and the catalog's tables
    (history_bars, session_bars, indicators, quality, gaps, ...). With --run
    RUN_ID the run's orders, fills, trades, positions, equity and sessions fill
    the catalog's tables of those names (all their columns: fills.slippage,
    orders.filled_quantity, ...), and its equity_sessions and scans tables are
    views of those names.

    Example: pipeline sql "SELECT symbol, count(*) FROM bars_1m GROUP BY ALL"

    Example: pipeline sql --run 6c0deb10 "SELECT sum(pnl) FROM trades"
    """
    from pipeline.catalog import get_catalog
    from pipeline.queries import attach_store
    from pipeline.store import Store

    catalog = get_catalog()
    if run is not None:
        _load_run(catalog, runs, run)
    attach_store(catalog, Store(resolve_root(root)), calendar)
    render(catalog.sql(statement), fmt)


def _load_run(catalog: Catalog, runs: Path, run_id: str) -> None:
    """Put run `run_id`'s tables in the catalog; the others (equity_sessions, scans) beside."""
    from pipeline import schema
    from pipeline.results import RUN_TABLES, read_run

    folder = read_run(runs, run_id)
    for name in RUN_TABLES:
        if name in schema.CATALOG_TABLES:
            catalog.set_table(name, folder.catalog_table(name))
        else:
            catalog.register_extra(name, folder.table(name))


@boundary
def query_command(
    name: Annotated[
        str | None, typer.Argument(help="Saved query name; leave out to list them.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A parameter as KEY=VALUE (repeatable)."),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="Folder of saved queries (default: $PIPELINE_QUERIES, else ./queries, else "
            "this project's queries/).",
        ),
    ] = None,
    root: RootOption = None,
    calendar: CalendarOption = "XNYS",
    fmt: FormatOption = Format.table,
) -> None:
    """Run a saved query from queries/ with named parameters, or list them.

    Example: pipeline query gaps --param interval=1m --param symbol=ACME
    """
    import polars as pl

    from pipeline.catalog import get_catalog
    from pipeline.errors import ConfigError
    from pipeline.queries import attach_store, get_query, load_queries, run_query
    from pipeline.store import Store

    if name is None:
        found = load_queries(queries).values()
        listing = pl.DataFrame(
            {
                "name": [q.name for q in found],
                "description": [q.description for q in found],
                "params": [", ".join(p.name for p in q.params) for q in found],
            }
        )
        render(listing, fmt)
        return
    given: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"Parameter {item!r} is not KEY=VALUE: write e.g. --param interval=1m."
            )
        if key in given:
            raise ConfigError(
                f"Parameter {key!r} is given twice (--param {key}={given[key]} and "
                f"--param {item}): give it once."
            )
        given[key] = value
    saved = get_query(name, queries)
    catalog = get_catalog()
    attach_store(catalog, Store(resolve_root(root)), calendar)
    render(run_query(catalog, saved, given), fmt)
