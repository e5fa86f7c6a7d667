"""Regression backtests: rerun small cases and compare their results with reviewed goldens.

A case is a folder ``<cases>/<name>/`` holding ``config.toml`` (an ordinary run config
with a ``[strategy]``) and its golden results, written by `update`:

- ``trades.parquet``, ``fills.parquet``, ``orders.parquet``: the broker's record
  (without its ``run_id`` column);
- ``equity.parquet``: equity at each session's last bar (`results.equity_sessions`);
- ``quality.parquet``: the base interval's quality per symbol and session, as the run's
  catalog shows it at the session close (what the quality gate reads);
- ``summary.json``: the summary figures (`results.summary`) without the timings.

Relative paths in a case's config (``data_root``, a strategy given as
``path/to/file.py:Class``) start at `workdir`, the repository root for
``pipeline regress``, so a case also runs as it is with ``pipeline run``. A case must
name its ``data_root``: the goldens pin the bars they were written from (the run id in
the summary holds their digest), so neither ``--root`` nor ``$PIPELINE_DATA_ROOT``
applies to a case.

Steps:

1. `load_cases`: find the cases (`discover`) and validate their configs;
2. `rerun`: run a case the way ``pipeline run`` does (`engine.backtest`, `results.run_id`,
   `results.summary`), in a fresh catalog: an `Outcome`;
3. `compare`: diff an outcome with the goldens (a `CaseDiff`, from `diff_table` and
   `diff_summary` in `pipeline._regress_diff`): floats to 1e-9 relative, integers,
   strings, booleans and timestamps exactly, timings never;
4. `write_goldens`: write an outcome as the goldens, byte for byte the same for the same
   results; `update` reruns, compares with the old goldens and rewrites them.

Examples
--------
>>> from pathlib import Path
>>> cases = load_cases(Path("tests/regression/cases"), ["ma_cross"])  # doctest: +SKIP
>>> check(cases[0], Path(".")).ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import calendar, results, schema
from pipeline._regress_diff import (
    ABSENT,
    CASES_DIR,
    REL_TOL,
    TIMING_FIELDS,
    CaseDiff,
    Change,
    RowChange,
    TableDiff,
    diff_summary,
    diff_table,
    update_command,
)
from pipeline._store_files import replacing
from pipeline.catalog import Catalog
from pipeline.config import RunConfig, load_config
from pipeline.engine import backtest, strategy_from_config
from pipeline.errors import ConfigError, DataNotFoundError, InputError, PipelineError
from pipeline.store import Store
from pipeline.stream import Step

__all__ = [
    "ABSENT", "CASES_DIR", "CONFIG_FILE", "GOLDEN_FILES", "KEYS", "REL_TOL", "TIMING_FIELDS",
    "Case", "CaseDiff", "Change", "Outcome", "RowChange", "TableDiff", "check", "check_all",
    "compare", "diff_summary", "diff_table", "discover", "load_cases", "rerun", "update",
    "update_all", "update_command", "write_goldens",
]  # fmt: skip

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"
#: Golden tables and the columns that match a row of the rerun with a golden row.
KEYS: Mapping[str, tuple[str, ...]] = {
    "trades": ("symbol", "entry_ts"),
    "fills": ("symbol", "ts", "side"),
    "orders": ("symbol", "ts", "side", "kind"),
    "equity": ("session",),
    "quality": ("symbol", "interval", "session"),
}
GOLDEN_FILES = (*(f"{name}.parquet" for name in KEYS), SUMMARY_FILE)
Progress = Callable[[int, int], None]


# --- cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A regression case: its name, folder and validated run config."""

    name: str
    path: Path
    config: RunConfig


def discover(cases_dir: Path) -> list[str]:
    """Return the names of the cases under `cases_dir` (folders with a config.toml), sorted."""
    if not cases_dir.is_dir():
        raise ConfigError(
            f"No regression cases folder '{cases_dir}'. Pass --cases DIR, or create "
            f"{cases_dir}/<name>/{CONFIG_FILE}."
        )
    return sorted(p.parent.name for p in cases_dir.glob(f"*/{CONFIG_FILE}"))


def load_cases(cases_dir: Path, names: Sequence[str] = ()) -> list[Case]:
    """Return the cases `names` (every case when empty), each with its config validated.

    Raise `ConfigError` naming the close matches of an unknown name, or the problems of
    a config, before any case runs.
    """
    available = discover(cases_dir)
    if not available:
        raise ConfigError(
            f"No regression cases in '{cases_dir}': add a folder <name>/ with a {CONFIG_FILE}, "
            "then write its goldens with: pipeline regress <name> --update."
        )
    wanted = list(dict.fromkeys(names)) or available
    for name in wanted:
        if name not in available:
            raise ConfigError(_unknown(name, available, cases_dir))
    return [_load_case(cases_dir / name) for name in wanted]


