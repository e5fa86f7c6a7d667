"""Readers in other threads see consistent snapshots while the stream reveals a session."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest

from pipeline import schema
from pipeline.catalog import Catalog, get_catalog, reset_catalog

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
MINUTES, N_SYMBOLS = 390, 50
SYMBOLS = [f"S{i:02d}" for i in range(N_SYMBOLS)]
MAX_READS = 5_000


def full_session() -> pl.DataFrame:
    opens = pl.datetime_range(
        T0, T0 + dt.timedelta(minutes=MINUTES - 1), "1m", time_zone="UTC", eager=True
    )
    grid = pl.DataFrame({"ts": opens}).join(pl.DataFrame({"symbol": SYMBOLS}), how="cross")
    step = pl.int_range(pl.len()).cast(pl.Float64)
    return (
        grid.with_columns(
            interval=pl.lit("1m"),
            session=pl.col("ts").dt.date(),
            open=100.0 + step,
            high=101.0 + step,
            low=99.0 + step,
            close=100.5 + step,
            volume=pl.lit(10.0),
            ts_close=pl.col("ts") + pl.duration(minutes=1),
            n_src=pl.lit(1, pl.UInt32),
            complete=pl.lit(True),
        )
        .with_columns(available_at=pl.col("ts_close"))
        .select(list(schema.CATALOG_BARS))
        .sort(["available_at", "symbol", "interval"])
    )


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    reset_catalog()
    cat = get_catalog()
    cat.set_universe(SYMBOLS)
    yield cat
    reset_catalog()


def test_readers_never_see_a_torn_session_while_it_streams(catalog: Catalog) -> None:
    full = full_session()
    catalog.load_session(full)
    times = full.get_column("available_at").to_physical().to_numpy()
    done = threading.Event()

    def rows_until(moment: dt.datetime) -> int:
        micros = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        return int(np.searchsorted(times, micros, side="right"))

    def stream() -> int:
        steps = 0
        while (moment := catalog.next_time()) is not None:
            assert catalog.reveal(moment).height == N_SYMBOLS
            steps += 1
            time.sleep(0.0005)
        done.set()
        return steps

    def read_sql() -> set[int]:
        seen: set[int] = set()
        for _ in range(MAX_READS):
            if done.is_set():
                break
            got = catalog.sql("SELECT count(*) AS n, max(available_at) AS t FROM session_bars")
            n, t = got["n"][0], got["t"][0]
            assert n == (0 if t is None else rows_until(t)), (n, t)
            seen.add(n)
        return seen

    def read_bars() -> set[int]:
        seen: set[int] = set()
        for i in range(MAX_READS):
            if done.is_set():
                break
            bars = catalog.get_bars(SYMBOLS[i % N_SYMBOLS], "1m")
            if bars.height:
                assert bars.height == rows_until(bars["available_at"][-1]) // N_SYMBOLS
                assert bars["ts"].is_sorted()
            snapshot = catalog.table("session_bars")
            if snapshot.height:
                assert snapshot.height == rows_until(snapshot["available_at"][-1])
            seen.add(bars.height)
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        readers = [pool.submit(read_sql), pool.submit(read_sql), pool.submit(read_bars)]
        steps = pool.submit(stream).result(timeout=60)
        seen = [r.result(timeout=60) for r in readers]

    assert steps == MINUTES
    assert catalog.cursor == full.height
    assert catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0] == full.height
    # The readers ran while the stream moved: each saw several intermediate states.
    assert all(len({n for n in s if n > 0}) >= 3 for s in seen), [len(s) for s in seen]
