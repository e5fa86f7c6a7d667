"""Parameter sweeps: backtest every combination of a grid of config values, one table out.

A sweep goes in four steps (the first two live in `pipeline._sweep_grid`; this module
re-exports their public names):

1. `parse_grid` reads each ``KEY=V1,V2,...`` entry (`parse_value` types each value) and
   `expand` forms their cartesian product, the first entry varying slowest;
2. `plan` applies each combination to the base config's canonical form and validates it
   with the normal config validation (`pipeline.config.parse_config`, the ``[broker]``
   table) before anything runs: a key the config does not take, or a value it refuses,
   is a `ConfigError` naming the grid entry. A combination the strategy refuses (e.g.
   ``fast >= slow`` for a crossover) is kept as a row with its ``error`` and not run,
   unless a value is refused in every combination holding it (a bad value);
3. `run` hands the runnable combinations to an executor: in this process
   (``workers=1``), a `concurrent.futures.ProcessPoolExecutor`, or Ray (`ray_session`).
   Each runs `run_combination`, a pure function of (canonical config, store root)
   that returns the summary figures as a one-row Arrow table; a `PipelineError` while
   running becomes that row's ``error``;
4. the rows become one table: the grid values, the figures of ``summary.json`` without
   the timings, and ``error``, sorted by one figure (descending by default; ties and
   missing values are ordered by the grid values), so every executor gives the same table.

Examples
--------
>>> entry = parse_grid("strategy.params.fast=5,10")
>>> entry.key, entry.values
('strategy.params.fast', (5, 10))
>>> expand([entry, parse_grid("broker.fill=next_open,close")])[1]
{'strategy.params.fast': 5, 'broker.fill': 'close'}
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline._store_files import replacing
from pipeline._sweep_grid import (
    MAX_COMBINATIONS,
    Combination,
    GridEntry,
    SweepPlan,
    expand,
    parse_grid,
    parse_value,
    plan,
    show_value,
)
from pipeline.config import parse_config
from pipeline.errors import ConfigError, PipelineError, closest

__all__ = [
    "FIGURES",
    "MAX_COMBINATIONS",
    "STOPPED",
    "Combination",
    "GridEntry",
    "SweepPlan",
    "check_out",
    "check_sort",
    "expand",
    "parse_grid",
    "parse_value",
    "plan",
    "ray_session",
    "run",
    "run_combination",
    "sort_table",
    "write_table",
]

OnDone = Callable[[int, int], None]

#: The numeric summary figures a sweep can be sorted by (a grid key works too).
FIGURES = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "win_rate",
    "profit_factor", "avg_win", "avg_loss", "net_pnl", "final_equity", "exposure", "turnover",
    "traded_notional", "fees", "slippage", "trades", "sessions", "bars_processed", "timestamps",
)  # fmt: skip
#: Summary figures left out of a sweep's rows: they differ between reruns.
TIMINGS = ("seconds", "seconds_per_phase")
OUT_SUFFIXES = (".csv", ".json", ".parquet")
#: The ``error`` of a combination the sweep stopped before finishing (`run`'s `on_stop`).
STOPPED = "not run: the sweep stopped before it"


# --- checks before running ------------------------------------------------------------


def check_sort(sweep: SweepPlan, metric: str) -> None:
    """Raise `ConfigError` unless `metric` is a figure of `FIGURES` or a grid key."""
    choices = (*FIGURES, *sweep.keys)
    if metric not in choices:
        raise ConfigError(
            f"--sort {metric!r} is not a figure or a grid key; {closest(metric, choices)}"
        )


def check_out(path: Path) -> None:
    """Raise `ConfigError` unless `write_table` can write `path`: checked before a sweep runs.

    The suffix must be one `write_table` writes, `path` must not be a folder, and the
    nearest folder of it that exists must take a new file (a probe file is made and
    removed there); the folders missing below it are made when the table is written.
    """
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(
            f"--out {str(path)!r}: cannot write {path.suffix or 'a file without a suffix'}; "
            f"name a {', '.join(OUT_SUFFIXES)} file"
        )
    if path.is_dir():
        example = path / f"sweep{path.suffix}"
        raise ConfigError(f"--out {str(path)!r} is a folder; name a file, e.g. --out {example}")
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == Path())
    try:
        tempfile.NamedTemporaryFile(dir=folder, prefix=".check-").close()  # made, then removed
    except OSError as exc:
        raise ConfigError(
            f"--out {str(path)!r}: cannot write in {str(folder)!r} ({exc.strerror or exc}); "
            "name a file in a folder you can write to"
        ) from exc


# --- 3. running -----------------------------------------------------------------------


def run_combination(config: Mapping[str, Any], root: str | Path) -> pa.Table:
    """Backtest one canonical config over the store at `root`; return its figures as one row.

    The figures are those of `pipeline.results.summary` without `TIMINGS`, lists joined
    with commas, and ``error`` (null); a `PipelineError` gives a row holding only
    ``error``. The run has a catalog of its own, so runs sharing a process (one after
    another in a pool worker, or in-process) never see each other's tables.
    """
    from pipeline import results
    from pipeline.catalog import Catalog
    from pipeline.engine import backtest
    from pipeline.store import Store

    catalog = Catalog()
    try:
        settings = parse_config(config, "<sweep>")
        store = Store(Path(root))
        report, frames = backtest(settings, store, catalog)
        figures = results.summary(frames, report, settings, run_id=results.run_id(settings, store))
    except PipelineError as exc:
        return _error_row(str(exc))
    finally:
        catalog.close()
    row = {k: _flat(v) for k, v in figures.items() if k not in TIMINGS}
    return pa.Table.from_pylist([{**row, "error": None}])


def _flat(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, list) else value


def _error_row(message: str) -> pa.Table:
    return pa.table({"error": pa.array([message], pa.string())})


def run(
    sweep: SweepPlan,
    root: str | Path,
    *,
    sort: str = "sharpe",
    ascending: bool = False,
    workers: int | None = None,
    use_ray: bool = False,
    ray_address: str | None = None,
    progress: OnDone | None = None,
    on_stop: Callable[[pa.Table], None] | None = None,
) -> pa.Table:
    """Run every runnable combination of `sweep`; return the sorted table of results.

    `workers` processes run the combinations (default: the CPU count; 1 runs them in
    this process, one after another); with `use_ray`, Ray tasks do (`ray_session`).
    `progress(done, total)` is called as combinations complete. The table has a column
    per grid key, the summary figures and ``error``, sorted by `sort` (descending
    unless `ascending`; missing values last; ties by the grid values).

    When the sweep stops early (Ctrl-C, a crash), `on_stop` gets the table of the
    combinations that finished, the others marked `STOPPED` in ``error``, before the
    exception goes on: what ran is not lost.

    More than one local worker spawns processes, so a script that calls this needs the
    ``if __name__ == "__main__":`` guard (see `multiprocessing`).
    """
    check_sort(sweep, sort)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} is not valid: pass 1 or more (1 runs in-process)")
    todo = [c.config for c in sweep.combinations if c.error is None]
    root = str(Path(root).resolve())
    found: dict[int, pa.Table] = {}  # by position in `todo`, as the runs finish
    try:
        if use_ray or ray_address is not None:
            _run_ray(todo, root, ray_address, workers, progress, found=found)
        else:
            _run_local(todo, root, workers, progress, found=found)
    except BaseException:
        if on_stop is not None and found:
            on_stop(_results(sweep, found, sort, ascending))
        raise
    return _results(sweep, found, sort, ascending)


def _results(
    sweep: SweepPlan, found: Mapping[int, pa.Table], sort: str, ascending: bool
) -> pa.Table:
    """Return the sorted table: each combination's row, `STOPPED` for a run not finished."""
    tables, k = [], 0
    for combination in sweep.combinations:
        if combination.error:
            tables.append(_error_row(combination.error))
            continue
        tables.append(found[k] if k in found else _error_row(STOPPED))
        k += 1
    return sort_table(_assemble(sweep, tables), sort, sweep.keys, ascending=ascending)