def _unknown(name: str, available: list[str], cases_dir: Path) -> str:
    close = [a for a in available if name in a] or difflib.get_close_matches(name, available)
    close = close[:3]
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = "it holds " + ", ".join(available)
    return f"No regression case {name!r} in '{cases_dir}': {hint}"


def _load_case(path: Path) -> Case:
    config = load_config(path / CONFIG_FILE)
    if not config.strategy:
        raise ConfigError(
            f"Regression case '{path.name}' has no [strategy] in {path / CONFIG_FILE}; add one, "
            'e.g. [strategy] class = "pipeline.strategies:MovingAverageCross".'
        )
    case = Case(path.name, path, config)
    _data_root(case)
    return case


def _data_root(case: Case) -> str:
    """Return the case's ``data_root``; a case must name the store its goldens came from."""
    if not case.config.data_root:
        raise ConfigError(
            f"Regression case '{case.name}' names no data_root in {case.path / CONFIG_FILE}: "
            'its goldens hold the digest of the bars they came from. Add e.g. data_root = "data" '
            "(relative to the repository root)."
        )
    return case.config.data_root


# --- rerunning ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a rerun of a case produced: the golden tables and the summary (no timings)."""

    case: Case
    tables: Mapping[str, pl.DataFrame]
    summary: Mapping[str, Any]


def rerun(case: Case, workdir: Path) -> Outcome:
    """Backtest `case` as ``pipeline run`` does, in a fresh catalog; return its results.

    `workdir` is where the config's relative paths start (``data_root``, a strategy
    file). Nothing is written.
    """
    config = case.config
    store = _store(case, workdir)
    strategy = strategy_from_config(_strategy_section(config.strategy, workdir))
    catalog = Catalog()
    watch = _QualityAtClose(catalog, config)
    try:
        report, frames = backtest(config, store, catalog, strategy=strategy, subscribers=(watch,))
        sessions = catalog.table("sessions")
    finally:
        catalog.close()
    rid = results.run_id(config, store)
    figures = results.summary(frames, report, config, run_id=rid, sessions=sessions)
    summary = {k: v for k, v in figures.items() if k not in TIMING_FIELDS}
    cash = float(summary["starting_cash"])
    tables = {name: frames[name].drop("run_id") for name in ("trades", "fills", "orders")}
    tables["equity"] = results.equity_sessions(frames["equity"], cash, config.calendar)
    tables["quality"] = watch.frame()
    return Outcome(case, tables, json.loads(json.dumps(summary)))  # as read back from disk


def _store(case: Case, workdir: Path) -> Store:
    root = workdir / _data_root(case)
    if not (root / "bars").is_dir():
        raise DataNotFoundError(
            f"Regression case '{case.name}': no bar store at '{root}' (data_root "
            f"{case.config.data_root!r} read from '{workdir}'). Run pipeline regress from the "
            f"repository root, or fix data_root in {case.path / CONFIG_FILE}."
        )
    return Store(root)


def _strategy_section(section: Mapping[str, Any], workdir: Path) -> dict[str, Any]:
    """Return ``[strategy]`` with a relative ``path/to/file.py:Class`` read from `workdir`.

    The config itself is left as it is, so its hash (and the run id) does not depend on
    where the repository is.
    """
    out = dict(section)
    where, sep, name = str(section.get("class", "")).rpartition(":")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    if sep and is_file and not Path(where).is_absolute():
        out["class"] = f"{workdir / where}:{name}"
    return out


class _QualityAtClose:
    """A stream subscriber keeping each session's quality rows as the catalog has them at its close.

    The rows are read once per session, at the first timestamp at or after the regular
    close (the step that reveals the session's last regular bar).
    """

    def __init__(self, catalog: Catalog, config: RunConfig) -> None:
        days = calendar.sessions(config.calendar, config.start, config.end)
        self._days: list[dt.date] = days.get_column("session").to_list()
        self._closes: list[dt.datetime] = days.get_column("close").to_list()
        self._catalog = catalog
        self._next = 0
        self._rows: list[pl.DataFrame] = []

    def __call__(self, step: Step) -> None:
        passed = self._next
        while passed < len(self._closes) and step.clock >= self._closes[passed]:
            passed += 1
        if passed == self._next:
            return
        self._next = passed
        day = self._days[passed - 1]
        rows = self._catalog.table("quality").filter(pl.col("session") == day)
        self._rows.append(rows.with_columns(pl.col("symbol").cast(pl.String)))

    def frame(self) -> pl.DataFrame:
        """Return the rows kept, sorted by symbol, interval and session (`schema.QUALITY`)."""
        if not self._rows:
            return schema.empty(schema.QUALITY)
        return pl.concat(self._rows).cast(schema.QUALITY).sort(KEYS["quality"])


