"""Every saved query runs against the sample store, and gives the right answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from pipeline.catalog import Catalog, get_catalog, reset_catalog
from pipeline.check import check_store
from pipeline.queries import attach_store, load_queries, run_query
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
PARAMS = {
    "inventory": {},
    "quality_by_session": {"interval": "1m"},
    "gaps": {"interval": "1m"},
    "daily_ohlcv": {"start": "2024-07-01", "end": "2024-07-05"},
    "audit_bars": {"interval": "1m"},
    "derive_bars": {"target": "15m", "base": "1m"},
    "most_active": {"session": "2024-07-08", "top": "2", "sessions": "5"},
    "gappers": {"session": "2024-07-10", "threshold": "0.01"},
}


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    reset_catalog()
    cat = get_catalog()
    attach_store(cat, Store(REPO / "data"))
    yield cat
    reset_catalog()


def test_every_saved_query_runs_on_the_sample(catalog: Catalog) -> None:
    queries = load_queries(REPO / "queries")
    assert set(queries) >= set(PARAMS), "give every saved query parameters in PARAMS"
    for name, query in queries.items():
        result = run_query(catalog, query, PARAMS.get(name, {}))
        assert isinstance(result, pl.DataFrame), name


def test_inventory_query_equals_store_inventory(catalog: Catalog) -> None:
    result = run_query(catalog, load_queries(REPO / "queries")["inventory"], {})
    expected = Store(REPO / "data").inventory().drop("files")
    assert sorted(result.rows()) == sorted(expected.rows())


def test_sample_has_no_rule_breaking_bars(catalog: Catalog) -> None:
    audit = load_queries(REPO / "queries")["audit_bars"]
    for interval in ("1m", "1d"):
        assert run_query(catalog, audit, {"interval": interval}).is_empty()


def test_sql_quality_and_gaps_equal_the_polars_check(catalog: Catalog) -> None:
    queries = load_queries(REPO / "queries")
    polars_side = check_store(Store(REPO / "data"), intervals=["1m"])
    sql_quality = run_query(catalog, queries["quality_by_session"], {"interval": "1m"})
    assert sql_quality.rows() == polars_side.sessions.drop("early_close").rows()
    sql_gaps = run_query(catalog, queries["gaps"], {"interval": "1m"})
    assert sql_gaps.rows() == polars_side.gaps.rows()


def test_daily_from_minutes_equals_the_stored_daily_bars(catalog: Catalog) -> None:
    daily = run_query(catalog, load_queries(REPO / "queries")["daily_ohlcv"], {})
    stored = (
        Store(REPO / "data")
        .read("1d", None, dt.date(2024, 6, 25), dt.date(2024, 7, 10))
        .collect()
        .with_columns(session=pl.col("ts").dt.date())
    )
    joined = daily.join(stored, on=["symbol", "session"], suffix="_stored")
    assert joined.height == daily.height == 3 * 11
    for col in ("open", "high", "low", "close", "volume"):
        assert (joined[col] - joined[f"{col}_stored"]).abs().max() == pytest.approx(0.0, abs=1e-9)
