"""A run's results on disk: its id, the summary figures, and the run folder.

A run folder ``runs/<run_id>/`` holds:

- ``config.json``: the config's canonical form (what `config.config_hash` hashes);
- ``orders``, ``fills``, ``trades``, ``positions``, ``equity`` (one row per base bar,
  with its drawdown), each with the columns of the catalog table of its name
  (`pipeline.schema`), ``equity_sessions`` (one row per session) and ``sessions`` (the
  seconds and bars of each phase per session), and with a ``[scanner]`` ``scans``
  (each session's picks: session, rank, symbol), as Parquet;
- ``summary.json`` (`summary`), and the chart and report of `pipeline.report`.

The run id is the config hash and a digest of what the store holds for the run
(`run_id`), so the same config on the same data always gets the same id and folder.
The five result tables, ``equity_sessions`` and ``scans`` hold no timings and are written with
fixed options, so a rerun writes them byte for byte the same; timings live only in
``sessions.parquet`` and ``summary.json``.

Examples
--------
>>> from pipeline.config import load_config
>>> from pipeline.store import Store
>>> run_id(load_config("configs/sample.toml"), Store("data"))  # doctest: +SKIP
'6fbfdd3935fac1d7-5bbd4a7f'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import calendar, schema
from pipeline._broker_models import BrokerConfig
from pipeline.config import RunConfig, canonical, config_hash
from pipeline.errors import DataNotFoundError, InputError, StoreError, closest
from pipeline.intervals import base_interval
from pipeline.loader import plan
from pipeline.runner import RunReport
from pipeline.scanner import SCANS
from pipeline.store import Store

__all__ = [
    "IDENTICAL_TABLES",
    "RUN_TABLES",
    "RunFolder",
    "data_digest",
    "equity_sessions",
    "list_runs",
    "read_run",
    "run_id",
    "summary",
    "write_json",
    "write_parquet",
    "write_run",
]

log = logging.getLogger(__name__)

#: The tables a rerun writes byte for byte the same.
IDENTICAL_TABLES = ("orders", "fills", "trades", "positions", "equity")
#: Every Parquet table of a run folder.
RUN_TABLES = (*IDENTICAL_TABLES, "equity_sessions", "sessions", "scans")
#: Sessions per year for annualising per-session returns.
SESSIONS_PER_YEAR = 252
_DAYS_PER_YEAR = 365.25
_EPS = 1e-9


# --- the run id ---------------------------------------------------------------------


def data_digest(config: RunConfig, store: Store) -> str:
    """Return a hex digest of what the store holds for the run's symbols and source intervals.

    It covers, per stored interval the run reads from and per symbol, the first and
    last bar time and the row count (`Store.inventory`): cheap, and it changes when
    bars are added or removed.
    """
    stored = store.intervals()
    base = base_interval(list(config.streams), stored)
    wanted = [(h.interval, h.sessions, list(config.symbols)) for h in config.history]
    wanted.append((str(base), 0, list(config.symbols)))
    sources = sorted({str(spec.source) for spec in plan(wanted, stored)})
    rows = (
        store.inventory()
        .filter(pl.col("interval").is_in(sources) & pl.col("symbol").is_in(config.symbols))
        .sort("interval", "symbol")
        .select("interval", "symbol", "first", "last", "rows")
    )
    text = "\n".join(
        f"{r['interval']},{r['symbol']},{r['first'].isoformat()},{r['last'].isoformat()},{r['rows']}"
        for r in rows.iter_rows(named=True)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_id(config: RunConfig, store: Store) -> str:
    """Return the run id: ``<config hash>-<first 8 digits of the data digest>``."""
    return f"{config_hash(config)}-{data_digest(config, store)[:8]}"


# --- summary figures ----------------------------------------------------------------


def equity_sessions(equity: pl.DataFrame, cash: float, mic: str) -> pl.DataFrame:
    """Return one row per session: the last equity row of the session and its return.

    The session is the exchange-local date of the bar time; the first session's
    return is measured from the starting `cash`.
    """
    tz = calendar.timezone(mic)
    return (
        equity.with_columns(session=pl.col("ts").dt.convert_time_zone(tz).dt.date())
        .group_by("session", maintain_order=True)
        .agg(pl.col("ts", "cash", "equity", "drawdown").last())
        .sort("session")
        .with_columns(
            session_return=pl.col("equity") / pl.col("equity").shift(1, fill_value=cash) - 1.0
        )
        .select("session", "ts", "cash", "equity", "session_return", "drawdown")
    )


def summary(
    results: Mapping[str, pl.DataFrame],
    report: RunReport,
    config: RunConfig,
    *,
    run_id: str | None = None,
    sessions: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Return the run's headline figures as a JSON-ready dict.

    Conventions: returns are simple; ``cagr`` compounds the total return over the
    calendar days between the first and last equity rows (365.25 a year);
    ``volatility``, ``sharpe`` and ``sortino`` use per-session returns of the equity at
    each session's last bar, annualised with 252 sessions a year and a zero risk-free
    rate, the sample standard deviation (``sortino`` divides by the downside deviation:
    the root of the mean over all sessions of the squared negative returns); these four
    need two sessions at least;
    ``max_drawdown`` is the worst fall of equity from its running peak, with the times
    of that peak and trough; ``win_rate``, ``profit_factor`` (gross profit / gross
    loss), ``avg_win`` and ``avg_loss`` count closed round trips by P&L; ``exposure``
    is the share of base bars with a position open; ``turnover`` is the traded notional
    over the average equity. A figure that cannot be computed is None.

    Parameters
    ----------
    results
        The engine's frames (``equity``, ``trades``, ``fills``...).
    report
        The coordinator's run report (bars and seconds per session).
    config
        The run config (starting cash, fill mode, calendar).
    run_id
        The run's id (`run_id`), stored in the summary.
    sessions
        The catalog's ``sessions`` table, for the seconds per phase.
    """
    broker = config.broker_config()
    equity, trades, fills = results["equity"], results["trades"], results["fills"]
    daily = equity_sessions(equity, broker.cash, config.calendar)
    out: dict[str, Any] = {
        "run_id": run_id or report.run_id,
        "name": config.name,
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "symbols": list(config.symbols),
        "sessions": daily.height,
        "starting_cash": broker.cash,
        "fill": broker.fill,
        "fill_at_close": broker.fill == "close",
    }
    out |= _returns(equity, daily, broker.cash)
    out |= _drawdown(equity)
    out |= _trade_figures(trades)
    notional = float(fills.select((pl.col("quantity") * pl.col("price")).sum()).item() or 0.0)
    mean_equity = _float(equity.get_column("equity").mean())
    exposed = (pl.col("equity") - pl.col("cash")).abs() > _EPS
    out |= {
        "exposure": float(equity.select(exposed.mean()).item()) if equity.height else None,
        "turnover": notional / mean_equity if mean_equity > 0 else None,
        "traded_notional": notional,
        "fees": float(fills.get_column("commission").sum()),
        "slippage": float(fills["slippage"].sum()) if "slippage" in fills.columns else 0.0,
        "bars_processed": _column_sum(report.sessions, "session_bars"),
        "timestamps": _column_sum(report.sessions, "timestamps"),
        "seconds": report.seconds,
        "seconds_per_phase": _phase_seconds(sessions),
    }
    return _rounded(out)


