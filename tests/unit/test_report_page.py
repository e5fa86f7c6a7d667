"""The HTML report stays small: it lists the first trades and says where all of them are."""

from __future__ import annotations

import polars as pl

from pipeline.report import TRADE_ROWS, html_report


def _trades(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": [f"S{i}" for i in range(n)], "pnl": [float(i) for i in range(n)]}
    )


def test_a_few_trades_are_all_listed() -> None:
    page = html_report({"run_id": "r1", "name": "x"}, _trades(3), None)
    assert "Trades (3)</h2>" in page
    assert page.count("<tr><td>") == 3


def test_many_trades_list_the_first_and_point_to_the_parquet_file() -> None:
    page = html_report({"run_id": "r1", "name": "x"}, _trades(TRADE_ROWS + 5), None)
    assert f"the first {TRADE_ROWS} shown, all in trades.parquet" in page
    assert page.count("<tr><td>") == TRADE_ROWS
    assert f"<td>S{TRADE_ROWS - 1}</td>" in page
    assert f"<td>S{TRADE_ROWS}</td>" not in page