def _run_local(
    configs: list[Mapping[str, Any]],
    root: str,
    workers: int | None,
    progress: OnDone | None,
    *,
    found: dict[int, pa.Table],
) -> None:
    """Run in this process (one worker) or in a pool of spawned processes, into `found`."""
    total = len(configs)
    count = min(workers or os.cpu_count() or 1, total)
    _tick(progress, 0, total)
    if count <= 1:
        for i, config in enumerate(configs):
            found[i] = run_combination(config, root)
            _tick(progress, len(found), total)
        return
    # spawn, not fork: a forked child of a process running Polars' threads can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = {pool.submit(run_combination, c, root): i for i, c in enumerate(configs)}
        try:
            for future in as_completed(futures):
                found[futures[future]] = future.result()
                _tick(progress, len(found), total)
        except BaseException:  # a bug in a run, or Ctrl-C: do not start the others
            pool.shutdown(cancel_futures=True)
            raise


def _run_ray(
    configs: list[Mapping[str, Any]],
    root: str,
    address: str | None,
    workers: int | None,
    progress: OnDone | None,
    *,
    found: dict[int, pa.Table],
) -> None:
    """Run each combination as a Ray task into `found`; the tasks return Arrow tables."""
    with ray_session(address, workers) as ray:
        task = ray.remote(num_cpus=1)(run_combination)
        refs = [task.remote(c, root) for c in configs]
        index = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        _tick(progress, 0, len(refs))
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    found[index[ref]] = ray.get(ref)
                _tick(progress, len(found), len(refs))
        except BaseException:  # a bug in a run, or Ctrl-C: cancel the others
            for ref in pending:
                ray.cancel(ref)
            raise


