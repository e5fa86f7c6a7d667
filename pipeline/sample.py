"""The bundled sample data set: synthetic, deterministic bars written through the store.

Three made-up symbols on the XNYS calendar, 1m bars for the sessions from
2024-06-25 to 2024-07-10 (the 2024-07-03 early close and the 2024-07-04 holiday
inside) and 1d bars for a year before plus the same sessions:

- ``ACME``: liquid, about $185, every regular minute, plus sparse pre-market
  (08:00-09:29 ET) and post-market (to 17:59 ET) bars;
- ``BOLT``: liquid, about $42, with a few missing minutes (three in a row on
  2024-07-01 from 10:15 ET, one on 2024-07-09 at 14:02 ET);
- ``TINY``: illiquid, about $8.50, a bar in roughly one minute of four.

Daily bars of the 1m sessions are aggregated from the regular-hours 1m bars, so the
two intervals agree. Prices are rounded to cents and every bar satisfies
``low <= min(open, close) <= max(open, close) <= high``. `pipeline data sample`
regenerates it; a test checks the committed files equal a fresh generation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import calendar, schema
from pipeline.store import Store

MIC = "XNYS"
MINUTE_START = dt.date(2024, 6, 25)
MINUTE_END = dt.date(2024, 7, 10)
DAILY_START = dt.date(2023, 7, 3)
SEED = 20240703
NY = "America/New_York"


@dataclass(frozen=True)
class _Spec:
    symbol: str
    price: float
    daily_vol: float  # daily return standard deviation
    volume: float  # typical shares per regular-hours minute
    fill: float  # share of regular minutes that hold a bar
    extended: bool  # pre/post-market bars


SPECS = (
    _Spec("ACME", 185.0, 0.014, 9_000.0, 1.0, True),
    _Spec("BOLT", 42.0, 0.020, 4_000.0, 1.0, False),
    _Spec("TINY", 8.5, 0.030, 150.0, 0.25, False),
)
#: (symbol, first missing minute in New York time, minutes missing)
MISSING = (
    ("BOLT", dt.datetime(2024, 7, 1, 10, 15), 3),
    ("BOLT", dt.datetime(2024, 7, 9, 14, 2), 1),
)


def minute_bars(rng: np.random.Generator) -> pl.DataFrame:
    """Return the sample's 1m bars (regular and extended hours) for every symbol."""
    sessions = calendar.sessions(MIC, MINUTE_START, MINUTE_END)
    regular = calendar.slots(sessions, "1m").collect()
    frames = []
    for spec in SPECS:
        slots = regular
        if spec.extended:
            slots = pl.concat([regular, _extended_slots(sessions)]).sort("ts")
        bars = _path(rng, spec, slots)
        keep = rng.random(bars.height) < spec.fill
        if spec.extended:
            outside = ~bars["ts"].is_in(regular["ts"].implode())
            keep &= ~(outside & pl.Series(rng.random(bars.height) > 0.2)).to_numpy()
        frames.append(bars.filter(pl.Series(keep)).pipe(_drop_missing, spec.symbol))
    return pl.concat(frames).select(schema.BARS.names())


def _extended_slots(sessions: pl.DataFrame) -> pl.DataFrame:
    local_day = pl.col("session").cast(pl.Datetime("us")).dt.replace_time_zone(NY)
    pre_start = local_day.dt.offset_by("8h").dt.convert_time_zone("UTC")
    post_end = local_day.dt.offset_by("18h").dt.convert_time_zone("UTC")
    pre = pl.datetime_ranges(pre_start, pl.col("open"), "1m", closed="left").alias("ts")
    post = pl.datetime_ranges(pl.col("close"), post_end, "1m", closed="left").alias("ts")
    out = pl.concat([sessions.select("session", pre), sessions.select("session", post)]).explode(
        "ts"
    )
    return out.select(schema.SLOTS.names())


