"""Loading the next chunk in the background, or carrying its lookback sessions over from the
previous chunk, changes no value: only when and how often it is computed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import calendar, loader, schema
from pipeline.catalog import Catalog
from pipeline.config import config_hash, load_config
from pipeline.engine import backtest
from pipeline.intervals import Interval
from pipeline.loader import BARS, GAPS, INDICATORS, QUALITY, TABLE, BarCache, LoadSpec
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
STORE = Store(REPO / "data")
CONFIG = load_config(REPO / "configs" / "sample.toml")
DAYS = calendar.sessions("XNYS", dt.date(2024, 6, 25), dt.date(2024, 7, 10))  # the 1m bars
PARTS = (BARS, "5m", "15m", QUALITY, GAPS, TABLE, INDICATORS)


def _cache(*, prefetch: bool, store: Store = STORE, extended_hours: bool = False) -> BarCache:
    base = Interval.parse("1m")
    return BarCache(
        store,
        LoadSpec(base, base, CONFIG.symbols, 5),
        DAYS,
        "XNYS",
        extended_hours=extended_hours,
        emit_incomplete=False,
        symbol_type=schema.symbol_dtype(CONFIG.symbols),
        derive_to=(Interval.parse("5m"), Interval.parse("15m")),
        assess=True,
        session_specs=CONFIG.indicators,
        prefetch=prefetch,
    )


def _windows(cache: BarCache, days: list[dt.date]) -> list[pl.DataFrame]:
    """Every part of every day, as a run asks for them: history, then the session."""
    frames = []
    for day in days:
        for part in PARTS[:5]:
            frames.append(cache.window(day, 5, include_day=False, part=part))
        for part in PARTS[5:]:
            frames.append(cache.window(day, 0, include_day=True, part=part))
    return frames


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 1 session (plus the lookback), so the sample spans three."""
    monkeypatch.setattr(loader, "CHUNK_SESSIONS", 1)
    monkeypatch.setattr(loader, "CHUNK_BARS", 0)


def test_prefetched_chunks_equal_chunks_loaded_on_demand(small_chunks: None) -> None:
    days = DAYS["session"].to_list()[5:]
    ahead, on_demand = _cache(prefetch=True), _cache(prefetch=False)
    got, want = _windows(ahead, days), _windows(on_demand, days)
    assert len(got) == len(want) == len(days) * len(PARTS)
    for a, b in zip(got, want, strict=True):
        assert_frame_equal(a, b, check_exact=True)
    assert sum(f.height for f in got) > 0


def test_the_next_chunk_is_loaded_ahead_and_used(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[int, int]] = []
    build = BarCache._build

    def counted(self: BarCache, span: tuple[int, int], carry: Any = None) -> dict[str, object]:
        built.append(span)
        return build(self, span, carry)  # type: ignore[return-value]

    monkeypatch.setattr(BarCache, "_build", counted)
    cache = _cache(prefetch=True)
    days = DAYS["session"].to_list()[5:]
    _windows(cache, days)
    # Each chunk is built once: the first on demand, every later one ahead of its use.
    assert len(built) == len(set(built)) > 2
    assert built[-1][1] == DAYS.height - 1


