"""The catalog singleton: identity, zero-copy registration, the session cursor, the per-symbol
API and the read-only SQL surface."""

from __future__ import annotations

import ctypes
import datetime as dt
import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from pipeline import schema
from pipeline.catalog import Catalog, get_catalog, reset_catalog
from pipeline.errors import ConfigError, DataNotFoundError, QueryError

UTC = dt.UTC
T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=UTC)
SYMBOLS = ["AAA", "BBB", "CCC"]


def minute(i: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=i)


def session_bars(
    symbols: list[str], minutes: int, interval: str = "1m", start: int = 0
) -> pl.DataFrame:
    """Return 1m bars for `symbols` at `minutes` opens from `start`, sorted like a session."""
    rows = [
        {
            "symbol": s,
            "interval": interval,
            "ts": minute(start + i),
            "open": 100.0 + i,
            "high": 101.0 + i,
            "low": 99.0 + i,
            "close": 100.5 + i + k / 10,
            "volume": 10.0,
            "ts_close": minute(start + i + 1),
            "available_at": minute(start + i + 1),
            "n_src": 1,
            "complete": True,
        }
        for i in range(minutes)
        for k, s in enumerate(symbols)
    ]
    frame = pl.DataFrame(rows, schema=schema.CATALOG_BARS)
    return frame.sort(["available_at", "symbol", "interval"])


@pytest.fixture(autouse=True)
def _fresh_catalog() -> Iterator[None]:
    reset_catalog()
    yield
    reset_catalog()


@pytest.fixture
def catalog(_fresh_catalog: None) -> Catalog:
    cat = get_catalog()
    cat.set_universe(SYMBOLS)
    return cat


# -- one object -------------------------------------------------------------------------


def test_get_catalog_is_the_same_object_when_the_module_is_imported_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canonical = importlib.import_module("pipeline.catalog")
    spec = importlib.util.spec_from_file_location("catalog_alias", canonical.__file__)
    assert spec is not None
    assert spec.loader is not None
    alias = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "catalog_alias", alias)
    spec.loader.exec_module(alias)

    assert alias is not canonical
    assert alias.get_catalog() is canonical.get_catalog()
    assert alias.get_catalog() is get_catalog()


def test_get_catalog_is_the_same_object_from_many_threads() -> None:
    barrier = threading.Barrier(8)

    def fetch(_: int) -> Catalog:
        barrier.wait()
        return get_catalog()

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(fetch, range(8)))

    assert all(c is found[0] for c in found)
    assert found[0] is get_catalog()


def test_reset_catalog_gives_a_new_empty_catalog() -> None:
    first = get_catalog()
    first.set_universe(SYMBOLS)
    first.load_session(session_bars(SYMBOLS, 2))
    first.reveal(minute(2))

    reset_catalog()
    second = get_catalog()

    assert second is not first
    assert second.cursor == 0
    assert second.universe == ()
    assert second.sql("SELECT count(*) AS n FROM session_bars")["n"][0] == 0


# -- zero copy ----------------------------------------------------------------------------


def test_set_table_registers_the_frames_buffers_and_duckdb_reads_them(catalog: Catalog) -> None:
    catalog.set_table("history_bars", session_bars(SYMBOLS, 4))
    close = catalog.table("history_bars").get_column("close")
    polars_address = close.to_numpy().__array_interface__["data"][0]
    column = catalog.registered("history_bars").column("close")
    arrow_address = column.chunks[0].buffers()[1].address

    assert column.num_chunks == 1
    assert arrow_address == polars_address

    # Write through the shared memory behind both: DuckDB must see the new value.
    ctypes.c_double.from_address(arrow_address).value = 12345.0
    first = catalog.sql("SELECT close FROM history_bars LIMIT 1")["close"][0]
    assert first == 12345.0
    assert close[0] == 12345.0


def test_session_bars_is_a_slice_of_the_loaded_table_not_a_copy(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 5))
    catalog.reveal(minute(2))
    column = catalog.registered("session_bars").column("close")
    table_address = catalog.table("session_bars").get_column("close").to_numpy()
    address = table_address.__array_interface__["data"][0]

    assert len(column) == 6
    assert column.chunks[0].buffers()[1].address == address

    ctypes.c_double.from_address(address + 8).value = -1.0
    assert catalog.sql("SELECT min(close) AS m FROM session_bars")["m"][0] == -1.0


def test_symbol_enum_survives_the_round_trip(catalog: Catalog) -> None:
    catalog.set_table("history_bars", session_bars(["BBB", "AAA"], 2))

    stored = catalog.table("history_bars")
    arrow_type = catalog.registered("history_bars").schema.field("symbol").type
    found = catalog.sql("SELECT DISTINCT symbol FROM history_bars ORDER BY symbol")

    assert stored.schema["symbol"] == pl.Enum(SYMBOLS)
    assert str(arrow_type).startswith("dictionary")
    assert found["symbol"].to_list() == ["AAA", "BBB"]