def _returns(equity: pl.DataFrame, daily: pl.DataFrame, cash: float) -> dict[str, Any]:
    final = float(equity.get_column("equity")[-1]) if equity.height else cash
    total = final / cash - 1.0
    r = daily.get_column("session_return")
    out: dict[str, Any] = {"final_equity": final, "total_return": total}
    out |= dict.fromkeys(("cagr", "volatility", "sharpe", "sortino"))
    if r.len() < 2:  # one session's return says nothing of a year's
        return out
    span: dt.timedelta = equity["ts"][-1] - equity["ts"][0]
    days = span.total_seconds() / 86_400
    if days > 0 and total > -1.0:
        out["cagr"] = (1.0 + total) ** (_DAYS_PER_YEAR / days) - 1.0
    std, mean = _float(r.std()), _float(r.mean())
    downside = math.sqrt(_float((r.clip(upper_bound=0.0) ** 2).mean()))
    root = math.sqrt(SESSIONS_PER_YEAR)
    out["volatility"] = std * root
    out["sharpe"] = mean / std * root if std > 0 else None
    out["sortino"] = mean / downside * root if downside > 0 else None
    return out


def _drawdown(equity: pl.DataFrame) -> dict[str, Any]:
    if equity.is_empty():
        return {"max_drawdown": 0.0, "max_drawdown_peak": None, "max_drawdown_trough": None}
    frame = equity.select("ts", "equity").with_columns(
        dd=pl.col("equity") / pl.col("equity").cum_max() - 1.0
    )
    trough = int(frame.get_column("dd").arg_min() or 0)
    worst = float(frame["dd"][trough])
    if worst >= 0.0:
        return {"max_drawdown": 0.0, "max_drawdown_peak": None, "max_drawdown_trough": None}
    peak = int(frame.head(trough + 1).get_column("equity").arg_max() or 0)
    return {
        "max_drawdown": worst,
        "max_drawdown_peak": frame["ts"][peak].isoformat(),
        "max_drawdown_trough": frame["ts"][trough].isoformat(),
    }


