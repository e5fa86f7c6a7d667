"""Session indicators as Polars expressions, equal to TA-Lib on the same input (phase 3).

`compute` turns catalog bars (history + session, any number of intervals) into rows
of `schema.INDICATORS`: one row per symbol, indicator part and bar, carrying the
bar's ``ts`` and ``available_at``, so a value is revealed exactly when its bar is
(no look-ahead). Warm-up bars, where TA-Lib returns NaN, give no row. `latest`
picks the newest value visible at a clock time.

Every function runs per symbol over that symbol's bars of the spec's interval,
sorted by ``ts``; VWAP also restarts at each ``session``:

========  ============================  ==================================================
name      parameters                    TA-Lib equivalent
========  ============================  ==================================================
sma       period, field                 ``SMA``
ema       period, field                 ``EMA`` (seed: mean of the first `period` values)
wma       period, field                 ``WMA`` (weights 1..period, newest heaviest)
rsi       period, field                 ``RSI`` (Wilder smoothing)
macd      fast=12, slow=26, signal=9    ``MACD``: parts ``macd``, ``signal``, ``hist``
bbands    period, k=2, field            ``BBANDS`` (SMA, population stddev): ``upper``,
                                        ``middle``, ``lower``
atr       period                        ``ATR`` (Wilder smoothing of the true range)
stddev    period, field                 ``STDDEV`` (population, nbdev 1)
obv       field                         ``OBV`` (starts at the first bar's volume)
vwap      --                            ``VWAP`` called once per session
========  ============================  ==================================================

``field`` defaults to ``close``. A multi-part indicator's rows are named
``{spec.output}.{part}`` (``macd.signal``, ``bb_20.upper``).

Warm-up and starting point: SMA, WMA, STDDEV and Bollinger bands depend on the last
`period` bars only. EMA, RSI, ATR and MACD are recursions seeded at their first bars,
and OBV is a running total: their values depend on the first bar they were computed
from (TA-Lib's too), and equal TA-Lib's when both start at the same first bar.
Computing over history + session warms them up before the session opens; the seed's
weight in EMA, RSI, ATR and MACD fades with each bar, OBV's offset never does.

Zero tests follow TA-Lib 0.8: a variance below 1e-14 gives a deviation of 0, and an
RSI whose average gain + loss is below 1e-14 is 0.

Examples
--------
>>> from pipeline.config import Indicator
>>> specs = [Indicator("sma", "1m", 20), Indicator("macd", "5m")]
>>> values = compute(catalog_bars, specs)  # doctest: +SKIP
>>> latest(values, clock).collect()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import polars as pl

from pipeline import schema
from pipeline.config import FIELDS, INDICATOR_NAMES, MACD_DEFAULTS, PERIOD_REQUIRED, Indicator
from pipeline.errors import ConfigError, closest

#: Parts of the multi-valued indicators, in output order.
PARTS: dict[str, tuple[str, ...]] = {
    "macd": ("macd", "signal", "hist"),
    "bbands": ("upper", "middle", "lower"),
}
#: TA-Lib's zero band (``TA_EPSILON``) for variances and RSI denominators.
ZERO = 1e-14

_INDEX = ("symbol", "ts", "available_at")
_TMP = "__indicators:"  # prefix of helper columns
_ROW = _TMP + "row"  # a bar's position in its symbol's series, 0 first
_INPUT = pl.Schema(
    {
        k: schema.CATALOG_BARS[k]
        for k in ("symbol", "interval", "session", "ts", *schema.OHLCV, "available_at")
    }
)
_ORDER = ("available_at", "symbol", "name", "interval", "ts")
_Parts = dict[str, pl.Expr]
#: A spec's plan: helper columns step by step, then its parts (the last dict).
_Plan = list[_Parts]


def compute(
    bars: pl.LazyFrame,
    specs: Sequence[Indicator],
    *,
    since: dt.datetime | None = None,
    carry: Sequence[str] = (),
) -> pl.LazyFrame:
    """Compute session indicators over catalog bars, one row per symbol, part and bar.

    Parameters
    ----------
    bars
        Rows of `schema.CATALOG_BARS` (history and session together); each spec reads
        only the rows of its own ``interval``. Order does not matter.
    specs
        The indicators to compute. Two specs may not share an output name on one interval.
    since
        Keep only the values of bars with ``ts >= since`` (the session's, when `bars`
        hold history for warm-up): they are computed over every bar, but only these
        are turned into rows, which is most of the cost.
    carry
        Columns of `bars` to copy onto each value's row after the schema's columns
        (e.g. ``session``), gathered with the value, not recomputed.

    Returns
    -------
    pl.LazyFrame
        `schema.INDICATORS` rows (``symbol`` keeps the input's dtype), sorted by
        ``available_at``, ``symbol``, ``name`` (then ``interval``, ``ts``). Warm-up
        bars and bars without a value (VWAP before any volume) give no row.

    Raises
    ------
    ConfigError
        When a spec names an unknown function or field, lacks a period, or repeats
        another spec's output name.
    """
    schema.check(bars, _INPUT, "indicator input")
    by_interval = _group_specs(specs)
    extra = tuple(carry)
    if len(by_interval) <= 1:
        frames = [_for_interval(bars, iv, group, since, extra) for iv, group in by_interval.items()]
        if not frames:
            given = bars.collect_schema()
            shape = {**schema.INDICATORS, "symbol": given["symbol"], **{c: given[c] for c in extra}}
            return pl.LazyFrame(schema=pl.Schema(shape))
        return frames[0]  # already in order
    # Names and intervals stay Enums (a name Enum's order is the names' order) until the
    # frames are merged, cheaper to sort and gather than text: each frame is in order
    # and they come in interval order, so a stable sort by the first three keys leaves
    # ties in (interval, ts) order.
    names = pl.Enum(sorted({n for spec in specs for n in output_names(spec)}))
    intervals = pl.Enum(sorted(by_interval))
    frames = [
        _for_interval(bars, iv, group, since, extra, names_dtype=names, interval_dtype=intervals)
        for iv, group in sorted(by_interval.items())
    ]
    merged = pl.concat(frames).sort(*_ORDER[:3], maintain_order=True)
    # Gathering the text by category index is cheaper than casting an Enum to String.
    return merged.with_columns(
        pl.lit(pl.Series(dtype.categories, dtype=pl.String))
        .gather(pl.col(c).to_physical())
        .alias(c)
        for c, dtype in (("name", names), ("interval", intervals))
    )


def latest(indicators: pl.LazyFrame, until: dt.datetime) -> pl.LazyFrame:
    """Return the newest value of each (symbol, name, interval) visible at `until`.

    A value is visible when its ``available_at <= until`` (`until` must be tz-aware).
    The result has the columns of `indicators`, sorted by ``symbol``, ``name``, ``interval``.
    """
    keys = ("symbol", "name", "interval")
    visible = indicators.filter(pl.col("available_at") <= until)
    newest = visible.filter(pl.col("ts") == pl.col("ts").max().over(keys))
    return newest.sort(*keys)


def output_names(spec: Indicator) -> tuple[str, ...]:
    """Return the ``name`` values a spec's rows carry (one per part)."""
    parts = PARTS.get(spec.name)
    return (spec.output,) if parts is None else tuple(f"{spec.output}.{p}" for p in parts)


def _group_specs(specs: Sequence[Indicator]) -> dict[str, list[Indicator]]:
    groups: dict[str, list[Indicator]] = {}
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        _validate(spec)
        for name in output_names(spec):
            if (name, spec.interval) in seen or name in _INDEX or name.startswith(_TMP):
                raise ConfigError(
                    f"Indicator name {name!r} on {spec.interval} is used twice (or is a "
                    "reserved column name): give one of the specs a distinct `label`."
                )
            seen.add((name, spec.interval))
        groups.setdefault(spec.interval, []).append(spec)
    return groups


def _validate(spec: Indicator) -> None:
    where = f"Indicator {spec.output!r} on {spec.interval}"
    if spec.name not in INDICATOR_NAMES:
        hint = closest(spec.name, INDICATOR_NAMES)
        raise ConfigError(f"{where}: unknown function {spec.name!r}; {hint}")
    if spec.name in PERIOD_REQUIRED and (spec.period is None or spec.period < 1):
        raise ConfigError(f"{where}: {spec.name} needs a period >= 1, found {spec.period}.")
    field = spec.param("field", "close")
    if field not in FIELDS:
        raise ConfigError(f"{where}: unknown field {field!r}; {closest(str(field), FIELDS)}")
    periods = [spec.param(k, 1) for k in ("fast", "slow", "signal")]
    if not all(isinstance(p, int) and p >= 1 for p in periods):
        raise ConfigError(f"{where}: fast, slow and signal must be integers >= 1, found {periods}.")


def _for_interval(
    bars: pl.LazyFrame,
    interval: str,
    specs: list[Indicator],
    since: dt.datetime | None,
    carry: tuple[str, ...] = (),
    *,
    names_dtype: pl.DataType | None = None,
    interval_dtype: pl.DataType | None = None,
) -> pl.LazyFrame:
    """Compute every spec of one interval in one pass, then unfold the values into rows.

    The window functions run over (symbol, ts) order, where each symbol's bars are
    contiguous; the wide result is then sorted by (available_at, symbol, ts), so
    unfolding its name-sorted value columns row by row yields the output order.
    """
    frame = bars.filter(pl.col("interval") == interval).sort("symbol", "ts", maintain_order=True)
    frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("symbol").alias(_ROW))
    plans = [_plan(spec) for spec in specs]
    for depth in range(max(len(p) for p in plans) - 1):
        steps = [p[depth] for p in plans if depth < len(p) - 1]
        frame = frame.with_columns(**{k: v for step in steps for k, v in step.items()})
    outputs = {name: expr for plan in plans for name, expr in plan[-1].items()}
    names = sorted(outputs)
    wide = frame.select(*_INDEX, *carry, *(outputs[n].alias(n) for n in names))
    if since is not None:
        wide = wide.filter(pl.col("ts") >= since)
    # `wide` is in (symbol, ts) order, so a stable sort by ``available_at`` alone gives
    # (available_at, symbol, ts): the same rows, a single-key sort (~3x cheaper).
    ordered = wide.sort("available_at", maintain_order=True)
    return _unfold(
        ordered, names, interval, carry, names_dtype=names_dtype, interval_dtype=interval_dtype
    )