def test_set_universe_casts_tables_written_before_it() -> None:
    cat = get_catalog()
    cat.set_table("history_bars", session_bars(["AAA"], 2))
    assert cat.table("history_bars").schema["symbol"] == pl.String

    cat.set_universe(["BBB", "AAA"])

    assert cat.universe == ("AAA", "BBB")
    assert cat.table("history_bars").schema["symbol"] == pl.Enum(["AAA", "BBB"])


# -- writes ---------------------------------------------------------------------------------


def test_symbol_outside_the_universe_is_refused_on_write(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"'AAB'.*universe.*AAA, BBB, CCC"):
        catalog.set_table("history_bars", session_bars(["AAB"], 1))


def test_unknown_table_name_lists_the_valid_names(catalog: Catalog) -> None:
    with pytest.raises(QueryError, match="did you mean 'history_bars'"):
        catalog.set_table("history_bar", session_bars(SYMBOLS, 1))


def test_set_table_checks_the_schema(catalog: Catalog) -> None:
    frame = session_bars(SYMBOLS, 1).with_columns(pl.col("volume").cast(pl.Int64))
    with pytest.raises(schema.SchemaMismatchError, match="volume"):
        catalog.set_table("history_bars", frame)
    with pytest.raises(schema.SchemaMismatchError, match="unexpected columns"):
        catalog.set_table("history_bars", session_bars(SYMBOLS, 1).with_columns(x=pl.lit(1)))


def test_append_table_concatenates(catalog: Catalog) -> None:
    catalog.set_table("history_bars", session_bars(SYMBOLS, 2))
    catalog.append_table("history_bars", session_bars(SYMBOLS, 2, start=2))

    assert catalog.sql("SELECT count(*) AS n FROM history_bars")["n"][0] == 12
    assert catalog.get_bars("AAA", "1m")["ts"].to_list() == [minute(i) for i in range(4)]


# -- the session stream ------------------------------------------------------------------


def test_reveal_returns_the_rows_of_each_timestamp_and_count_equals_cursor(
    catalog: Catalog,
) -> None:
    full = session_bars(SYMBOLS, 4)
    catalog.load_session(full)
    assert catalog.next_time() == minute(1)

    for step in range(1, 5):
        rows = catalog.reveal(minute(step))
        count = catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0]

        assert rows["available_at"].to_list() == [minute(step)] * 3
        assert rows["symbol"].to_list() == SYMBOLS
        assert catalog.cursor == 3 * step == count
        assert catalog.clock == minute(step)

    assert catalog.next_time() is None
    assert catalog.table("session_bars").equals(full.cast({"symbol": pl.Enum(SYMBOLS)}))


def test_reveal_between_timestamps_reveals_nothing_new(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 3))
    catalog.reveal(minute(1))

    rows = catalog.reveal(minute(1) + dt.timedelta(seconds=30))

    assert rows.height == 0
    assert catalog.cursor == 3


def test_reveal_refuses_going_back_and_naive_times(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 3))
    catalog.reveal(minute(2))
    with pytest.raises(ValueError, match="before the clock"):
        catalog.reveal(minute(1))
    with pytest.raises(ValueError, match="naive"):
        catalog.reveal(dt.datetime(2024, 7, 1, 14, 0))


def test_load_session_refuses_an_unsorted_table(catalog: Catalog) -> None:
    bars = session_bars(SYMBOLS, 3)
    with pytest.raises(ValueError, match="not sorted"):
        catalog.load_session(bars.reverse())
    with pytest.raises(ValueError, match="row 1"):
        catalog.load_session(bars.sort(["available_at", "symbol"], descending=[False, True]))


def test_append_bar_shows_up_in_get_bars_and_sql(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 2))
    catalog.reveal(minute(2))
    bar = {"ts": minute(2), "open": 5.0, "high": 6.0, "low": 4.0, "close": 5.5, "volume": 1}

    catalog.append_bar("BBB", "1m", bar)

    latest = catalog.get_latest_bar("BBB", "1m")
    assert latest is not None
    assert latest["close"] == 5.5
    assert latest["available_at"] == minute(3)
    assert catalog.get_bars("BBB", "1m").height == 3
    found = catalog.sql("SELECT close FROM session_bars WHERE available_at = $t", t=minute(3))
    assert found["close"].to_list() == [5.5]
    assert catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0] == 7


def test_clear_session_bars_empties_the_stream(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 2))
    catalog.reveal(minute(2))

    catalog.clear_session_bars()

    assert catalog.cursor == 0
    assert catalog.clock is None
    assert catalog.table("session_bars").height == 0
    assert catalog.table("session_bars").schema["symbol"] == pl.Enum(SYMBOLS)


