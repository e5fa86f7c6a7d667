"""Phases 2.1, 2.3 and 2.4: trailing history, its quality, and its derived intervals.

Pure ``LazyFrame -> LazyFrame`` steps over annotated bars (`schema.CATALOG_BARS`);
the loader reads the store and the coordinator collects. History never holds a bar
of the session date or later: every step filters on ``session < day``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from pipeline import calendar, derive, quality, schema
from pipeline.intervals import Interval


def select(
    bars: pl.LazyFrame, day: dt.date, sessions: Sequence[dt.date], symbols: Sequence[str] | None
) -> pl.LazyFrame:
    """Return the bars of `sessions` (all strictly before `day`) for `symbols` (None: all).

    Examples
    --------
    >>> select(pl.LazyFrame(schema=schema.CATALOG_BARS), dt.date(2024, 7, 5), [], None)
    ...     .collect().height  # doctest: +SKIP
    0
    """
    wanted = pl.col("session").is_in(pl.Series(list(sessions), dtype=pl.Date).implode())
    out = bars.filter(wanted & (pl.col("session") < day))
    if symbols is not None:
        out = out.filter(pl.col("symbol").cast(pl.String).is_in(list(symbols)))
    return out


def derive_intervals(
    base: pl.LazyFrame,
    sessions: pl.DataFrame,
    base_interval: Interval,
    targets: Sequence[Interval],
    *,
    emit_incomplete: bool,
) -> pl.LazyFrame:
    """Phase 2.4: derive each target interval from the base-interval history."""
    frames = [
        derive.derive(base, sessions, target, base_interval, emit_incomplete=emit_incomplete)
        for target in targets
    ]
    if not frames:
        return schema.empty(schema.CATALOG_BARS).lazy()
    return pl.concat(frames, how="vertical")


def assess(
    bars: pl.LazyFrame, sessions: pl.DataFrame, interval: Interval, inherit: Sequence[Interval]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Phase 2.3: quality and gaps of one history interval against the calendar.

    Intervals derived from it (`inherit`) get the same quality rows under their name:
    a derived bar is only as good as the base bars it is made of.
    """
    slots = calendar.slots(sessions, interval)
    rows = quality.quality(bars, slots, str(interval))
    holes = quality.gaps(bars, slots, str(interval))
    inherited = [rows.with_columns(interval=pl.lit(str(iv))) for iv in inherit]
    return pl.concat([rows, *inherited]), holes