def _unfold(
    wide: pl.LazyFrame,
    names: list[str],
    interval: str,
    carry: tuple[str, ...] = (),
    *,
    names_dtype: pl.DataType | None = None,
    interval_dtype: pl.DataType | None = None,
) -> pl.LazyFrame:
    """Turn value columns into rows, row-major, dropping nulls and NaNs.

    ``name`` has `names_dtype` and ``interval`` `interval_dtype` (default String; an
    Enum holding every value is cheaper to sort and gather).

    The values are laid out row by row (a fixed-size array flattened, no copy), and
    the index columns gathered at the kept positions: no sort, no per-row Python.
    """
    k = len(names)
    value = pl.concat_arr(names).reshape((-1,))
    keep = value.is_not_null() & value.is_not_nan()
    kept = pl.int_range(pl.len() * k, dtype=pl.UInt64).filter(keep)
    row = kept // k
    return wide.select(
        pl.col("symbol").gather(row),
        pl.lit(pl.Series(names, dtype=names_dtype or pl.String())).gather(kept % k).alias("name"),
        pl.lit(interval, dtype=interval_dtype or pl.String()).alias("interval"),
        pl.col("ts").gather(row),
        value.filter(keep).alias("value"),
        pl.col("available_at").gather(row),
        *(pl.col(c).gather(row) for c in carry),
    )