# -- the per-symbol API ---------------------------------------------------------------------


def test_get_bars_joins_history_and_revealed_session_by_ts(catalog: Catalog) -> None:
    catalog.set_table("history_bars", session_bars(SYMBOLS, 3, start=-10))
    catalog.load_session(session_bars(SYMBOLS, 5))
    catalog.reveal(minute(2))

    bars = catalog.get_bars("CCC", "1m")
    last_three = catalog.get_bars("CCC", "1m", n=3)

    assert bars["ts"].to_list() == [minute(i) for i in (-10, -9, -8, 0, 1)]
    assert last_three["ts"].to_list() == [minute(i) for i in (-8, 0, 1)]
    assert set(bars["symbol"].to_list()) == {"CCC"}
    assert catalog.get_bars("CCC", "5m").height == 0
    assert catalog.get_latest_bar("CCC", "5m") is None


def test_get_latest_quote_is_the_last_close_on_both_sides(catalog: Catalog) -> None:
    five = session_bars(SYMBOLS, 1, interval="5m").with_columns(
        close=pl.lit(1.0), ts_close=pl.lit(minute(2)), available_at=pl.lit(minute(2))
    )
    catalog.load_session(
        pl.concat([session_bars(SYMBOLS, 3), five]).sort(["available_at", "symbol", "interval"])
    )
    catalog.reveal(minute(2))

    quote = catalog.get_latest_quote("BBB")

    assert quote.bid == quote.ask == 101.6  # the 1m bar wins the tie with the 5m bar
    assert (quote.bid_size, quote.ask_size, quote.source) == (0.0, 0.0, "bar")
    assert quote.ts == minute(2)
    assert quote.symbol == "BBB"


def test_get_latest_quote_without_a_visible_bar_raises(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 3))
    with pytest.raises(DataNotFoundError, match="'AAA'.*no quote"):
        catalog.get_latest_quote("AAA")


def test_set_quality_upserts_one_row(catalog: Catalog) -> None:
    day1, day2 = dt.date(2024, 7, 1), dt.date(2024, 7, 2)
    catalog.set_quality("AAA", "1m", day1, expected=390, present=195)
    catalog.set_quality("AAA", "1m", day2, expected=390, present=390)
    catalog.set_quality("AAA", "1m", day1, expected=390, present=390)

    assert catalog.table("quality").height == 2
    assert catalog.get_quality("AAA", "1m", day1) == 100.0
    assert catalog.get_quality("AAA", "1m") == 100.0
    catalog.set_quality("AAA", "1m", day2, expected=210, present=21)
    assert catalog.get_quality("AAA", "1m") == 10.0
    assert catalog.get_quality("BBB", "1m") is None
    assert catalog.sql("SELECT count(*) AS n FROM quality")["n"][0] == 2


def test_historical_indicator_round_trip_respects_the_clock(catalog: Catalog) -> None:
    day = dt.datetime(2024, 6, 28, tzinfo=UTC)
    catalog.set_historical_indicator("AAA", "atr_14", 1.5, ts=day, available_at=T0)
    catalog.set_historical_indicator("AAA", "atr_14", 2.5, ts=day, available_at=T0)
    later = T0 + dt.timedelta(days=1)
    catalog.set_historical_indicator("AAA", "atr_14", 9.9, ts=later, available_at=later)

    assert catalog.table("indicators").height == 2
    assert catalog.get_historical_indicator("AAA", "atr_14") == 9.9
    catalog.load_session(session_bars(SYMBOLS, 1))
    catalog.reveal(minute(1))
    assert catalog.get_historical_indicator("AAA", "atr_14") == 2.5
    assert catalog.get_historical_indicator("AAA", "sma_20") is None


def test_unknown_symbol_raises_naming_it_and_the_universe(catalog: Catalog) -> None:
    with pytest.raises(DataNotFoundError, match=r"'AAAA'.*AAA, BBB, CCC.*Did you mean 'AAA'"):
        catalog.get_bars("AAAA", "1m")
    with pytest.raises(DataNotFoundError, match="'ZZZ'"):
        catalog.get_latest_quote("ZZZ")


# -- SQL ----------------------------------------------------------------------------------------


