"""The HTML report stays small: it lists the first trades and says where all of them are."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.report import TRADE_ROWS, envelope, equity_chart, html_report


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


def test_envelope_keeps_every_value_of_a_short_series() -> None:
    x, y = envelope(np.array([3.0, 1.0, 2.0]), columns=5)
    assert x.tolist() == [0.0, 1.0, 2.0]
    assert y.tolist() == [3.0, 1.0, 2.0]


def test_envelope_of_a_long_series_keeps_its_extremes_in_few_points() -> None:
    values = np.random.default_rng(1).normal(size=10_001).cumsum()
    x, y = envelope(values, columns=100)
    assert len(x) == len(y) == 200
    assert (np.diff(x) > 0).all()
    assert (y.min(), y.max()) == (values.min(), values.max())
    assert x[0] == 0
    assert x[-1] < len(values)
    low_x, low = envelope(values, columns=100, low_only=True)
    assert low_x.tolist() == x[::2].tolist()
    assert len(low) == 100
    assert low.min() == values.min()
    assert (low <= y[1::2]).all()


def test_chart_of_a_long_run_is_a_png() -> None:
    n = 50_000
    rng = np.random.default_rng(2)
    equity = pl.DataFrame({"equity": 1e6 + rng.normal(size=n).cumsum(), "drawdown": -rng.random(n)})
    assert equity_chart(equity).startswith(b"\x89PNG")
