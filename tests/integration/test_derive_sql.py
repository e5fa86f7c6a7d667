"""Two engines agree: `pipeline.derive` and ``queries/derive_bars.sql`` give the same bars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar, schema
from pipeline.derive import annotate, derive
from pipeline.importing import ImportOptions, import_files
from pipeline.queries import parse_query
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
QUERY = parse_query(REPO / "queries" / "derive_bars.sql")
MIC = "XNYS"
TARGETS = ["5m", "15m", "1h", "1d"]


def whole_weeks(store: Store) -> pl.DataFrame:
    """The store's sessions, from the Monday before its first bar to the Sunday after its last."""
    inventory = store.inventory()
    first, last = inventory["first"].min(), inventory["last"].max()
    assert isinstance(first, dt.datetime)
    assert isinstance(last, dt.datetime)
    start = first.date() - dt.timedelta(days=first.weekday())
    end = last.date() + dt.timedelta(days=6 - last.weekday())
    return calendar.sessions(MIC, start, end)


def connect(store: Store, sessions: pl.DataFrame) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``bars`` view over `store` and ``calendar_sessions``."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    glob = str(store.bars_dir / "interval=*" / "symbol=*" / "year=*" / "part-0.parquet")
    con.sql(
        "CREATE VIEW bars AS SELECT interval, symbol, ts, open, high, low, close, volume "
        f"FROM read_parquet('{glob}', hive_partitioning = true, hive_types = "
        "{'interval': VARCHAR, 'symbol': VARCHAR, 'year': INTEGER})"
    )
    con.register("calendar_sessions", sessions.to_arrow())
    return con


def run_sql(con: duckdb.DuckDBPyConnection, **given: str) -> pl.DataFrame:
    """Run the saved query with text parameters, as the CLI passes them."""
    result = con.sql(QUERY.sql, params=QUERY.bind(given)).to_arrow_table()
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    return frame


def run_polars(
    store: Store, sessions: pl.DataFrame, target: str, base: str, *, emit: bool
) -> pl.DataFrame:
    """Annotate the stored `base` bars (Enum symbols, as in memory) and derive `target`."""
    enum = schema.symbol_dtype(store.symbols(base))
    bars = store.read(base).with_columns(pl.col("symbol").cast(enum))
    catalog = annotate(bars, base, sessions, calendar.timezone(MIC))
    out = derive(catalog, sessions, target, base, emit_incomplete=emit).collect()
    return out.with_columns(pl.col("symbol").cast(pl.String))


def assert_engines_agree(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    sessions: pl.DataFrame,
    target: str,
    base: str = "1m",
    *,
    emit: bool,
) -> pl.DataFrame:
    sql = run_sql(con, target=target, base=base, emit_incomplete=str(emit).lower())
    assert sql.schema == schema.CATALOG_BARS
    polars_side = run_polars(store, sessions, target, base, emit=emit)
    assert_frame_equal(sql, polars_side)
    return sql


# ------------------------------------------------------------------ the sample store
@pytest.fixture(scope="module")
def sample() -> Iterator[tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame]]:
    store = Store(REPO / "data")
    sessions = whole_weeks(store)
    con = connect(store, sessions)
    yield con, store, sessions
    con.close()


@pytest.mark.parametrize("emit", [False, True])
@pytest.mark.parametrize("target", TARGETS)
def test_sample_bars_from_1m_agree(
    sample: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame], target: str, emit: bool
) -> None:
    out = assert_engines_agree(*sample, target, emit=emit)
    assert out.height > 0
    assert out["complete"].all() or emit


@pytest.mark.parametrize("emit", [False, True])
@pytest.mark.parametrize(("target", "base"), [("1w", "1m"), ("1w", "1d"), ("1d", "1d")])
def test_sample_weekly_and_daily_bars_agree(
    sample: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame],
    target: str,
    base: str,
    emit: bool,
) -> None:
    assert assert_engines_agree(*sample, target, base, emit=emit).height > 0


def test_sample_incomplete_windows_are_the_ones_with_missing_minutes(
    sample: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame],
) -> None:
    con, _, _ = sample
    flagged = run_sql(con, target="15m", symbol="BOLT", emit_incomplete="true").filter(
        ~pl.col("complete")
    )
    # BOLT misses 10:15-10:17 ET on 2024-07-01 and 14:02 ET on 2024-07-09 (pipeline.sample)
    assert flagged.select("ts", "n_src").rows() == [
        (dt.datetime(2024, 7, 1, 14, 15, tzinfo=dt.UTC), 12),
        (dt.datetime(2024, 7, 9, 18, 0, tzinfo=dt.UTC), 14),
    ]


def test_sql_names_the_target_canonically_and_filters_a_symbol(
    sample: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame],
) -> None:
    con, store, sessions = sample
    sql = run_sql(con, target="60m", symbol="ACME")
    polars_side = run_polars(store, sessions, "1h", "1m", emit=False)
    assert_frame_equal(sql, polars_side.filter(pl.col("symbol") == "ACME"))
    assert sql["interval"].unique().to_list() == ["1h"]


def test_sql_refuses_a_target_the_base_cannot_produce(
    sample: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame],
) -> None:
    con, _, _ = sample
    with pytest.raises(duckdb.Error, match="cannot derive 1m bars from 5m bars"):
        run_sql(con, target="1m", base="5m")


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def real_store(
    real_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame]]:
    """LEAN GOOG minutes (with the 2015-12-24 early close) and eqker SPY minutes."""
    store = Store(tmp_path_factory.mktemp("derive-real") / "store")
    goog = real_data / "lean-algoseek/equity/usa/minute/goog"
    import_files(store, [goog], ImportOptions(preset="lean"))
    spy = real_data / "eqker-24sym-2019/SPY_1min.csv"
    import_files(store, [spy], ImportOptions(preset="alphavantage"))
    sessions = whole_weeks(store)
    con = connect(store, sessions)
    yield con, store, sessions
    con.close()


@pytest.mark.real_data
@pytest.mark.parametrize("emit", [False, True])
@pytest.mark.parametrize("target", TARGETS)
def test_real_bars_from_1m_agree(
    real_store: tuple[duckdb.DuckDBPyConnection, Store, pl.DataFrame], target: str, emit: bool
) -> None:
    out = assert_engines_agree(*real_store, target, emit=emit)
    assert set(out["symbol"]) == {"GOOG", "SPY"}
