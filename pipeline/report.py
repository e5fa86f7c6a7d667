"""A run's pictures: the equity and drawdown chart (PNG) and a self-contained HTML report.

Both are written into the run folder by `pipeline.results.write_run`. The chart uses
matplotlib's headless Agg backend, imported only when a chart is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = ["CHART", "REPORT", "envelope", "equity_chart", "html_report", "write_report"]

#: File names inside the run folder.
CHART, REPORT = "equity.png", "report.html"
#: Points per series in the chart at most are twice this (a 9-inch figure at 100 dpi).
CHART_COLUMNS = 1_800
#: Trades listed in the HTML report at most (the first ones); all are in trades.parquet.
TRADE_ROWS = 1_000
#: Significant digits of the report's numbers, as in summary.json: cents of an equity in
#: the millions, a price to its tick.
DIGITS = 10
_TRADE_COLUMNS = (
    "symbol",
    "side",
    "entry_ts",
    "exit_ts",
    "quantity",
    "entry_price",
    "exit_price",
    "pnl",
    "return",
    "bars_held",
)


def equity_chart(equity: pl.DataFrame, *, title: str = "") -> bytes:
    """Return a PNG of equity (top) and drawdown (bottom) over the bars of `equity`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    # x is the bar number: sessions sit side by side, no overnight gaps
    x, y = envelope(equity.get_column("equity").to_numpy())
    top.plot(x, y, color="#1f5fa8", linewidth=1.0)
    top.set_ylabel("equity")
    top.set_title(title, fontsize=10)
    top.grid(alpha=0.3)
    x, deepest = envelope(equity.get_column("drawdown").to_numpy(), low_only=True)
    bottom.fill_between(x, 100.0 * deepest, 0.0, color="#c0392b", alpha=0.5, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.set_xlabel("bar")
    bottom.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def envelope(
    values: npt.NDArray[np.float64], *, columns: int = CHART_COLUMNS, low_only: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return (x, y) to draw `values` (x = position) with at most 2 points per column.

    More values than `columns` are cut into `columns` runs; each run is drawn by its
    lowest and highest value (only its lowest with `low_only`), so the chart shows the
    same extremes as drawing every value, at a fraction of the cost.
    """
    n = values.size
    if n <= columns:
        return np.arange(n, dtype=np.float64), values.astype(np.float64)
    starts = np.linspace(0, n, columns + 1).astype(np.int64)[:-1]
    low = np.minimum.reduceat(values, starts)
    if low_only:
        return starts.astype(np.float64), low
    high = np.maximum.reduceat(values, starts)
    width = np.diff(np.append(starts, n)) / 2
    return np.column_stack([starts, starts + width]).ravel(), np.column_stack([low, high]).ravel()


def html_report(summary: Mapping[str, Any], trades: pl.DataFrame, png: bytes | None) -> str:
    """Return a self-contained HTML page: the summary table, the chart inline, the trades.

    The page lists the first `TRADE_ROWS` trades and says where the rest are, so it
    stays small for runs with many trades.
    """
    title = f"Run {summary.get('run_id', '')} ({summary.get('name', '')})"
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_value(v, DIGITS))}</td></tr>"
        for k, v in sorted(summary.items())
    )
    image = (
        f'<img alt="equity and drawdown" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}">'
        if png
        else ""
    )
    columns = [c for c in _TRADE_COLUMNS if c in trades.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(v, DIGITS))}</td>" for v in row) + "</tr>"
        for row in trades.head(TRADE_ROWS).select(columns).iter_rows()
    )
    shown = (
        f"{trades.height}"
        if trades.height <= TRADE_ROWS
        else f"{trades.height}; the first {TRADE_ROWS} shown, all in trades.parquet"
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "th{background:#f4f4f4}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><h2>Summary</h2><table>{rows}</table>"
        f"<h2>Equity and drawdown</h2>{image}"
        f"<h2>Trades ({shown})</h2><table><tr>{head}</tr>{body}</table>"
        "</body></html>\n"
    )


def write_report(
    folder: Path, summary: Mapping[str, Any], equity: pl.DataFrame, trades: pl.DataFrame
) -> None:
    """Write ``equity.png`` and ``report.html`` into the run `folder`."""
    png = equity_chart(equity, title=f"{summary.get('name', '')} {summary.get('run_id', '')}")
    (folder / CHART).write_bytes(png)
    (folder / REPORT).write_text(html_report(summary, trades, png), encoding="utf-8")


def format_value(value: object, digits: int = 6) -> str:
    """Return a summary figure as text: floats to `digits` significant digits, dicts as k: v.

    A float too large for that to reach its cents (an equity of 101,799.73 would read
    101800) is written to the cent instead. Booleans read as in ``summary.json``.

    Examples
    --------
    >>> format_value(101799.734), format_value(0.0179973412), format_value(True)
    ('101799.73', '0.0179973', 'true')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if 10.0 ** (digits - 2) <= abs(value) < 1e15:
            return f"{value:.2f}"
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value)