@contextlib.contextmanager
def ray_session(address: str | None = None, workers: int | None = None) -> Iterator[ModuleType]:
    """Yield the `ray` module connected: to `address`, else a local Ray of `workers` CPUs.

    A Ray already initialised in this process is used as it is and left running;
    otherwise it is started here (without its dashboard, which needs the network
    extras) and shut down on exit.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray, which is not installed: pip install 'pipeline[ray]', "
            "or leave out --ray to use local processes"
        ) from None
    if ray.is_initialized():
        yield ray
        return
    try:
        if address is not None:
            ray.init(address=address, logging_level=logging.ERROR)
        else:
            cpus = workers or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the cluster at {address!r}" if address else "a local Ray"
        raise ConfigError(
            f"Cannot start or reach {where}: {' '.join(str(exc).split())[:300]}. "
            "Check --ray-address (e.g. ray://head:10001), or leave it out for a local Ray"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _tick(progress: OnDone | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# --- 4. the table ---------------------------------------------------------------------


def _assemble(sweep: SweepPlan, tables: list[pa.Table]) -> pa.Table:
    """Put the grid columns before the rows' figures; ``error`` goes last."""
    rows = pa.concat_tables(tables, promote_options="permissive")
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for entry in sweep.entries:
        values = [c.values[entry.key] for c in sweep.combinations]
        if pa.types.is_string(entry.arrow_type):
            values = [show_value(v) for v in values]
        columns[entry.key] = pa.array(values, entry.arrow_type)
    for name in rows.column_names:
        if name not in columns and name != "error":
            columns[name] = rows[name]
    columns["error"] = rows["error"].cast(pa.string())
    return pa.table(columns)


def sort_table(
    table: pa.Table, metric: str, keys: Sequence[str], *, ascending: bool = False
) -> pa.Table:
    """Sort rows by `metric` (descending unless `ascending`; missing values last), then `keys`.

    The grid keys tell every combination apart, so the order never depends on which
    combination finished first.
    """
    # a figure no combination produced (every one failed) sorts as missing
    column = table[metric] if metric in table.column_names else pa.nulls(table.num_rows)
    order = [("_missing", "ascending"), ("_metric", "ascending" if ascending else "descending")]
    order += [(k, "ascending") for k in keys]
    keyed = table.append_column("_missing", pc.is_null(column)).append_column("_metric", column)
    return table.take(pc.sort_indices(keyed, sort_keys=order))


def write_table(table: pa.Table, path: Path) -> None:
    """Write the sweep's table to a ``.csv``, ``.json`` (records) or ``.parquet`` file.

    The file is written beside its final name and renamed, so a reader never sees
    half of it.
    """
    import polars as pl

    from pipeline.errors import StoreError

    check_out(path)
    frame = pl.DataFrame(table)
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            if suffix == ".csv":
                frame.write_csv(tmp)
            elif suffix == ".json":
                tmp.write_text(frame.write_json() + "\n", encoding="utf-8")
            else:
                frame.write_parquet(tmp)
    except OSError as exc:
        raise StoreError(f"Cannot write {str(path)!r}: {exc}. Check --out.") from exc
