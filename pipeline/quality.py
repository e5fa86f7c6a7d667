"""Data quality of bars against the exchange calendar: present vs. expected slots, and gaps.

Every function here is a pure ``LazyFrame -> LazyFrame`` step: no I/O, no collect.
The expected slots come from `pipeline.calendar.slots`; the caller decides which
sessions count by the slots it passes (e.g. the sessions between a symbol's first
and last bar). ``queries/quality_by_session.sql`` and ``queries/gaps.sql`` compute
the same frames in DuckDB, and a test holds the two engines to the same answer.
"""

from __future__ import annotations

import polars as pl

from pipeline.intervals import Interval
from pipeline.schema import QUALITY_SUMMARY


def quality(
    bars: pl.LazyFrame, slots: pl.LazyFrame, interval: str, symbols: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Count the slots holding a bar, per symbol of `bars` and session of `slots`.

    Parameters
    ----------
    bars
        Bars of one interval with at least ``symbol`` (String or Enum) and ``ts``, each
        (symbol, ts) once, as the store holds them (a repeat would count twice). Bars
        that fall on no slot (outside regular hours, off the grid) do not count.
    slots
        Expected bar opens (`schema.SLOTS`), as `pipeline.calendar.slots` returns.
    interval
        The bars' interval, written to the ``interval`` column.
    symbols
        The symbols to report (one column ``symbol``, in the dtype of `bars`), when they
        are not those of `bars`: e.g. the symbols of a wider range of bars.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.QUALITY`, sorted by (``symbol``, ``session``): one row per
        symbol of `bars` and session of `slots`, with ``present`` 0 on a session
        where the symbol has no bar. ``quality = 100 * present / expected``.
    """
    Interval.parse(interval)
    return (
        _counts(bars, slots, symbols)
        .select(
            pl.col("symbol").cast(pl.String),
            interval=pl.lit(interval, dtype=pl.String),
            session=pl.col("session"),
            expected=pl.col("expected"),
            present=pl.col("present"),
            quality=pl.col("present").cast(pl.Float64) * 100.0 / pl.col("expected"),
            complete=pl.col("present") == pl.col("expected"),
        )
        .sort("symbol", "session", maintain_order=True)
    )


def gaps(
    bars: pl.LazyFrame, slots: pl.LazyFrame, interval: str, symbols: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Find the runs of consecutive missing slots, per symbol of `bars` and session of `slots`.

    Slots are adjacent when they follow each other in slot order within a session,
    so a lunch break does not split a run; a run never crosses a session. `bars` and
    `symbols` as in `quality`.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.GAPS`, sorted by (``symbol``, ``start``): ``start`` is the
        first missing slot, ``end`` the last missing slot plus one interval (one day
        for ``1d``, seven for ``1w``), ``missing`` the number of slots in the run.
    """
    width = Interval.parse(interval).duration
    # A run of missing slots has a constant slot position minus rank among the missing.
    run = pl.col("position") - pl.col("position").rank("ordinal").over("symbol", "session")
    return (
        _missing(bars, slots, _incomplete(bars, slots, symbols))
        .group_by("symbol", "session", run.alias("run"))
        .agg(start=pl.col("ts").min(), last=pl.col("ts").max(), missing=pl.len())
        .select(
            pl.col("symbol").cast(pl.String),
            interval=pl.lit(interval, dtype=pl.String),
            session=pl.col("session"),
            start=pl.col("start"),
            end=pl.col("last") + pl.lit(width),
            missing=pl.col("missing").cast(pl.UInt32),
        )
        .sort("symbol", "start", maintain_order=True)
    )


def summarise(quality: pl.LazyFrame) -> pl.LazyFrame:
    """Sum a `schema.QUALITY` frame over its sessions, per symbol and interval.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.QUALITY_SUMMARY`, sorted by (``symbol``, ``interval``): ``quality`` is
        ``100 * sum(present) / sum(expected)`` and ``incomplete`` counts the
        sessions that are not complete.
    """
    return (
        quality.group_by("symbol", "interval")
        .agg(
            sessions=pl.len().cast(pl.UInt32),
            expected=pl.col("expected").cast(pl.UInt64).sum(),
            present=pl.col("present").cast(pl.UInt64).sum(),
            incomplete=(~pl.col("complete")).sum().cast(pl.UInt32),
        )
        .with_columns(
            quality=pl.col("present").cast(pl.Float64) * 100.0 / pl.col("expected"),
        )
        .select(list(QUALITY_SUMMARY))
        .sort("symbol", "interval", maintain_order=True)
    )


def _symbols(bars: pl.LazyFrame) -> pl.LazyFrame:
    """Return the distinct symbols of `bars` (in their dtype: Enum stays Enum)."""
    return bars.select("symbol").unique()


def _counts(
    bars: pl.LazyFrame, slots: pl.LazyFrame, symbols: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Per symbol of `bars` (or `symbols`) and session of `slots`: ``expected``, ``present`` slots.

    The same plan serves `quality` and `gaps`, so collecting both together computes
    it once. Symbols keep their dtype here (an Enum is cheaper to hash than a String).
    """
    grid = slots.select("session", "ts")
    present = (
        bars.select("symbol", "ts")
        .join(grid, on="ts", how="inner")
        .group_by("symbol", "session")
        .agg(present=pl.len().cast(pl.UInt32))
    )
    expected = grid.group_by("session").agg(expected=pl.len().cast(pl.UInt32))
    return (
        (_symbols(bars) if symbols is None else symbols)
        .join(expected, how="cross")
        .join(present, on=["symbol", "session"], how="left")
        .with_columns(pl.col("present").fill_null(0))
    )


def _incomplete(
    bars: pl.LazyFrame, slots: pl.LazyFrame, symbols: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Return the (symbol, session) pairs missing at least one slot: where gaps can be."""
    counts = _counts(bars, slots, symbols)
    return counts.filter(pl.col("present") < pl.col("expected")).select("symbol", "session")


def _missing(bars: pl.LazyFrame, slots: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Return the slots of `pairs` (symbol, session) that no bar holds, in any order.

    Each carries its ``position``: the slot's rank in ``ts`` order within its session.
    """
    grid = slots.select(
        "session", "ts", position=pl.col("ts").rank("ordinal").over("session").cast(pl.Int64)
    )
    return pairs.join(grid, on="session").join(
        bars.select("symbol", "ts"), on=["symbol", "ts"], how="anti"
    )