def _plan(spec: Indicator) -> _Plan:
    """Return a spec's helper steps and its parts, renamed to their output names."""
    steps = _BUILDERS[spec.name](
        spec, pl.col(spec.param("field", "close")), f"{_TMP}{spec.output}."
    )
    parts = dict(zip(output_names(spec), steps[-1].values(), strict=True))
    return [*steps[:-1], parts]


# Builders: (spec, field, helper-name prefix) -> steps. Each step maps helper column
# names to expressions that may read the previous steps; the last step holds the parts
# in `PARTS` order. Window functions run per symbol (`_by_symbol`) over bars in ts
# order; warm-up positions are null.
#
# Constants multiply, never divide: Polars divides a column longer than one row by a
# float literal as a multiplication by its reciprocal, but a one-row column truly, so
# `x / 3.0` would change in the last bit with the number of bars and break "values
# never change when later bars arrive" bit for bit.


def _by_symbol(expr: pl.Expr) -> pl.Expr:
    return expr.over("symbol")


def _row() -> pl.Expr:
    return pl.col(_ROW)


def _seeded_ewm(x: pl.Expr, period: int, start: int, alpha: float) -> pl.Expr:
    """Return the recursion ``e = e + alpha * (x - e)`` seeded at row `start`, per symbol.

    The seed is the mean of the `period` values of `x` ending at `start` (TA-Lib's
    seeding); rows before `start` are null. This is ``ewm_mean(adjust=False)`` over
    the series whose first element is replaced by the seed.
    """
    # Rolling over the first start + 1 values only: the same sums, in the same order,
    # as over the whole series, for a fraction of the work.
    seed = x.head(start + 1).rolling_mean(period).last()
    seeded = pl.when(_row() == start).then(seed).when(_row() > start).then(x)
    return _by_symbol(seeded.ewm_mean(alpha=alpha, adjust=False))


