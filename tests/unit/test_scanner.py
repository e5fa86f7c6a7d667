"""Pre-session scanners see only the bars before the session date, and rank deterministically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import QueryError
from pipeline.queries import get_query, parse_query
from pipeline.scanner import ScanSource, scan, visible
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
QUERIES = REPO / "queries"
SESSION = dt.date(2024, 7, 8)
DAYS = [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8)]
UTC = dt.UTC


def daily(volumes: dict[str, list[float]]) -> pl.DataFrame:
    """1d bars per symbol on DAYS (00:00 UTC), price 10, the given volumes."""
    rows = [
        (symbol, dt.datetime.combine(day, dt.time(), UTC), 10.0, 10.0, 10.0, 10.0, v)
        for symbol, vols in volumes.items()
        for day, v in zip(DAYS, vols, strict=True)
    ]
    return pl.DataFrame(
        rows,
        schema=["symbol", "ts", "open", "high", "low", "close", "volume"],
        orient="row",
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"), pl.col("volume").cast(pl.Float64))


def minute(symbol: str, at: dt.datetime, volume: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [symbol],
            "ts": [at],
            "open": [10.0],
            "high": [10.0],
            "low": [10.0],
            "close": [10.0],
            "volume": [volume],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def source(tmp_path: Path, volumes: dict[str, list[float]], **minutes: float) -> ScanSource:
    store = Store(tmp_path / "store")
    store.write("1d", daily(volumes))
    for symbol, volume in minutes.items():  # a pre-market bar ON the session date
        store.write("1m", minute(symbol, dt.datetime(2024, 7, 8, 12, 0, tzinfo=UTC), volume))
    return ScanSource(store, sorted(volumes), "XNYS")


def test_most_active_ignores_activity_on_the_session_date(tmp_path: Path) -> None:
    src = source(
        tmp_path,
        {"AAA": [5, 5, 5, 100, 5], "BBB": [5, 5, 5, 1000, 5], "CCC": [5, 5, 5, 10, 1e12]},
        CCC=1e12,
    )
    picked = scan(src, get_query("most_active", QUERIES), SESSION, {"top": 1, "sessions": 1})
    assert picked == ["BBB"]


def test_most_active_picks_the_symbol_active_the_day_before(tmp_path: Path) -> None:
    src = source(tmp_path, {"AAA": [1e9, 5, 5, 5, 5], "BBB": [5, 5, 5, 6, 5]})
    query = get_query("most_active", QUERIES)
    assert scan(src, query, SESSION, {"top": 1, "sessions": 1}) == ["BBB"]
    assert scan(src, query, SESSION, {"top": 1, "sessions": 4}) == ["AAA"]


def test_visible_bars_stop_before_the_session_date(tmp_path: Path) -> None:
    src = source(tmp_path, {"AAA": [1, 2, 3, 4, 5]}, AAA=7.0)
    seen = visible(src.bars, SESSION, "XNYS")
    assert seen.get_column("ts").max() == dt.datetime(2024, 7, 5, tzinfo=UTC)
    assert seen.get_column("volume").to_list() == [1, 2, 3, 4]


def test_ties_go_to_the_symbol_that_sorts_first(tmp_path: Path) -> None:
    src = source(tmp_path, {"ZZZ": [5] * 5, "MMM": [5] * 5, "AAA": [5] * 5})
    query = get_query("most_active", QUERIES)
    assert scan(src, query, SESSION, {"top": 2, "sessions": 3}) == ["AAA", "MMM"]
    assert scan(src, query, SESSION, {"top": 3, "sessions": 3}) == ["AAA", "MMM", "ZZZ"]


def test_gappers_use_the_last_session_before_the_date(tmp_path: Path) -> None:
    bars = daily({"AAA": [5] * 5, "BBB": [5] * 5})
    gap = (pl.col("symbol") == "AAA") & (pl.col("ts").dt.date() == dt.date(2024, 7, 5))
    bars = bars.with_columns(pl.when(gap).then(10.5).otherwise(pl.col("open")).alias("open"))
    bars = bars.with_columns(pl.max_horizontal("open", "high").alias("high"))
    store = Store(tmp_path / "store")
    store.write("1d", bars)
    src = ScanSource(store, ["AAA", "BBB"], "XNYS")
    query = get_query("gappers", QUERIES)
    assert scan(src, query, SESSION, {"threshold": 0.03}) == ["AAA"]
    assert scan(src, query, dt.date(2024, 7, 9), {"threshold": 0.03}) == []


def test_unknown_query_is_one_line_query_error() -> None:
    with pytest.raises(QueryError) as caught:
        get_query("most_activ", QUERIES)
    assert "\n" not in str(caught.value)
    assert "most_active" in str(caught.value)


def test_missing_param_is_one_line_query_error(tmp_path: Path) -> None:
    path = tmp_path / "needs.sql"
    path.write_text(
        "-- name: needs\n-- description: needs a floor\n-- param session: the date\n"
        "-- param floor: smallest volume\n"
        "SELECT DISTINCT symbol FROM bars WHERE volume > $floor::DOUBLE ORDER BY symbol\n",
        encoding="utf-8",
    )
    src = source(tmp_path, {"AAA": [5] * 5})
    with pytest.raises(QueryError) as caught:
        scan(src, parse_query(path), SESSION, {})
    assert "\n" not in str(caught.value)
    assert "'floor'" in str(caught.value)


def test_unknown_param_is_query_error(tmp_path: Path) -> None:
    src = source(tmp_path, {"AAA": [5] * 5})
    with pytest.raises(QueryError, match="no parameter 'tops'"):
        scan(src, get_query("most_active", QUERIES), SESSION, {"tops": 1})


def test_a_scan_cannot_read_files(tmp_path: Path) -> None:
    path = tmp_path / "files.sql"
    glob = str(tmp_path / "store" / "**" / "*.parquet")
    path.write_text(
        f"-- name: files\n-- description: reads files\n-- param session: the date\n"
        f"SELECT DISTINCT symbol FROM read_parquet('{glob}') WHERE $session IS NOT NULL\n",
        encoding="utf-8",
    )
    src = source(tmp_path, {"AAA": [5] * 5})
    with pytest.raises(QueryError, match="failed for session 2024-07-08"):
        scan(src, parse_query(path), SESSION, {})
