"""Phases 2.3 and 2.4 over history: quality and gaps, and the derived intervals.

Pure ``LazyFrame -> LazyFrame`` steps over annotated bars (`schema.CATALOG_BARS`).
The loader applies them once to each chunk of sessions it reads (phase 2.1), and
the coordinator hands each session the slices of the sessions strictly before it,
so history never holds a bar of the session date or later.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipeline import calendar, derive, quality, schema
from pipeline.intervals import Interval


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
    bars: pl.LazyFrame,
    sessions: pl.DataFrame,
    interval: Interval,
    inherit: Sequence[Interval],
    symbols: pl.LazyFrame | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Phase 2.3: quality and gaps of one history interval against the calendar.

    Intervals derived from it (`inherit`) get the same quality rows under their name:
    a derived bar is only as good as the base bars it is made of. `symbols`: as in
    `quality.quality`.
    """
    slots = calendar.slots(sessions, interval)
    rows = quality.quality(bars, slots, str(interval), symbols)
    holes = quality.gaps(bars, slots, str(interval), symbols)
    inherited = [rows.with_columns(interval=pl.lit(str(iv))) for iv in inherit]
    return pl.concat([rows, *inherited]), holes