def test_a_failed_load_ahead_raises_when_its_chunk_is_needed(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = BarCache._build

    def failing(self: BarCache, span: tuple[int, int], carry: Any = None) -> dict[str, object]:
        if span[0] > 0:
            raise OSError(f"disk gone while reading sessions {span}")
        return build(self, span, carry)  # type: ignore[return-value]

    monkeypatch.setattr(BarCache, "_build", failing)
    cache = _cache(prefetch=True)
    days = DAYS["session"].to_list()
    first = cache.window(days[5], 0, include_day=True, part=TABLE)  # the first chunk: fine
    assert first.height > 0
    cache.window(days[6], 0, include_day=True, part=TABLE)  # still the first chunk
    with pytest.raises(OSError, match="disk gone"):
        cache.window(days[7], 0, include_day=True, part=TABLE)  # the chunk loaded ahead


def test_a_jump_past_the_chunk_ahead_loads_what_is_asked(small_chunks: None) -> None:
    days = DAYS["session"].to_list()
    ahead, on_demand = _cache(prefetch=True), _cache(prefetch=False)
    for day in (days[5], days[-1], days[8]):  # forward past the chunk ahead, then back
        got = ahead.window(day, 0, include_day=True, part=TABLE)
        assert_frame_equal(got, on_demand.window(day, 0, include_day=True, part=TABLE))
        assert got["session"].unique().to_list() == [day]


def _backtest(load_ahead: bool) -> dict[str, pl.DataFrame]:
    catalog = Catalog()
    try:
        config = dataclasses.replace(CONFIG, load_ahead=load_ahead)
        return backtest(config, STORE, catalog)[1]
    finally:
        catalog.close()


def test_a_run_without_loading_ahead_gives_the_same_results_and_id(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[Any] = []
    submit = loader._PREFETCH.submit

    def counted(work: Any, *args: Any) -> Future[Any]:
        submitted.append(args)
        return submit(work, *args)

    monkeypatch.setattr(loader._PREFETCH, "submit", counted)
    ahead = _backtest(load_ahead=True)
    assert submitted  # the chunks after the first were loaded ahead
    submitted.clear()
    alone = _backtest(load_ahead=False)
    assert not submitted
    assert ahead.keys() == alone.keys()
    for name, frame in ahead.items():
        assert_frame_equal(frame, alone[name], check_exact=True)
    assert ahead["orders"].height > 0
    off = dataclasses.replace(CONFIG, load_ahead=False)
    assert config_hash(off) == config_hash(CONFIG)


@pytest.fixture
def gappy_store(tmp_path: Path) -> Store:
    """The sample's 1m bars without TINY's on two sessions: a chunk whose new sessions
    lack a symbol its carried sessions have."""
    bars = STORE.read("1m").collect()
    dropped = DAYS["session"].to_list()[7:9]
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    keep = ~((pl.col("symbol") == "TINY") & day.is_in(dropped))
    store = Store(tmp_path / "store")
    store.write("1m", bars.filter(keep))
    return store


@pytest.mark.parametrize("extended", [False, True], ids=["regular", "extended"])
def test_carried_sessions_equal_sessions_computed_again(
    small_chunks: None, gappy_store: Store, monkeypatch: pytest.MonkeyPatch, extended: bool
) -> None:
    carried: list[int] = []
    carry = BarCache._carry

    def counted(self: BarCache, *args: object) -> object:
        found = carry(self, *args)  # type: ignore[arg-type]
        carried.append(0 if found is None else found.sessions)
        return found

    monkeypatch.setattr(BarCache, "_carry", counted)
    got = _windows(
        _cache(prefetch=False, store=gappy_store, extended_hours=extended),
        DAYS["session"].to_list()[5:],
    )
    assert sum(carried) >= 10  # two chunks or more carried their 5-session lookback
    monkeypatch.setattr(BarCache, "_carry", lambda *_: None)
    want = _windows(
        _cache(prefetch=False, store=gappy_store, extended_hours=extended),
        DAYS["session"].to_list()[5:],
    )
    for a, b in zip(got, want, strict=True):
        assert_frame_equal(a, b, check_exact=True)
    quality = pl.concat(got[3::7])
    missing = quality.filter(pl.col("symbol") == "TINY", pl.col("present") == 0)
    assert missing["session"].unique().sort().to_list() == DAYS["session"].to_list()[7:9]


def test_a_carried_session_has_no_session_table_to_give(small_chunks: None) -> None:
    cache = _cache(prefetch=False)
    days = DAYS["session"].to_list()
    for day in days[5:8]:  # the second chunk (sessions 2-8) carries 2-6 from the first
        cache.window(day, 5, include_day=False)
        assert cache.window(day, 0, include_day=True, part=TABLE).height > 0
    with pytest.raises(LookupError, match="carried"):
        cache.window(days[6], 0, include_day=True, part=TABLE)


def test_a_run_gives_the_same_results_with_and_without_carrying(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried = _backtest(load_ahead=True)
    monkeypatch.setattr(BarCache, "_carry", lambda *_: None)
    again = _backtest(load_ahead=True)
    assert carried.keys() == again.keys()
    for name, frame in carried.items():
        assert_frame_equal(frame, again[name], check_exact=True)
    assert carried["orders"].height > 0
