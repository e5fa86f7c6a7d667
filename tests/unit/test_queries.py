from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import QueryError
from pipeline.queries import get_query, load_queries, parse_query

HEADER = """-- name: demo
-- description: A demo query.
-- param interval: bar interval, e.g. 1m
-- param symbol: one symbol, or NULL for all (default: NULL)
-- param limit: how many rows (default: 10)
SELECT $interval AS interval, $symbol AS symbol, $limit AS lim
"""


def write(tmp_path: Path, text: str, name: str = "demo.sql") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_header_gives_name_description_and_params(tmp_path: Path) -> None:
    query = parse_query(write(tmp_path, HEADER))
    assert query.name == "demo"
    assert query.description == "A demo query."
    assert [(p.name, p.required, p.default) for p in query.params] == [
        ("interval", True, None),
        ("symbol", False, "NULL"),
        ("limit", False, "10"),
    ]
    assert query.params[1].description == "one symbol, or NULL for all"


def test_bind_applies_defaults_and_null(tmp_path: Path) -> None:
    query = parse_query(write(tmp_path, HEADER))
    assert query.bind({"interval": "1m"}) == {"interval": "1m", "symbol": None, "limit": "10"}
    assert query.bind({"interval": "1m", "symbol": "null"})["symbol"] is None


def test_bind_refuses_unknown_param_with_closest(tmp_path: Path) -> None:
    query = parse_query(write(tmp_path, HEADER))
    with pytest.raises(QueryError, match="no parameter 'intervl'.*did you mean 'interval'"):
        query.bind({"intervl": "1m"})


def test_bind_names_missing_required_param(tmp_path: Path) -> None:
    query = parse_query(write(tmp_path, HEADER))
    with pytest.raises(QueryError, match="needs parameter 'interval'.*--param interval=VALUE"):
        query.bind({})


def test_header_without_description_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no description"):
        parse_query(write(tmp_path, "-- name: x\nSELECT 1\n"))


def test_unknown_query_names_the_closest(tmp_path: Path) -> None:
    write(tmp_path, HEADER)
    with pytest.raises(QueryError, match="did you mean 'demo'"):
        get_query("dmeo", tmp_path)


def test_missing_folder_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="PIPELINE_QUERIES"):
        load_queries(tmp_path / "nope")


def test_every_shipped_query_has_a_complete_header() -> None:
    queries = load_queries(Path(__file__).resolve().parents[2] / "queries")
    assert {"inventory", "quality_by_session", "gaps", "daily_ohlcv", "audit_bars"} <= set(queries)
    for query in queries.values():
        assert query.description
        assert query.path.stem == query.name
