"""Session indicators on tiny hand-checked inputs: values, names, warm-up, order, errors."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline import indicators, schema
from pipeline.config import Indicator
from pipeline.errors import ConfigError

T0 = dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)
DAY = dt.date(2024, 7, 1)


def _bars(
    close: Sequence[float],
    *,
    symbol: str = "A",
    interval: str = "1m",
    minutes: int = 1,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    volume: Sequence[float] | None = None,
    session: Sequence[dt.date] | None = None,
    start: dt.datetime = T0,
) -> pl.DataFrame:
    """Return catalog bars, one every `minutes` from `start`, visible at their close."""
    n = len(close)
    ts = [start + dt.timedelta(minutes=minutes * i) for i in range(n)]
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "interval": [interval] * n,
            "session": list(session) if session is not None else [DAY] * n,
            "ts": pl.Series(ts, dtype=schema.TS),
            "open": list(close),
            "high": list(high) if high is not None else list(close),
            "low": list(low) if low is not None else list(close),
            "close": list(close),
            "volume": list(volume) if volume is not None else [100.0] * n,
        },
        schema_overrides=schema.OHLCV,
    )
    return (
        frame.with_columns(
            ts_close=pl.col("ts") + pl.duration(minutes=minutes),
            n_src=pl.lit(1, pl.UInt32),
            complete=pl.lit(True),
        )
        .with_columns(available_at="ts_close")
        .select(list(schema.CATALOG_BARS))
    )


def _run(bars: pl.DataFrame, *specs: Indicator) -> pl.DataFrame:
    return indicators.compute(bars.lazy(), specs).collect()


def _values(out: pl.DataFrame, name: str) -> list[float]:
    return out.filter(pl.col("name") == name).sort("ts")["value"].to_list()


def test_sma_of_one_to_five_with_period_three_is_two_three_four() -> None:
    out = _run(_bars([1, 2, 3, 4, 5]), Indicator("sma", "1m", 3))
    assert out.schema == schema.INDICATORS
    assert out["name"].to_list() == ["sma_3"] * 3
    assert out["value"].to_list() == pytest.approx([2.0, 3.0, 4.0])


def test_warm_up_rows_are_absent_and_values_keep_their_bar() -> None:
    bars = _bars([1, 2, 3, 4, 5])
    out = _run(bars, Indicator("ema", "1m", 3))
    assert out["ts"].to_list() == bars["ts"][2:].to_list()
    assert out["available_at"].to_list() == bars["available_at"][2:].to_list()


def test_ema_is_seeded_with_the_first_period_mean() -> None:
    # seed mean(1, 2, 3) = 2, then alpha = 2 / (3 + 1) = 0.5: 2 + 0.5 * (4 - 2) = 3, 4
    out = _run(_bars([1, 2, 3, 4, 5]), Indicator("ema", "1m", 3))
    assert out["value"].to_list() == pytest.approx([2.0, 3.0, 4.0])


def test_wma_weighs_the_newest_bar_most() -> None:
    out = _run(_bars([1, 2, 3, 4, 5]), Indicator("wma", "1m", 3))
    assert out["value"].to_list() == pytest.approx([14 / 6, 20 / 6, 26 / 6])


def test_rsi_uses_wilder_smoothing_seeded_with_the_mean_change() -> None:
    # changes +1 -1 +1 +1; seed gain 0.5 loss 0.5 -> 50; then (0.5 + 1) / 2 = 0.75 gain,
    # 0.25 loss -> 75; then 0.875 / 0.125 -> 87.5
    out = _run(_bars([1, 2, 1, 2, 3]), Indicator("rsi", "1m", 2))
    assert out["value"].to_list() == pytest.approx([50.0, 75.0, 87.5])


def test_rsi_of_a_flat_series_is_zero_as_in_talib() -> None:
    out = _run(_bars([5.0] * 6), Indicator("rsi", "1m", 3))
    assert out["value"].to_list() == [0.0] * 3


def test_atr_starts_with_the_mean_true_range_from_the_second_bar() -> None:
    close, high, low = [10, 11, 12, 13], [10.5, 12, 12.5, 14], [9.5, 10.5, 11.5, 12.5]
    # true ranges from bar 2: max(12, 10) - min(10.5, 10) = 2, 12.5 - 11 = 1.5, 14 - 12 = 2
    out = _run(_bars(close, high=high, low=low), Indicator("atr", "1m", 2))
    assert out["value"].to_list() == pytest.approx([1.75, (1.75 + 2) / 2])


def test_obv_adds_or_subtracts_the_volume_from_the_first_bar() -> None:
    out = _run(_bars([1, 2, 1, 1, 3], volume=[5, 6, 7, 8, 9]), Indicator("obv", "1m"))
    assert out["name"].to_list() == ["obv"] * 5
    assert out["value"].to_list() == [5.0, 11.0, 4.0, 4.0, 13.0]


def test_stddev_is_the_population_deviation_and_zero_when_flat() -> None:
    out = _run(_bars([1, 2, 3, 3, 3, 3]), Indicator("stddev", "1m", 3))
    assert out["value"].to_list() == pytest.approx([math.sqrt(2 / 3), math.sqrt(2 / 9), 0.0, 0.0])
    assert out["value"][-1] == 0.0


def test_bbands_parts_are_named_after_the_label() -> None:
    spec = Indicator("bbands", "1m", 3, {"k": 2.0}, label="bb")
    out = _run(_bars([1, 2, 3]), spec)
    assert out["name"].to_list() == ["bb.lower", "bb.middle", "bb.upper"]  # sorted by name
    width = 2 * math.sqrt(2 / 3)
    assert out["value"].to_list() == pytest.approx([2 - width, 2.0, 2 + width])


def test_macd_emits_macd_signal_and_hist_after_talib_lookback() -> None:
    closes = [float(x * x % 7 + x) for x in range(12)]
    spec = Indicator("macd", "1m", params={"fast": 2, "slow": 4, "signal": 3})
    out = _run(_bars(closes), spec)
    assert indicators.output_names(spec) == ("macd.macd", "macd.signal", "macd.hist")
    first = 4 + 3 - 2  # slow + signal - 2
    for name in indicators.output_names(spec):
        assert len(_values(out, name)) == len(closes) - first
    line, signal = _values(out, "macd.macd"), _values(out, "macd.signal")
    hist = [m - s for m, s in zip(line, signal, strict=True)]
    assert _values(out, "macd.hist") == pytest.approx(hist)


def test_vwap_restarts_at_each_session() -> None:
    day2 = DAY + dt.timedelta(days=1)
    bars = _bars(
        [10, 20, 30, 40],
        volume=[1, 3, 2, 2],
        session=[DAY, DAY, day2, day2],
    )
    out = _run(bars, Indicator("vwap", "1m"))
    assert out["value"].to_list() == pytest.approx([10.0, 17.5, 30.0, 35.0])


def test_vwap_before_any_volume_is_not_emitted() -> None:
    bars = _bars([10, 20, 30], volume=[0, 0, 5])
    out = _run(bars, Indicator("vwap", "1m"))
    assert out["ts"].to_list() == bars["ts"][2:].to_list()
    assert out["value"].to_list() == [30.0]


def test_field_param_selects_the_input_column() -> None:
    out = _run(_bars([1, 1, 1], volume=[3, 6, 9]), Indicator("sma", "1m", 3, {"field": "volume"}))
    assert out["value"].to_list() == [6.0]


def test_enum_symbols_are_kept() -> None:
    enum = schema.symbol_dtype(["A", "B"])
    bars = pl.concat([_bars([1, 2, 3]), _bars([4, 5, 6], symbol="B")])
    out = _run(bars.with_columns(pl.col("symbol").cast(enum)), Indicator("sma", "1m", 2))
    assert out.schema == schema.with_symbols(schema.INDICATORS, ["A", "B"])
    schema.check(out, schema.INDICATORS, "indicators")


def test_available_at_is_the_bars_even_when_cut_short() -> None:
    bars = _bars([1, 2, 3])
    cut = bars["ts"][2] + dt.timedelta(seconds=30)
    bars = bars.with_columns(
        available_at=pl.when(pl.col("ts") == bars["ts"][2]).then(cut).otherwise("available_at")
    )
    out = _run(bars, Indicator("obv", "1m"))
    assert out["available_at"].to_list() == bars["available_at"].to_list()


def test_each_spec_reads_only_rows_of_its_interval() -> None:
    minute = _bars([1, 2, 3, 4, 5, 6])
    five = _bars([100, 200, 300], interval="5m", minutes=5)
    out = _run(pl.concat([minute, five]), Indicator("sma", "5m", 2), Indicator("sma", "1m", 2))
    assert _values(out.filter(interval="5m"), "sma_2") == [150.0, 250.0]
    assert _values(out.filter(interval="1m"), "sma_2") == [1.5, 2.5, 3.5, 4.5, 5.5]


def test_rows_are_sorted_by_available_at_symbol_and_name_across_intervals() -> None:
    bars = pl.concat(
        [
            _bars([1, 2, 3, 4, 5], symbol="B"),
            _bars([5, 4, 3, 2, 1], symbol="A"),
            _bars([1, 2], symbol="A", interval="5m", minutes=5),
        ]
    )
    specs = (
        Indicator("obv", "5m", label="a_obv"),
        Indicator("sma", "1m", 1),
        Indicator("obv", "1m"),
    )
    out = _run(bars.sample(fraction=1.0, shuffle=True, seed=3), *specs)
    assert out.equals(out.sort("available_at", "symbol", "name"))
    at_five = out.filter(pl.col("available_at") == T0 + dt.timedelta(minutes=5))
    assert at_five.select("symbol", "name", "interval").rows() == [
        ("A", "a_obv", "5m"),
        ("A", "obv", "1m"),
        ("A", "sma_1", "1m"),
        ("B", "obv", "1m"),
        ("B", "sma_1", "1m"),
    ]


def test_symbols_are_computed_independently_whatever_the_row_order() -> None:
    a, b = _bars([1, 2, 3, 4]), _bars([10, 20, 30, 40], symbol="B")
    spec = Indicator("ema", "1m", 2)
    both = _run(pl.concat([b, a]).sample(fraction=1.0, shuffle=True, seed=1), spec)
    assert_frame_equal(both.filter(symbol="A"), _run(a, spec))
    assert_frame_equal(both.filter(symbol="B"), _run(b, spec))


def test_no_specs_give_an_empty_frame_with_the_input_symbol_dtype() -> None:
    bars = _bars([1.0]).with_columns(pl.col("symbol").cast(pl.Enum(["A"])))
    out = _run(bars)
    assert out.height == 0
    assert out.schema == schema.with_symbols(schema.INDICATORS, ["A"])


def test_too_few_bars_give_no_rows() -> None:
    out = _run(_bars([1.0, 2.0]), Indicator("macd", "1m"), Indicator("sma", "1m", 5))
    assert out.height == 0
    assert out.schema == schema.INDICATORS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Indicator("smma", "1m", 3), "did you mean 'sma'"),
        (Indicator("rsi", "1m"), "needs a period"),
        (Indicator("sma", "1m", 3, {"field": "clsoe"}), "did you mean 'close'"),
        (Indicator("macd", "1m", params={"fast": 0}), "fast, slow and signal"),
    ],
)
def test_bad_specs_are_config_errors(spec: Indicator, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        indicators.compute(_bars([1.0]).lazy(), [spec])


def test_two_specs_with_one_name_on_one_interval_are_refused() -> None:
    specs = [Indicator("sma", "1m", 3), Indicator("sma", "1m", 3, {"field": "open"})]
    with pytest.raises(ConfigError, match="distinct `label`"):
        indicators.compute(_bars([1.0]).lazy(), specs)


def test_latest_returns_the_newest_visible_value_per_symbol_and_name() -> None:
    bars = pl.concat([_bars([1, 2, 3, 4]), _bars([5, 6, 7, 8], symbol="B")])
    values = indicators.compute(bars.lazy(), [Indicator("sma", "1m", 1), Indicator("obv", "1m")])
    until = T0 + dt.timedelta(minutes=2, seconds=30)  # bars 13:30 and 13:31 have closed
    got = indicators.latest(values, until).collect()
    assert got.select("symbol", "name", "value").rows() == [
        ("A", "obv", 200.0),
        ("A", "sma_1", 2.0),
        ("B", "obv", 200.0),
        ("B", "sma_1", 6.0),
    ]
    assert got["available_at"].to_list() == [T0 + dt.timedelta(minutes=2)] * 4


def test_carried_columns_follow_their_values() -> None:
    days = [DAY] * 3 + [DAY + dt.timedelta(days=1)] * 2
    bars = _bars([1.0, 2.0, 3.0, 4.0, 5.0], session=days)
    specs = (Indicator("sma", "1m", 2), Indicator("sma", "1m", 3))
    out = indicators.compute(bars.lazy(), specs, carry=("session",)).collect()
    assert out.columns == [*schema.INDICATORS, "session"]
    by_ts = dict(zip(bars["ts"], bars["session"], strict=True))
    assert all(by_ts[t] == s for t, s in zip(out["ts"], out["session"], strict=True))
    empty = indicators.compute(bars.lazy(), (), carry=("session",)).collect()
    assert empty.columns == [*schema.INDICATORS, "session"]
