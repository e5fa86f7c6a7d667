"""Indicators equal TA-Lib on real one-minute bars (eqker SPY/QQQ 2019, LEAN SPY 2013).

Every non-NaN TA-Lib value must equal ours to 1e-9 (relative and absolute), at the
same bars: our warm-up rows are exactly TA-Lib's NaN positions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import talib
from polars.testing import assert_frame_equal

from pipeline import indicators, schema
from pipeline.config import Indicator
from pipeline.importing import ImportOptions, read_bars

pytestmark = pytest.mark.real_data

EQKER = "eqker-24sym-2019"
LEAN_SPY = "lean-algoseek/equity/usa/minute/spy"
LEAN_DAYS = ("20131007", "20131008", "20131009", "20131010", "20131011")
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}

Reference = Callable[[pl.DataFrame], dict[str, np.ndarray]]


def _close(frame: pl.DataFrame) -> np.ndarray:
    return frame["close"].to_numpy()


def _hlc(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy()


def _macd(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    line, signal, hist = talib.MACD(_close(frame), 12, 26, 9)
    return {"macd.macd": line, "macd.signal": signal, "macd.hist": hist}


def _bbands(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    upper, middle, lower = talib.BBANDS(_close(frame), 20, 2.0, 2.0, 0)
    return {"bbands_20.upper": upper, "bbands_20.middle": middle, "bbands_20.lower": lower}


CASES: dict[str, tuple[Indicator, Reference]] = {
    "sma": (Indicator("sma", "1m", 20), lambda f: {"sma_20": talib.SMA(_close(f), 20)}),
    "ema": (Indicator("ema", "1m", 20), lambda f: {"ema_20": talib.EMA(_close(f), 20)}),
    "wma": (Indicator("wma", "1m", 10), lambda f: {"wma_10": talib.WMA(_close(f), 10)}),
    "rsi": (Indicator("rsi", "1m", 14), lambda f: {"rsi_14": talib.RSI(_close(f), 14)}),
    "atr": (Indicator("atr", "1m", 14), lambda f: {"atr_14": talib.ATR(*_hlc(f), 14)}),
    "macd": (Indicator("macd", "1m"), _macd),
    "bbands": (Indicator("bbands", "1m", 20, {"k": 2.0}), _bbands),
    "stddev": (Indicator("stddev", "1m", 20), lambda f: {"stddev_20": talib.STDDEV(_close(f), 20)}),
    "obv": (
        Indicator("obv", "1m"),
        lambda f: {"obv": talib.OBV(_close(f), f["volume"].to_numpy())},
    ),
}


def _catalog(bars: pl.DataFrame) -> pl.DataFrame:
    """Return importer bars (`schema.BARS`) as 1m catalog bars, sorted by symbol and ts."""
    local = pl.col("ts").dt.convert_time_zone("America/New_York")
    return (
        bars.with_columns(
            interval=pl.lit("1m"),
            session=local.dt.date(),
            ts_close=pl.col("ts") + pl.duration(minutes=1),
            n_src=pl.lit(1, pl.UInt32),
            complete=pl.lit(True),
        )
        .with_columns(available_at="ts_close")
        .select(list(schema.CATALOG_BARS))
        .sort("symbol", "ts")
    )


@functools.cache
def _eqker(root: Path, symbol: str) -> pl.DataFrame:
    path = root / EQKER / f"{symbol}_1min.csv"
    return _catalog(read_bars(path, ImportOptions(preset="alphavantage")).bars)


@functools.cache
def _lean_spy(root: Path) -> pl.DataFrame:
    folder = root / LEAN_SPY
    days = [
        read_bars(folder / f"{d}_trade.zip", ImportOptions(preset="lean")).bars for d in LEAN_DAYS
    ]
    return _catalog(pl.concat(days))


def _dataset(root: Path, name: str) -> pl.DataFrame:
    return _eqker(root, "SPY") if name == "eqker" else _lean_spy(root)


def _assert_matches(
    ours: pl.DataFrame, bars: pl.DataFrame, name: str, expected: np.ndarray
) -> None:
    """Assert `ours` holds exactly TA-Lib's non-NaN values of `name`, at the same bars."""
    valid = ~np.isnan(expected)
    got = ours.filter(pl.col("name") == name).sort("ts")
    assert got["ts"].to_list() == bars["ts"].filter(pl.Series(valid)).to_list(), name
    np.testing.assert_allclose(got["value"].to_numpy(), expected[valid], **TOLERANCE, err_msg=name)


@pytest.mark.parametrize("dataset", ["eqker", "lean"])
@pytest.mark.parametrize("kind", list(CASES))
def test_indicator_equals_talib_after_warm_up(real_data: Path, dataset: str, kind: str) -> None:
    bars = _dataset(real_data, dataset)
    spec, reference = CASES[kind]
    ours = indicators.compute(bars.lazy(), [spec]).collect()
    expected = reference(bars)
    assert set(ours["name"].unique()) == set(expected)
    for name, values in expected.items():
        _assert_matches(ours, bars, name, values)


def _session_vwap(session: pl.DataFrame) -> np.ndarray:
    high, low, close = _hlc(session)
    volume = session["volume"].to_numpy()
    if hasattr(talib, "VWAP"):
        return np.asarray(talib.VWAP(high, low, close, volume))
    typical = (high + low + close) / 3.0
    return np.cumsum(typical * volume) / np.cumsum(volume)


@pytest.mark.parametrize("dataset", ["eqker", "lean"])
def test_vwap_equals_talib_called_once_per_session(real_data: Path, dataset: str) -> None:
    bars = _dataset(real_data, dataset)
    ours = indicators.compute(bars.lazy(), [Indicator("vwap", "1m")]).collect()
    sessions = bars.partition_by("session", maintain_order=True)
    assert len(sessions) == 5
    for session in sessions:
        expected = _session_vwap(session)
        # TA-Lib returns 0 before the session's first volume; we emit no row there
        expected[np.cumsum(session["volume"].to_numpy()) == 0] = np.nan
        mine = ours.filter(pl.col("ts").is_in(session["ts"].implode()))
        _assert_matches(mine, session, "vwap", expected)


def test_several_symbols_at_once_equal_one_at_a_time(real_data: Path) -> None:
    spy, qqq = _eqker(real_data, "SPY"), _eqker(real_data, "QQQ")
    specs = [spec for spec, _ in CASES.values()] + [Indicator("vwap", "1m")]
    enum = schema.symbol_dtype(["QQQ", "SPY"])
    both = pl.concat([spy, qqq]).with_columns(pl.col("symbol").cast(enum))
    together = indicators.compute(both.lazy(), specs).collect()
    for one in (spy, qqq):
        alone = indicators.compute(one.lazy(), specs).collect()
        symbol = one["symbol"][0]
        mine = together.filter(pl.col("symbol") == symbol).with_columns(
            pl.col("symbol").cast(pl.String)
        )
        assert_frame_equal(mine, alone, check_exact=True)