# --- comparing ----------------------------------------------------------------------


def compare(outcome: Outcome) -> CaseDiff:
    """Return how `outcome` differs from its case's goldens (missing goldens included).

    Raise `InputError` when a golden file cannot be read.
    """
    return _compare(outcome, lenient=False)


def _compare(outcome: Outcome, *, lenient: bool) -> CaseDiff:
    """Compare; with `lenient` an unreadable golden counts as missing (it is being rewritten)."""
    case = outcome.case
    missing, golden = [], {}
    for file in GOLDEN_FILES:
        path = case.path / file
        if not path.is_file():
            missing.append(file)
            continue
        try:
            golden[file] = _read_golden(case, path)
        except InputError:
            if not lenient:
                raise
            missing.append(f"{file} (unreadable)")
    tables = []
    for name, key in KEYS.items():
        if f"{name}.parquet" in golden:
            diff = diff_table(name, golden[f"{name}.parquet"], outcome.tables[name], key)
            tables += [] if diff.empty else [diff]
    summary = diff_summary(golden[SUMMARY_FILE], outcome.summary) if SUMMARY_FILE in golden else ()
    return CaseDiff(case.name, case.path, tuple(missing), summary, tuple(tables))


# --- the goldens --------------------------------------------------------------------


def _read_golden(case: Case, path: Path) -> Any:
    """Return a golden table, or the golden summary as a dict."""
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise InputError(_unreadable(case, path, exc)) from exc
    if not isinstance(data, dict):
        raise InputError(_unreadable(case, path, "not a JSON object"))
    return data


def _unreadable(case: Case, path: Path, why: object) -> str:
    return (
        f"Golden file '{path}' cannot be read ({why}). Restore it from version control, or "
        f"rewrite it with: {update_command(case.name, case.path.parent)}"
    )


def write_goldens(outcome: Outcome) -> Path:
    """Write `outcome` as its case's goldens; return the case folder.

    Each file goes to a temporary file first, then replaces the golden. Tables are
    written with fixed options and the summary as sorted JSON, so the same results give
    the same bytes.
    """
    folder = outcome.case.path
    for name in KEYS:
        _replace(folder / f"{name}.parquet", partial(results.write_parquet, outcome.tables[name]))
    _replace(folder / SUMMARY_FILE, partial(results.write_json, dict(outcome.summary)))
    return folder


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    try:
        with replacing(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise InputError(f"Cannot write golden file '{path}': {exc}. Check the folder.") from exc


# --- running cases ------------------------------------------------------------------


def check(case: Case, workdir: Path) -> CaseDiff:
    """Rerun `case` and compare it with its goldens; nothing is written."""
    return compare(rerun(case, workdir))


def update(case: Case, workdir: Path) -> CaseDiff:
    """Rerun `case`, rewrite its goldens; return how the run differed from the old goldens."""
    outcome = rerun(case, workdir)
    diff = _compare(outcome, lenient=True)
    write_goldens(outcome)
    return diff


def check_all(
    cases: Sequence[Case], workdir: Path, *, progress: Progress | None = None
) -> list[CaseDiff]:
    """Check every case in order; `progress(done, total)` is called after each.

    A case that cannot be rerun or compared (a missing store, a strategy that raises,
    an unreadable golden) is reported with its error, and the next cases still run.
    """
    out = []
    for done, case in enumerate(cases, start=1):
        try:
            out.append(check(case, workdir))
        except PipelineError as exc:
            out.append(CaseDiff(case.name, case.path, error=str(exc)))
        if progress is not None:
            progress(done, len(cases))
    return out


def update_all(
    cases: Sequence[Case], workdir: Path, *, progress: Progress | None = None
) -> list[CaseDiff]:
    """Rerun every case, then rewrite all their goldens; return the diffs with the old ones.

    Goldens are written only once every case has run: a failing case leaves every
    golden as it was.
    """
    outcomes = []
    for done, case in enumerate(cases, start=1):
        outcomes.append(rerun(case, workdir))
        if progress is not None:
            progress(done, len(cases))
    diffs = [_compare(o, lenient=True) for o in outcomes]
    for outcome in outcomes:
        write_goldens(outcome)
    return diffs
