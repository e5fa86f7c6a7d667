"""``pipeline sweep``: backtest every combination of a grid of config values, print one table."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli._common import (
    Format,
    FormatOption,
    RootOption,
    boundary,
    note,
    progress,
    render,
    run_root,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.sweep import SweepPlan

#: The figures the table format shows beside the grid values (JSON and CSV show all).
HEADLINE = ("total_return", "sharpe", "max_drawdown", "trades")


@boundary
def sweep_command(
    config: Annotated[Path, typer.Argument(help="Run config (TOML or JSON) to vary.")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="KEY=V1,V2,...: a dotted config key and its values (int, float, true/false or "
            "text; quote to force text). Repeat for more keys: every combination runs.",
        ),
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="Sort by this summary figure or grid key.")
    ] = "sharpe",
    ascending: Annotated[
        bool, typer.Option("--ascending", help="Sort smallest first (default: largest first).")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Processes to run in (default: the CPU count); 1 runs in this process. "
            "With --ray: the CPUs of a local Ray.",
            show_default=False,
        ),
    ] = None,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Run the combinations as Ray tasks (needs the ray extra).")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join, e.g. ray://head:10001 (implies --ray; "
            "default: a local Ray).",
        ),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option(
            "--max-runs",
            min=1,
            help="Refuse a grid of more combinations than this (each is a backtest; "
            "default: 10,000).",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
    fmt: FormatOption = Format.table,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Also write the whole table to a .csv, .json or .parquet."
        ),
    ] = None,
) -> None:
    """Backtest every combination of the --grid values over CONFIG; print one table.

    One row per combination: the grid values, the summary figures (timings left
    out) and error. Sorted by --sort, largest first (max_drawdown is negative, so
    the shallowest comes first), ties by the grid values. Every combination is
    validated before anything runs; one the strategy refuses (fast >= slow) is a
    row with its error. The table shows the headline figures; --format json or
    csv and --out FILE (.csv, .json, .parquet) hold them all. A sweep stopped
    early (Ctrl-C) still writes --out with the runs that finished.

    Example: pipeline sweep configs/sample.toml -g strategy.params.fast=5,10,20
    """
    from pipeline import sweep
    from pipeline.config import load_config
    from pipeline.results import run_id
    from pipeline.store import Store

    if out is not None:
        sweep.check_out(out)  # before the grid: planning a large one takes a while
    settings = load_config(config)
    entries = [sweep.parse_grid(spec) for spec in grid or []]
    limit = sweep.MAX_COMBINATIONS if max_runs is None else max_runs
    plan = sweep.plan(settings, entries, source=str(config), limit=limit)
    sweep.check_sort(plan, sort)
    store_root = run_root(root, settings.data_root, config)
    run_id(settings, Store(store_root))  # the store holds the run's bars: fail before running
    with progress(f"Sweep {settings.name}") as advance:
        table = sweep.run(
            plan,
            store_root,
            sort=sort,
            ascending=ascending,
            workers=workers,
            use_ray=use_ray,
            ray_address=ray_address,
            progress=advance,
            on_stop=None if out is None else partial(_save_stopped, out=out),
        )
    if out is not None:
        sweep.write_table(table, out)
        note(f"Wrote {out}")
    failed = table.num_rows - table["error"].null_count
    if failed:
        note(f"{failed} of {table.num_rows} combinations failed: see the error column")
    _render(table, plan, sort, ascending, fmt)


def _save_stopped(table: pa.Table, *, out: Path) -> None:
    """Write what a stopped sweep finished to `out`, so that its runs are not lost."""
    from pipeline import sweep
    from pipeline.errors import PipelineError

    done = table.num_rows - table.column("error").to_pylist().count(sweep.STOPPED)
    try:
        sweep.write_table(table, out)
    except PipelineError as exc:
        note(f"The sweep stopped; its {done} finished rows could not be saved: {exc}")
        return
    rest = f"the others' error is {sweep.STOPPED!r}"
    note(f"The sweep stopped: wrote its {done} finished rows to {out}; {rest}")


def _render(table: pa.Table, plan: SweepPlan, sort: str, ascending: bool, fmt: Format) -> None:
    """Print the whole table as JSON or CSV, or its headline columns as a rich table."""
    import polars as pl

    frame = pl.DataFrame(table)
    if fmt is not Format.table:
        render(frame, fmt)
        return
    figures = [sort] if sort not in (*HEADLINE, *plan.keys) else []
    figures += [name for name in HEADLINE if name in frame.columns]
    errors = ["error"] if frame["error"].null_count() < frame.height else []
    names = _short_names(plan.keys, taken={*figures, "error"})
    shown = frame.select(*(pl.col(k).alias(names[k]) for k in plan.keys), *figures, *errors)
    order = "ascending" if ascending else "descending"
    runs = f"{frame.height} run{'s' if frame.height != 1 else ''}"
    title = f"Sweep {plan.name}: {runs} by {sort} ({order})"
    render(shown, fmt, title=title)


def _short_names(keys: tuple[str, ...], taken: set[str]) -> dict[str, str]:
    """Return each key's shortest dotted ending that no other key or column shares.

    An ending never starts at a list position: ``symbols.0`` is not shortened to ``0``.
    """
    names = {}
    for key in keys:
        parts = key.split(".")
        starts = (n for n in range(1, len(parts) + 1) if not parts[-n].isdigit())
        endings = (".".join(parts[-n:]) for n in starts)
        names[key] = next(
            (e for e in endings if e not in taken and sum(_ends(k, e) for k in keys) == 1), key
        )
    return names


def _ends(key: str, ending: str) -> bool:
    return key == ending or key.endswith("." + ending)