def _trade_figures(trades: pl.DataFrame) -> dict[str, Any]:
    pnl = trades.get_column("pnl")
    wins, losses = pnl.filter(pnl > 0), pnl.filter(pnl < 0)
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    return {
        "trades": trades.height,
        "win_rate": wins.len() / trades.height if trades.height else None,
        "profit_factor": gross_win / gross_loss if gross_loss > 0 else None,
        "avg_win": float(wins.mean()) if wins.len() else None,  # type: ignore[arg-type]
        "avg_loss": float(losses.mean()) if losses.len() else None,  # type: ignore[arg-type]
        "net_pnl": float(pnl.sum()),
    }


def _float(value: Any) -> float:
    """Return a Polars scalar as a float (0.0 for None: an empty or all-null column)."""
    return 0.0 if value is None else float(value)


def _column_sum(frame: pl.DataFrame, column: str) -> int:
    return int(frame.get_column(column).sum()) if column in frame.columns else 0


def _phase_seconds(sessions: pl.DataFrame | None) -> dict[str, float]:
    if sessions is None or sessions.is_empty():
        return {}
    totals = sessions.group_by("phase").agg(pl.col("seconds").sum()).sort("phase")
    return dict(zip(totals["phase"].to_list(), totals["seconds"].to_list(), strict=True))


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    """Round floats to 10 significant digits (seconds to 4 decimals); non-finite → None."""
    return {k: _round_item(k, v) for k, v in figures.items()}


def _round_item(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _round_item(key, v) for k, v in value.items()}
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, 4) if key.startswith("seconds") else float(f"{value:.10g}")
    return value


# --- the run folder -----------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """A run folder on disk: its path, summary and canonical config."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]

    @property
    def run_id(self) -> str:
        """The folder's name: the run id."""
        return self.path.name

    def table(self, name: str) -> pl.DataFrame:
        """Read Parquet table `name` (one of `RUN_TABLES`)."""
        if name not in RUN_TABLES:
            hint = closest(name, RUN_TABLES)
            raise DataNotFoundError(f"A run folder has no table {name!r}: {hint}")
        path = self.path / f"{name}.parquet"
        if name == "scans" and not path.is_file():  # a run without a scanner
            return pl.DataFrame(schema=SCANS)
        try:
            return pl.read_parquet(path)
        except FileNotFoundError as exc:
            raise _damaged(path, "is missing") from exc
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise _damaged(path, f"cannot be read ({exc})") from exc

    def catalog_table(self, name: str) -> pl.DataFrame:
        """Read table `name` as the catalog table of that name holds it (its columns, in order).

        Raise `DataNotFoundError` when the folder's table lacks a column of the catalog's
        (a folder written before the column existed).
        """
        frame = self.table(name)
        columns = list(schema.CATALOG_TABLES[name])
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataNotFoundError(
                f"Run {self.run_id}: {name}.parquet has no column {', '.join(missing)} "
                f"(the catalog's {name} table has {len(columns)} columns; this folder was "
                "written by an older version). Run its config again to rewrite it."
            )
        return frame.select(columns)