def test_named_parameters_bind(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 3))
    catalog.reveal(minute(3))

    found = catalog.sql(
        "SELECT * FROM session_bars WHERE symbol = $s AND ts >= $t", s="AAA", t=minute(1)
    )

    assert found.height == 2
    assert found["symbol"].to_list() == ["AAA", "AAA"]
    assert found.schema["ts"] == schema.TS


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO quality SELECT * FROM quality",
        "COPY session_bars TO '{path}'",
        "CREATE TABLE t AS SELECT * FROM session_bars",
        "DROP VIEW session_bars",
        "ATTACH '{path}' AS other",
        "SELECT 1; DROP VIEW session_bars",
        "SET threads = 1",
        "",
    ],
)
def test_statements_other_than_one_select_are_refused(
    catalog: Catalog, statement: str, tmp_path: Path
) -> None:
    catalog.load_session(session_bars(SYMBOLS, 2))
    catalog.reveal(minute(2))
    path = tmp_path / "out.db"
    before = catalog.sql("SHOW TABLES")

    with pytest.raises(QueryError, match="read-only|exactly one statement"):
        catalog.sql(statement.format(path=path))

    assert not path.exists()
    assert catalog.sql("SHOW TABLES").equals(before)
    assert catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0] == 6


def test_sql_error_becomes_query_error_listing_tables(catalog: Catalog) -> None:
    with pytest.raises(QueryError, match=r"(?s)nope.*Tables: .*session_bars"):
        catalog.sql("SELECT nope FROM session_bars")
    with pytest.raises(QueryError, match="does not parse"):
        catalog.sql("SELEC 1")
    with pytest.raises(QueryError, match="by name"):
        catalog.sql("SELECT * FROM session_bars WHERE symbol = $s")


def test_register_extra_is_queryable_and_cannot_shadow_a_table(catalog: Catalog) -> None:
    days = pl.DataFrame({"session": [dt.date(2024, 7, 1)]})
    catalog.register_extra("calendar", days)

    assert catalog.sql("SELECT count(*) AS n FROM calendar")["n"][0] == 1
    assert "calendar" in catalog.tables()
    with pytest.raises(QueryError, match="catalog table"):
        catalog.register_extra("quality", days)


def test_connection_yields_the_synced_connection(catalog: Catalog) -> None:
    catalog.set_table("history_bars", session_bars(SYMBOLS, 2))
    with catalog.connection() as con:
        found = con.sql("SELECT count(*) FROM history_bars").fetchall()
    assert found == [(6,)]


def test_a_snapshot_does_not_move_when_the_stream_does(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 3))
    catalog.reveal(minute(1))
    before = catalog.table("session_bars")

    catalog.reveal(minute(3))

    assert before.height == 3
    assert catalog.table("session_bars").height == 9


def test_append_table_to_session_bars_joins_the_appended_rows(catalog: Catalog) -> None:
    catalog.load_session(session_bars(SYMBOLS, 2))
    catalog.reveal(minute(1))

    catalog.append_table("session_bars", session_bars(["AAA"], 1, interval="1h", start=5))

    assert catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0] == 4
    assert catalog.get_bars("AAA", "60m")["ts"].to_list() == [minute(5)]
    assert catalog.cursor == 3


def test_set_quality_refuses_more_present_than_expected(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="present"):
        catalog.set_quality("AAA", "1m", dt.date(2024, 7, 1), expected=10, present=11)


def test_a_closed_catalog_refuses_sql() -> None:
    old = get_catalog()
    reset_catalog()
    with pytest.raises(QueryError, match="closed"):
        old.sql("SELECT 1")
    assert get_catalog().sql("SELECT 1 AS x")["x"][0] == 1


def test_session_indicators_are_revealed_with_their_time(catalog: Catalog) -> None:
    t0 = dt.datetime(2024, 7, 1, 13, 31, tzinfo=dt.UTC)
    values = pl.DataFrame(
        {
            "symbol": ["AAA", "AAA"],
            "name": ["sma_2", "sma_2"],
            "interval": ["1m", "1m"],
            "ts": [t0 - dt.timedelta(minutes=1), t0],
            "value": [1.0, 2.0],
            "available_at": [t0, t0 + dt.timedelta(minutes=1)],
        }
    )
    catalog.set_historical_indicator(
        "AAA",
        "prev_close",
        9.0,
        ts=t0 - dt.timedelta(days=1),
        available_at=t0 - dt.timedelta(hours=1),
    )
    catalog.load_session(schema.empty(schema.CATALOG_BARS), values)
    assert catalog.table("indicators")["name"].to_list() == ["prev_close"]
    _, new = catalog.reveal_step(t0)
    assert new["value"].to_list() == [1.0]
    assert catalog.sql("SELECT count(*) AS n FROM indicators")["n"][0] == 2
    assert catalog.get_historical_indicator("AAA", "sma_2", "1m") == 1.0
    catalog.reveal(t0 + dt.timedelta(minutes=1))
    assert catalog.get_historical_indicator("AAA", "sma_2", "1m") == 2.0
    catalog.clear_session_bars()
    assert catalog.table("indicators")["name"].to_list() == ["prev_close"]
