"""The session flow over the sample store: phases, logs, stream equals batch, no look-ahead."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar, derive, schema, session
from pipeline.catalog import Catalog, get_catalog, reset_catalog
from pipeline.config import load_config
from pipeline.errors import DataNotFoundError, IntervalError
from pipeline.intervals import Interval
from pipeline.runner import Coordinator, RunReport
from pipeline.store import Store
from pipeline.stream import SessionQuality, Step, stream

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
CONFIG = load_config(REPO / "configs" / "sample.toml")
NY = "America/New_York"


@dataclasses.dataclass
class Recorder:
    """A subscriber that keeps every step and what the catalog showed at that moment."""

    catalog: Catalog
    steps: list[Step] = dataclasses.field(default_factory=list)
    visible: list[tuple[dt.datetime, int, dt.datetime | None]] = dataclasses.field(
        default_factory=list
    )

    def __call__(self, step: Step) -> None:
        self.steps.append(step)
        seen = self.catalog.sql("SELECT count(*) AS n, max(available_at) AS t FROM session_bars")
        self.visible.append((step.clock, seen["n"][0], seen["t"][0]))


@dataclasses.dataclass(frozen=True)
class Run:
    report: RunReport
    recorder: Recorder
    records: list[logging.LogRecord]
    last_table: pl.DataFrame
    last_history: pl.DataFrame


@pytest.fixture(scope="module")
def sample_run() -> Iterator[Run]:
    reset_catalog()
    catalog = get_catalog()
    recorder = Recorder(catalog)
    handler = _ListHandler()
    logger = logging.getLogger("pipeline.flow")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        report = Coordinator(CONFIG, STORE, catalog).run([recorder])
        yield Run(
            report,
            recorder,
            handler.records,
            catalog.table("session_bars"),
            catalog.table("history_bars"),
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        reset_catalog()


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def phases(run: Run) -> list[str]:
    found = (re.search(r"PHASE_([0-9.]+):", r.getMessage()) for r in run.records)
    return [m.group(1) for m in found if m]


def test_each_phase_is_logged_once_per_session(sample_run: Run) -> None:
    counts = Counter(phases(sample_run))
    sessions = sample_run.report.sessions.height
    assert sessions == 6  # 2024-07-02 .. 2024-07-10 without the 4th
    assert counts["1.1"] == 1
    for phase in ("1.3", "2.2", "2.3", "3.2", "6"):
        assert counts[phase] == sessions, phase
    assert counts["2.1"] == sessions * 3 * 2  # per symbol, per history entry
    assert counts["2.4"] == sessions * 2  # 5m and 15m


def test_history_log_counts_the_bars_of_five_full_sessions(sample_run: Run) -> None:
    messages = [r.getMessage() for r in sample_run.records]
    first = messages.index("[SESSION_FLOW] PHASE_1.3: Session 2024-07-02 13:30–20:00 UTC")  # noqa: RUF001
    assert "[SESSION_FLOW] PHASE_2.1: Loaded 1950 bars for ACME 1m" in messages[first:]
    early = "[SESSION_FLOW] PHASE_1.3: Session 2024-07-03 13:30–17:00 UTC (early close)"  # noqa: RUF001
    assert early in messages


def test_early_close_session_streams_210_minutes(sample_run: Run) -> None:
    figures = sample_run.report.sessions.filter(pl.col("session") == dt.date(2024, 7, 3))
    assert figures["timestamps"][0] == 210


def test_stream_reveals_each_row_once_at_its_time(sample_run: Run) -> None:
    steps = [s for s in sample_run.recorder.steps if s.clock.date() == dt.date(2024, 7, 10)]
    for step in steps:
        assert (step.bars["available_at"] == step.clock).all()
        assert (step.indicators["available_at"] == step.clock).all()
    streamed = pl.concat([s.bars for s in steps])
    assert_frame_equal(streamed, sample_run.last_table)


def test_catalog_never_shows_a_row_before_its_time(sample_run: Run) -> None:
    for clock, _, latest in sample_run.recorder.visible:
        assert latest is None or latest <= clock
    by_day: dict[dt.date, list[int]] = {}
    for clock, n, _ in sample_run.recorder.visible:
        by_day.setdefault(clock.date(), []).append(n)
    for counts in by_day.values():
        assert counts == sorted(counts)  # rows only ever join, within a session


def test_streamed_bars_equal_the_batch_derivation(sample_run: Run) -> None:
    day = dt.date(2024, 7, 10)
    days = calendar.sessions("XNYS", day, day)
    raw = STORE.read("1m", list(CONFIG.symbols), day, day).with_columns(
        pl.col("symbol").cast(schema.symbol_dtype(CONFIG.symbols))
    )
    base = derive.annotate(raw, "1m", days, NY).collect()
    batch = [base] + [derive.derive(base.lazy(), days, iv, "1m").collect() for iv in ("5m", "15m")]
    expected = session.order(
        pl.concat(batch).lazy(), [Interval.parse(i) for i in ("1m", "5m", "15m")]
    )
    assert_frame_equal(expected.collect(), sample_run.last_table)


def test_visible_values_do_not_change_when_the_future_is_cut_off(sample_run: Run) -> None:
    day = dt.date(2024, 7, 10)
    days = calendar.sessions("XNYS", day, day)
    full = sample_run.last_table
    history = sample_run.last_history
    base = full.filter(pl.col("interval") == "1m")
    intervals = [Interval.parse(i) for i in ("1m", "5m", "15m")]
    full_values = session.session_indicators(
        history.lazy(), full.lazy(), CONFIG.indicators, full["ts"].min()
    ).collect()
    opened = days["open"][0]
    for minutes in (1, 7, 61, 200, 389):
        cut = opened + dt.timedelta(minutes=minutes)
        seen = base.filter(pl.col("available_at") <= cut)
        table = session.build(seen.lazy(), days, intervals[0], intervals[1:], emit_incomplete=False)
        visible = table.filter(pl.col("available_at") <= cut).collect()
        assert_frame_equal(visible, full.filter(pl.col("available_at") <= cut))
        values = session.session_indicators(
            history.lazy(), table, CONFIG.indicators, full["ts"].min()
        ).collect()
        assert_frame_equal(
            values.filter(pl.col("available_at") <= cut),
            full_values.filter(pl.col("available_at") <= cut),
        )


def test_sessions_table_records_every_phase(sample_run: Run) -> None:
    reset_catalog()
    catalog = get_catalog()
    one = dataclasses.replace(CONFIG, start=dt.date(2024, 7, 3), end=dt.date(2024, 7, 3))
    Coordinator(one, STORE, catalog).run()
    table = catalog.table("sessions")
    assert table["phase"].to_list() == ["1", "2.1", "2.4", "2.2", "2.3", "3", "4", "5"]
    assert (
        table.filter(pl.col("phase") == "3")["bars"][0]
        == sample_run.report.sessions.filter(pl.col("session") == dt.date(2024, 7, 3))[
            "session_bars"
        ][0]
    )
    reset_catalog()


def test_speed_paces_the_stream_in_market_time() -> None:
    reset_catalog()
    catalog = get_catalog()
    catalog.set_universe(["ACME"])
    t0 = dt.datetime(2024, 7, 10, 13, 31, tzinfo=dt.UTC)
    rows = pl.DataFrame(
        {
            "symbol": ["ACME", "ACME"],
            "interval": ["1m", "1m"],
            "session": [dt.date(2024, 7, 10)] * 2,
            "ts": [t0 - dt.timedelta(minutes=1), t0],
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
            "ts_close": [t0, t0 + dt.timedelta(minutes=1)],
            "available_at": [t0, t0 + dt.timedelta(minutes=1)],
            "n_src": [1, 1],
            "complete": [True, True],
        },
        schema=schema.CATALOG_BARS,
    ).with_columns(pl.col("symbol").cast(schema.symbol_dtype(["ACME"])))
    catalog.load_session(rows)
    slept: list[float] = []
    quality = SessionQuality(rows, rows["ts_close"], "1m", dt.date(2024, 7, 10), ["ACME"])
    stats = stream(catalog, quality, speed=60.0, sleep=slept.append)
    assert stats.timestamps == 2
    assert slept == [1.0]  # one market minute at 60x
    assert catalog.get_quality("ACME", "1m") == 100.0
    reset_catalog()


def test_symbol_without_the_base_interval_is_named() -> None:
    config = dataclasses.replace(CONFIG, symbols=("ACME", "NOPE"))
    with pytest.raises(DataNotFoundError, match=r"NOPE has no 1m bars \(stored: none\)"):
        Coordinator(config, STORE, get_catalog())
    reset_catalog()


def test_symbol_without_bars_in_range_is_named() -> None:
    config = dataclasses.replace(CONFIG, start=dt.date(2024, 7, 15), end=dt.date(2024, 7, 16))
    with pytest.raises(DataNotFoundError, match="ACME 1m bars run 2024-06-25 to 2024-07-10"):
        Coordinator(config, STORE, get_catalog())
    reset_catalog()


def test_stream_that_nothing_stored_can_serve_is_an_error() -> None:
    config = dataclasses.replace(CONFIG, streams=("30s",), indicators=())
    with pytest.raises(IntervalError, match="No stored interval can produce 30s"):
        Coordinator(config, STORE, get_catalog())
    reset_catalog()


def test_daily_history_is_generated_from_minutes_when_not_stored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("1m", STORE.read("1m").collect())
    config = dataclasses.replace(
        CONFIG,
        start=dt.date(2024, 7, 10),
        end=dt.date(2024, 7, 10),
        history=(dataclasses.replace(CONFIG.history[0], interval="1d", sessions=3),),
        historical_indicators=(),
        quality=dataclasses.replace(CONFIG.quality, emit_incomplete=True),
    )
    reset_catalog()
    catalog = get_catalog()
    Coordinator(config, store, catalog).run()
    daily = catalog.table("history_bars").filter(pl.col("interval") == "1d").sort("symbol", "ts")
    acme = daily.filter(pl.col("symbol") == "ACME")
    assert acme["session"].to_list() == [
        dt.date(2024, 7, 5),
        dt.date(2024, 7, 8),
        dt.date(2024, 7, 9),
    ]
    assert acme["n_src"].to_list() == [390, 390, 390]
    assert acme["complete"].all()
    stored = STORE.read("1d", ["ACME"], dt.date(2024, 7, 5), dt.date(2024, 7, 9)).collect()
    assert acme["close"].to_list() == stored["close"].to_list()
    assert acme["volume"].to_list() == stored["volume"].to_list()
    tiny = daily.filter(pl.col("symbol") == "TINY")
    assert not tiny["complete"].any()  # an illiquid day misses minutes: flagged, kept
    reset_catalog()


def test_streamed_indicators_equal_one_batch_computation(sample_run: Run) -> None:
    from pipeline import indicators

    first = calendar.sessions_before("XNYS", CONFIG.start, CONFIG.history[0].sessions)[0]
    days = calendar.sessions("XNYS", first, CONFIG.end)
    raw = STORE.read("1m", list(CONFIG.symbols), first, CONFIG.end).with_columns(
        pl.col("symbol").cast(schema.symbol_dtype(CONFIG.symbols))
    )
    base = derive.annotate(raw, "1m", days, NY).collect()
    bars = pl.concat(
        [base] + [derive.derive(base.lazy(), days, iv, "1m").collect() for iv in ("5m", "15m")]
    )
    batch = indicators.compute(
        bars.lazy(), CONFIG.indicators, since=dt.datetime(2024, 7, 2, tzinfo=dt.UTC)
    )
    streamed = pl.concat([s.indicators for s in sample_run.recorder.steps])
    assert streamed.height > 30_000
    assert_frame_equal(streamed, batch.collect())


def test_session_quality_values_equal_its_rows() -> None:
    day = dt.date(2024, 7, 1)
    days = calendar.sessions("XNYS", day, day)
    enum = schema.symbol_dtype(CONFIG.symbols)
    raw = STORE.read("1m", list(CONFIG.symbols), day, day).with_columns(pl.col("symbol").cast(enum))
    table = session.order(derive.annotate(raw, "1m", days, NY), [Interval.parse("1m")]).collect()
    slots = calendar.slots(days, "1m").collect()["ts"]
    tracker = SessionQuality(table, slots + dt.timedelta(minutes=1), "1m", day, CONFIG.symbols)
    assert tracker.values(days["open"][0]) == {}  # no slot has closed yet
    assert tracker.value(days["open"][0], "BOLT") is None
    for minutes in (1, 45, 200, 390, 45):  # back to an earlier clock last
        clock = days["open"][0] + dt.timedelta(minutes=minutes)
        rows = tracker.frame(clock)
        expected = dict(zip(rows["symbol"], rows["quality"], strict=True))
        assert tracker.values(clock) == expected
        assert {s: tracker.value(clock, s) for s in CONFIG.symbols} == expected
    assert tracker.value(clock, "NOPE") is None
    clock = days["open"][0] + dt.timedelta(minutes=390)
    assert tracker.values(clock)["BOLT"] == pytest.approx(100 * 387 / 390)  # 3 minutes missing
