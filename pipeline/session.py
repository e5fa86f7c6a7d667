"""Phase 3: the session table and the session's indicators.

The session's base bars (regular hours unless the run asks for extended hours) and
its derived bars, in one table sorted by (``available_at``, ``symbol``, interval
length), so the stream only has to move a cursor; and the indicator values of those
bars, computed over history + session (warmed up from history), each visible with
its bar. The loader applies these functions once to a chunk of sessions (whose
first sessions are the history lookback) and the coordinator slices each session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from pipeline import derive, indicators, schema
from pipeline.config import Indicator
from pipeline.intervals import Interval


def interval_rank(intervals: Sequence[Interval], column: str = "interval") -> pl.Expr:
    """Return an expression ordering the run's interval strings by length (1m, 5m, 1h)."""
    lengths = {str(iv): iv.seconds for iv in intervals}
    return pl.col(column).cast(pl.String).replace_strict(lengths, return_dtype=pl.Int64)


def build(
    base: pl.LazyFrame,
    sessions: pl.DataFrame,
    base_interval: Interval,
    derived: Sequence[Interval],
    *,
    emit_incomplete: bool,
) -> pl.LazyFrame:
    """Return the session table: base bars and every derived interval, in stream order.

    `base` holds the session's annotated base bars; `sessions` its calendar row.
    """
    frames = [base] + [
        derive.derive(base, sessions, target, base_interval, emit_incomplete=emit_incomplete)
        for target in derived
    ]
    table = pl.concat(frames, how="vertical").select(schema.CATALOG_BARS.names())
    return order(table, [base_interval, *derived])


def order(table: pl.LazyFrame, intervals: Sequence[Interval]) -> pl.LazyFrame:
    """Sort bars the way the stream reveals them: (available_at, symbol, interval length)."""
    return (
        table.with_columns(_rank=interval_rank(intervals))
        .sort("available_at", "symbol", "_rank", "ts", maintain_order=True)
        .drop("_rank")
    )


def session_indicators(
    history: pl.LazyFrame,
    table: pl.LazyFrame,
    specs: Sequence[Indicator],
    since: dt.datetime | None,
    *,
    carry: Sequence[str] = (),
) -> pl.LazyFrame:
    """Return the session's indicator values, computed over history + session.

    Only values of bars from `since` (the session's first bar; None: all) on are
    kept, sorted by (available_at, symbol, name): the order the stream reveals them.
    `carry` names bar columns copied onto each value's row (the loader carries
    ``session`` to slice a chunk's values per session).
    """
    if not specs:
        return schema.empty(schema.INDICATORS).lazy()
    wanted = sorted({spec.interval for spec in specs})
    both = pl.concat([history, table], how="vertical").filter(pl.col("interval").is_in(wanted))
    return indicators.compute(both, specs, since=since, carry=carry)