def _sma(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001
    return [{"sma": _by_symbol(x.rolling_mean(_period(spec)))}]


def _ema(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001
    n = _period(spec)
    return [{"ema": _seeded_ewm(x, n, n - 1, 2.0 / (n + 1))}]


def _wma(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001
    n = _period(spec)
    weights = [float(w) for w in range(1, n + 1)]
    return [{"wma": _by_symbol(x.rolling_sum(n, weights=weights)) * (2.0 / (n * (n + 1)))}]


def _rsi(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:
    n = _period(spec)
    change = x.diff()
    gain = _seeded_ewm(change.clip(lower_bound=0.0), n, n, 1.0 / n)
    loss = _seeded_ewm((-change).clip(lower_bound=0.0), n, n, 1.0 / n)
    total = pl.col(tmp + "gain") + pl.col(tmp + "loss")
    rsi = pl.when(total < ZERO).then(0.0).otherwise(100.0 * (pl.col(tmp + "gain") / total))
    return [{tmp + "gain": gain, tmp + "loss": loss}, {"rsi": rsi}]


def _macd(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:
    fast, slow, signal = (spec.param(k, MACD_DEFAULTS[k]) for k in ("fast", "slow", "signal"))
    fast, slow = sorted((fast, slow))  # TA-Lib swaps them too
    # TA-Lib starts both EMAs at the slow one's first bar: the fast EMA is seeded
    # there with the mean of its last `fast` values, not at bar `fast - 1`.
    fast_ema = _seeded_ewm(x, fast, slow - 1, 2.0 / (fast + 1))
    line = fast_ema - _seeded_ewm(x, slow, slow - 1, 2.0 / (slow + 1))
    first = slow + signal - 2  # TA-Lib's lookback: every part starts here
    smooth = _seeded_ewm(pl.col(tmp + "line"), signal, first, 2.0 / (signal + 1))
    shown = pl.when(_row() >= first)
    return [
        {tmp + "line": line},
        {tmp + "signal": smooth},
        {
            "macd": shown.then(pl.col(tmp + "line")),
            "signal": pl.col(tmp + "signal"),
            "hist": shown.then(pl.col(tmp + "line") - pl.col(tmp + "signal")),
        },
    ]


def _bbands(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:
    n, k = _period(spec), float(spec.param("k", 2.0))
    middle, band = pl.col(tmp + "middle"), k * _deviation(pl.col(tmp + "var"))
    return [
        {tmp + "middle": _by_symbol(x.rolling_mean(n)), tmp + "var": _variance(x, n)},
        {"upper": middle + band, "middle": middle, "lower": middle - band},
    ]


def _atr(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001 (reads high, low, close)
    n = _period(spec)
    prev = pl.col("close").shift()
    true_range = pl.max_horizontal("high", prev) - pl.min_horizontal("low", prev)
    return [
        {tmp + "tr": pl.when(_row() > 0).then(_by_symbol(true_range))},
        {"atr": _seeded_ewm(pl.col(tmp + "tr"), n, n, 1.0 / n)},
    ]


def _stddev(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:
    return [{tmp + "var": _variance(x, _period(spec))}, {"stddev": _deviation(pl.col(tmp + "var"))}]


def _obv(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001
    volume = pl.col("volume")
    step = pl.when(_row() == 0).then(volume).otherwise(x.diff().sign() * volume)
    return [{"obv": _by_symbol(step.cum_sum())}]


def _vwap(spec: Indicator, x: pl.Expr, tmp: str) -> _Plan:  # noqa: ARG001 (reads hlc, volume)
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) * (1.0 / 3.0)
    session = ["symbol", "session"]
    volume = pl.col(tmp + "volume")
    return [
        {
            tmp + "value": (typical * pl.col("volume")).cum_sum().over(session),
            tmp + "volume": pl.col("volume").cum_sum().over(session),
        },
        {"vwap": pl.when(volume > 0).then(pl.col(tmp + "value") / volume)},
    ]


def _variance(x: pl.Expr, period: int) -> pl.Expr:
    """Population variance over `period` values, per symbol."""
    return _by_symbol(x.rolling_var(period, ddof=0))


def _deviation(variance: pl.Expr) -> pl.Expr:
    """Standard deviation from a variance; 0 below TA-Lib's zero band, as TA-Lib."""
    return pl.when(variance < ZERO).then(0.0).otherwise(variance.sqrt())


def _period(spec: Indicator) -> int:
    assert spec.period is not None  # checked by _validate
    return spec.period


_BUILDERS: dict[str, Callable[[Indicator, pl.Expr, str], _Plan]] = {
    "sma": _sma,
    "ema": _ema,
    "wma": _wma,
    "rsi": _rsi,
    "macd": _macd,
    "bbands": _bbands,
    "atr": _atr,
    "stddev": _stddev,
    "obv": _obv,
    "vwap": _vwap,
}
