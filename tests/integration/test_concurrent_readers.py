"""Readers in other threads during a real streamed run see whole steps, never torn ones (issue 7).

Two sessions of the sample store run through the coordinator (phases 1 to 6) in one
thread. A subscriber records, at every step, what a quiet reader sees then: the cursor,
SQL figures over ``session_bars``, ``indicators`` and ``quality`` in one query, and
`Catalog.get_bars` of every symbol and streamed interval. Meanwhile reader threads call
`Catalog.sql` and `Catalog.get_bars` as fast as they can, pairing each result with the
(cursor, clock) it saw through `Catalog.hold`, or reading without it (then one query
must still match one step, named by its latest ``available_at``). Afterwards each
observation is checked against the record of its step: the row count is the cursor's,
nothing is later than the clock, and the tables agree with each other.
``pytest tests/integration/test_concurrent_readers.py -s`` prints the number of checks.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline import schema
from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.stream import Step

SAMPLE = Path(__file__).resolve().parents[2] / "data"
SYMBOLS = ("ACME", "BOLT", "TINY")
STREAMS = ("1m", "5m")
MAX_READS = 1_000  # per reader: a bound in case the stream stalls
PAUSE = 0.01  # seconds between a reader's reads, so the stream is not starved of the lock
FIGURES = """
    SELECT (SELECT count(*) FROM session_bars) AS bars,
           (SELECT max(available_at) FROM session_bars) AS latest,
           (SELECT count(*) FROM indicators) AS n_values,
           (SELECT sum(present)::BIGINT FROM quality) AS present
"""

Figures = tuple[Any, ...]
Bars = tuple[tuple[int, Any], ...]


def figures(catalog: Catalog) -> Figures:
    return catalog.sql(FIGURES).row(0)


def bars(catalog: Catalog) -> Bars:
    """(rows, last available_at) of get_bars for each symbol and streamed interval."""
    seen = []
    for symbol in SYMBOLS:
        for interval in STREAMS:
            frame = catalog.get_bars(symbol, interval)
            assert frame["ts"].is_sorted()
            seen.append((frame.height, frame["available_at"].max()))
    return tuple(seen)


class Recorder:
    """A subscriber: what a reader sees at each step, keyed by the step's clock."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.steps: dict[dt.datetime, tuple[int, Figures, Bars]] = {}

    def __call__(self, step: Step) -> None:
        self.steps[step.clock] = (self.catalog.cursor, figures(self.catalog), bars(self.catalog))


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    cat = Catalog()
    yield cat
    cat.close()


def run_config() -> Any:
    return parse_config(
        {
            "name": "readers",
            "start": "2024-07-02",
            "end": "2024-07-03",
            "symbols": list(SYMBOLS),
            "streams": list(STREAMS),
            "data_root": str(SAMPLE),
            "history": [{"interval": "1m", "sessions": 2}, {"interval": "1d", "sessions": 20}],
            "historical_indicators": [{"name": "prev", "field": "close"}],
            "indicators": [
                {"name": "sma", "interval": "1m", "period": 5},
                {"name": "ema", "interval": "5m", "period": 3},
            ],
        }
    )


@pytest.mark.slow
def test_readers_during_a_real_stream_see_the_step_their_cursor_names(catalog: Catalog) -> None:
    coordinator = Coordinator(run_config(), Store(SAMPLE), catalog)
    recorder = Recorder(catalog)
    done = threading.Event()

    def stream() -> int:
        try:
            return coordinator.run([recorder]).sessions.height
        finally:
            done.set()

    def reader(read: Callable[[], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        seen = []
        for _ in range(MAX_READS):
            if done.is_set():
                break
            seen.append(read())
            time.sleep(PAUSE)
        return seen

    def held_sql() -> tuple[Any, ...]:
        with catalog.hold() as (cursor, clock):
            return cursor, clock, figures(catalog)

    def held_bars() -> tuple[Any, ...]:
        with catalog.hold() as (cursor, clock):
            return cursor, clock, bars(catalog)

    def free_sql() -> tuple[Any, ...]:
        return (figures(catalog),)

    with ThreadPoolExecutor(max_workers=4) as pool:
        kinds = {"held sql": held_sql, "held get_bars": held_bars, "free sql": free_sql}
        futures = {kind: pool.submit(reader, read) for kind, read in kinds.items()}
        sessions = pool.submit(stream).result(timeout=300)
        seen = {kind: future.result(timeout=60) for kind, future in futures.items()}

    assert sessions == 2
    steps = recorder.steps
    assert len(steps) == 390 + 210  # a full session and the 2024-07-03 early close
    checks: Counter[str] = Counter()
    for kind in ("held sql", "held get_bars"):
        for cursor, clock, result in seen[kind]:
            if clock is None:  # between sessions: nothing revealed yet
                assert cursor == 0
                continue
            assert clock in steps, f"{kind} saw clock {clock}, which no step revealed"
            step_cursor, step_figures, step_bars = steps[clock]
            assert cursor == step_cursor, (kind, clock)
            if kind == "held sql":
                assert result == step_figures, (clock, result, step_figures)
                assert result[0] == cursor, "session_bars row count is not the cursor's"
                assert result[1] == clock, "session_bars holds a row later than the clock"
            else:
                assert result == step_bars, (clock, result, step_bars)
                assert all(last is None or last <= clock for _, last in result)
            checks[kind] += 1
    for (result,) in seen["free sql"]:
        rows, latest = result[0], result[1]
        if latest is None:
            assert rows == 0
            continue
        assert latest in steps, f"free sql saw rows up to {latest}, which no step revealed"
        assert result == steps[latest][1], (latest, result, steps[latest][1])
        checks["free sql"] += 1

    print(
        f"\nconcurrent reader checks: {sum(checks.values())} "
        f"({', '.join(f'{kind} {n}' for kind, n in checks.items())}) over {len(steps)} steps"
    )
    for kind in kinds:  # each reader saw the stream move, not just its start or end
        clocks = {r[1] if kind != "free sql" else r[0][1] for r in seen[kind]}
        assert checks[kind] >= 20, (kind, checks)
        assert len(clocks - {None}) >= 5, (kind, len(clocks))


def test_hold_keeps_the_stream_still_until_the_block_ends(catalog: Catalog) -> None:
    opens = [dt.datetime(2024, 7, 1, 13, 30 + m, tzinfo=dt.UTC) for m in range(2)]
    closes = [t + dt.timedelta(minutes=1) for t in opens]
    table = pl.DataFrame(
        {
            "symbol": "ACME",
            "interval": "1m",
            "session": dt.date(2024, 7, 1),
            "ts": opens,
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
            "ts_close": closes,
            "available_at": closes,
            "n_src": 1,
            "complete": True,
        },
        schema=schema.CATALOG_BARS,
    )
    catalog.load_session(table)
    catalog.reveal(closes[0])
    stream = threading.Thread(target=catalog.reveal, args=(closes[1],))
    with catalog.hold() as (cursor, clock):
        stream.start()
        stream.join(0.2)
        assert stream.is_alive(), "reveal went ahead inside a hold"
        count = catalog.sql("SELECT count(*) AS n FROM session_bars")["n"][0]
        assert (cursor, clock, count) == (1, closes[0], 1)
    stream.join(5)
    assert not stream.is_alive()
    assert (catalog.cursor, catalog.clock) == (2, closes[1])