def write_run(
    root: Path,
    config: RunConfig,
    results: Mapping[str, pl.DataFrame],
    summary: Mapping[str, Any],
    sessions: pl.DataFrame,
    *,
    chart: bool = True,
) -> Path:
    """Write the run folder ``root/<summary["run_id"]>/`` all at once; return its path.

    Everything is written into a temporary folder beside it that then replaces the
    old folder, so a reader sees the old run or the new one, never half of one. The
    tables' ``run_id`` column is set to the run id. `chart` also writes the equity
    chart and the HTML report (`pipeline.report`).
    """
    rid = str(summary["run_id"])
    root.mkdir(parents=True, exist_ok=True)
    final = root / rid
    tmp = root / f".{rid}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tables = {name: results[name] for name in IDENTICAL_TABLES}
        cash = float(summary.get("starting_cash") or BrokerConfig().cash)
        tables["equity_sessions"] = equity_sessions(results["equity"], cash, config.calendar)
        tables["sessions"] = sessions
        if config.scanner is not None:
            tables["scans"] = results.get("scans", pl.DataFrame(schema=SCANS))
        for name, frame in tables.items():
            write_parquet(_with_run_id(frame, rid), tmp / f"{name}.parquet")
        write_json(canonical(config), tmp / "config.json")
        write_json(dict(summary), tmp / "summary.json")
        if chart:
            from pipeline import report

            report.write_report(tmp, summary, tables["equity"], tables["trades"])
        _replace(tmp, final)
    except OSError as exc:
        raise StoreError(f"Cannot write run folder {final}: {exc}. Check --runs.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _with_run_id(frame: pl.DataFrame, rid: str) -> pl.DataFrame:
    if "run_id" not in frame.columns:
        return frame
    return frame.with_columns(pl.lit(rid, dtype=pl.String).alias("run_id"))


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write with fixed options (one row group, zstd, statistics) so reruns are byte-identical."""
    frame.write_parquet(
        path, compression="zstd", compression_level=3, statistics=True, row_group_size=1 << 30
    )


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """Write sorted, indented JSON with a final newline: the same data, the same bytes."""
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def _replace(tmp: Path, final: Path) -> None:
    """Put `tmp` in the place of `final` (replacing an older run folder)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def list_runs(root: Path) -> pl.DataFrame:
    """Return one row per run folder under `root`, newest first, with headline figures.

    A damaged folder (a summary.json that does not read, no config.json) is left out
    with a warning naming it.
    """
    rows = []
    for path in _folders(root):
        try:
            figures = _summary(path)
            _config(path)
        except InputError as exc:
            log.warning("Left out of the list: %s", exc)
            continue
        rows.append(
            {
                "run_id": path.name,
                "name": figures.get("name"),
                "start": figures.get("start"),
                "end": figures.get("end"),
                "total_return": figures.get("total_return"),
                "max_drawdown": figures.get("max_drawdown"),
                "trades": figures.get("trades"),
                "written": path.stat().st_mtime,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "run_id": pl.String,
            "name": pl.String,
            "start": pl.String,
            "end": pl.String,
            "total_return": pl.Float64,
            "max_drawdown": pl.Float64,
            "trades": pl.Int64,
            "written": pl.Float64,
        },
        orient="row",
    )
    written = pl.from_epoch(pl.col("written"), time_unit="s").dt.replace_time_zone("UTC")
    return frame.sort("written", "run_id", descending=[True, False]).with_columns(written)


def _folders(root: Path) -> list[Path]:
    """Return the run folders under `root` (those with a summary.json)."""
    if not root.is_dir():
        return []
    return [
        p for p in root.iterdir() if not p.name.startswith(".") and (p / "summary.json").is_file()
    ]


def read_run(root: Path, run_id: str) -> RunFolder:
    """Return run folder `run_id` under `root` (a unique prefix of the id is enough).

    Raise `DataNotFoundError` naming the closest run id when there is no such run.
    """
    ids = sorted(p.name for p in _folders(root))
    matches = [i for i in ids if i == run_id] or [i for i in ids if i.startswith(run_id)]
    if len(matches) != 1:
        if not ids:
            hint = f"{root} holds no runs; run one with: pipeline run --runs {root}"
        elif matches:
            hint = f"it is the start of {len(matches)} runs; give more of the id"
        else:
            near = closest(run_id, ids)
            shows = "'pipeline runs list' shows them"
            hint = f"{near} ({shows})" if near.startswith("did") else f"{len(ids)} runs; {shows}"
        raise DataNotFoundError(f"No run {run_id!r} in {root}: {hint}.")
    path = root / matches[0]
    return RunFolder(path, _summary(path), _config(path))


#: The summary figures `list_runs` shows, and the JSON types they must have.
_HEADLINE: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "start": (str,),
    "end": (str,),
    "total_return": (int, float),
    "max_drawdown": (int, float),
    "trades": (int,),
}


def _summary(folder: Path) -> dict[str, Any]:
    """Read a run folder's summary.json; raise `InputError` when it is not a run summary."""
    figures = _json_object(folder / "summary.json")
    for key, kinds in _HEADLINE.items():
        value = figures.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            names: dict[tuple[type, ...], str] = {(str,): "text", (int,): "a whole number"}
            expected = names.get(kinds, "a number")
            raise _damaged(folder / "summary.json", f"has {key} = {value!r}, not {expected}")
    return figures


def _config(folder: Path) -> dict[str, Any]:
    """Read a run folder's config.json; raise `InputError` when it is missing or damaged."""
    return _json_object(folder / "config.json")


def _json_object(path: Path) -> dict[str, Any]:
    """Read a JSON object from `path`; raise `InputError` naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _damaged(path, "is missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _damaged(path, f"holds a JSON {type(data).__name__}, not an object")
    return data


def _damaged(path: Path, problem: str) -> InputError:
    """Build the error for a damaged file of a run folder: name it, say how to rewrite it."""
    folder = path.parent
    return InputError(
        f"Run folder {folder} is damaged: {path.name} {problem}. Run its config again with "
        f"--runs {folder.parent} to rewrite the folder, or delete the folder."
    )
