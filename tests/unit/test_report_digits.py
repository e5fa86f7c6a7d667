"""The HTML report shows the run's figures as summary.json and trades.parquet hold them."""

from __future__ import annotations

import polars as pl

from pipeline.report import format_value, html_report

SUMMARY = {
    "run_id": "r1",
    "name": "x",
    "final_equity": 1_234_567.89,
    "traded_notional": 1_861_534.88,
    "fill_at_close": False,
    "sharpe": -2.388324174,
}


def test_money_keeps_its_cents_and_never_reads_in_exponent_form() -> None:
    page = html_report(SUMMARY, pl.DataFrame({"symbol": ["ES"], "pnl": [1_500_012.5]}), None)
    assert "<td>1234567.89</td>" in page
    assert "<td>1861534.88</td>" in page
    assert "<td>-2.388324174</td>" in page  # as in summary.json: 10 significant digits
    assert "<td>1500012.5</td>" in page
    assert "e+06" not in page


def test_a_trade_price_reads_to_its_tick() -> None:
    trades = pl.DataFrame({"symbol": ["NQ"], "entry_price": [18_234.25], "exit_price": [18_240.75]})
    page = html_report(SUMMARY, trades, None)
    assert "<td>18234.25</td><td>18240.75</td>" in page


def test_booleans_read_as_in_summary_json() -> None:
    page = html_report(SUMMARY, pl.DataFrame({"symbol": ["ES"]}), None)
    assert "<th>fill_at_close</th><td>false</td>" in page


def test_the_run_table_rounds_ratios_but_keeps_the_cents_of_money() -> None:
    assert format_value(101_799.734) == "101799.73"  # 6 significant digits: 101800
    assert format_value(1_861_534.88) == "1861534.88"
    assert format_value(0.0179973412) == "0.0179973"
    assert format_value(1342.404) == "1342.4"
    assert format_value(-23_456.789) == "-23456.79"
    assert format_value(1e20) == "1e+20"
    assert format_value(float("nan")) == "nan"