def _path(rng: np.random.Generator, spec: _Spec, slots: pl.DataFrame) -> pl.DataFrame:
    n = slots.height
    sigma = spec.daily_vol / np.sqrt(390)
    new_day = slots["session"].is_first_distinct().to_numpy()
    jumps = rng.normal(0.0, sigma, n) + new_day * rng.normal(0.0, spec.daily_vol / 3, n)
    close = spec.price * np.exp(np.cumsum(jumps))
    open_ = np.concatenate([[spec.price], close[:-1]]) * np.exp(rng.normal(0.0, sigma / 4, n))
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    minute = slots["ts"].dt.convert_time_zone(NY).dt.hour().cast(pl.Int32).to_numpy() * 60
    minute = minute + slots["ts"].dt.minute().cast(pl.Int32).to_numpy()
    shape = 1.0 + 2.0 * ((minute - 765) / 390.0) ** 2  # U-shaped around 12:45 ET
    volume = np.round(spec.volume * shape * rng.lognormal(0.0, 0.5, n) / 10) * 10
    bars = pl.DataFrame(
        {
            "symbol": spec.symbol,
            "ts": slots["ts"],
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wick[0]),
            "low": np.minimum(open_, close) * np.exp(-wick[1]),
            "close": close,
            "volume": np.maximum(volume, 10.0),
        }
    )
    return _round_prices(bars)


def _round_prices(bars: pl.DataFrame) -> pl.DataFrame:
    bars = bars.with_columns(pl.col("open", "high", "low", "close").round(2))
    return bars.with_columns(
        high=pl.max_horizontal("open", "high", "low", "close"),
        low=pl.min_horizontal("open", "high", "low", "close"),
    )


def _drop_missing(bars: pl.DataFrame, symbol: str) -> pl.DataFrame:
    for name, start, count in MISSING:
        if name != symbol:
            continue
        first = pl.Series([start]).dt.replace_time_zone(NY).dt.convert_time_zone("UTC")[0]
        last = first + dt.timedelta(minutes=count)
        bars = bars.filter(~pl.col("ts").is_between(first, last, closed="left"))
    return bars


def daily_bars(rng: np.random.Generator, minutes: pl.DataFrame) -> pl.DataFrame:
    """Return 1d bars: a random walk before the 1m window, aggregates of the 1m bars inside it."""
    sessions = calendar.sessions(MIC, MINUTE_START, MINUTE_END)
    regular = minutes.join(
        calendar.slots(sessions, "1m").collect(), on="ts", how="semi"
    ).with_columns(session=pl.col("ts").dt.convert_time_zone(NY).dt.date())
    inside = (
        regular.sort("ts")
        .group_by("symbol", "session", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .with_columns(ts=pl.col("session").cast(pl.Datetime("us", "UTC")))
    )
    before = calendar.sessions(MIC, DAILY_START, MINUTE_START - dt.timedelta(days=1))
    walks = [_daily_walk(rng, spec, before["session"], inside) for spec in SPECS]
    return pl.concat([*walks, inside.select(schema.BARS.names())]).sort("symbol", "ts")


def _daily_walk(
    rng: np.random.Generator, spec: _Spec, days: pl.Series, inside: pl.DataFrame
) -> pl.DataFrame:
    n = days.len()
    first_open = inside.filter(pl.col("symbol") == spec.symbol)["open"][0]
    returns = rng.normal(0.0, spec.daily_vol, n)
    # Walk backwards from the first 1m open so the two intervals join up.
    close = first_open * np.exp(-np.cumsum(returns[::-1]))[::-1]
    open_ = close * np.exp(rng.normal(0.0, spec.daily_vol / 2, n))
    wick = np.abs(rng.normal(0.0, spec.daily_vol / 2, (2, n)))
    volume = np.round(spec.volume * 390 * spec.fill * rng.lognormal(0.0, 0.3, n) / 100) * 100
    bars = pl.DataFrame(
        {
            "symbol": spec.symbol,
            "ts": days.cast(pl.Datetime("us", "UTC")),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wick[0]),
            "low": np.minimum(open_, close) * np.exp(-wick[1]),
            "close": close,
            "volume": volume,
        }
    )
    return _round_prices(bars)


def generate() -> dict[str, pl.DataFrame]:
    """Return the sample's bars by interval (``1m`` and ``1d``), deterministically."""
    rng = np.random.default_rng(SEED)
    minutes = minute_bars(rng)
    return {"1m": minutes, "1d": daily_bars(rng, minutes)}


def write_sample(root: str | Path) -> str:
    """Write the sample into the store at `root` (replacing earlier sample bars); describe it."""
    store = Store(root)
    lines = []
    for interval, bars in generate().items():
        report = store.write(interval, bars, replace=True)
        lines.append(
            f"{interval}: {bars.height} bars for {', '.join(report.symbols)} "
            f"({report.rows_added} added, {report.rows_replaced} replaced)"
        )
    return f"Sample data written to '{root}':\n" + "\n".join(lines)
