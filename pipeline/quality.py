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


def quality(bars: pl.LazyFrame, slots: pl.LazyFrame, interval: str) -> pl.LazyFrame:
    """Count the slots holding a bar, per symbol of `bars` and session of `slots`.

    Parameters
    ----------
    bars
        Bars of one interval with at least ``symbol`` (String or Enum) and ``ts``.
        Bars that fall on no slot (outside regular hours, off the grid) do not count.
    slots
        Expected bar opens (`schema.SLOTS`), as `pipeline.calendar.slots` returns.
    interval
        The bars' interval, written to the ``interval`` column.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.QUALITY`, sorted by (``symbol``, ``session``): one row per
        symbol of `bars` and session of `slots`, with ``present`` 0 on a session
        where the symbol has no bar. ``quality = 100 * present / expected``.
    """
    Interval.parse(interval)
    slots = slots.select("session", "ts")
    expected = slots.group_by("session").agg(expected=pl.len().cast(pl.UInt32))
    present = (
        _marks(bars)
        .join(slots, on="ts", how="inner")
        .group_by("symbol", "session")
        .agg(present=pl.len().cast(pl.UInt32))
    )
    return (
        _symbols(bars)
        .join(expected, how="cross")
        .join(present, on=["symbol", "session"], how="left")
        .with_columns(pl.col("present").fill_null(0))
        .select(
            "symbol",
            interval=pl.lit(interval, dtype=pl.String),
            session=pl.col("session"),
            expected=pl.col("expected"),
            present=pl.col("present"),
            quality=pl.col("present").cast(pl.Float64) * 100.0 / pl.col("expected"),
            complete=pl.col("present") == pl.col("expected"),
        )
        .sort("symbol", "session")
    )


def gaps(bars: pl.LazyFrame, slots: pl.LazyFrame, interval: str) -> pl.LazyFrame:
    """Find the runs of consecutive missing slots, per symbol of `bars` and session of `slots`.

    Slots are adjacent when they follow each other in slot order within a session,
    so a lunch break does not split a run; a run never crosses a session.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.GAPS`, sorted by (``symbol``, ``start``): ``start`` is the
        first missing slot, ``end`` the last missing slot plus one interval (one day
        for ``1d``, seven for ``1w``), ``missing`` the number of slots in the run.
    """
    width = Interval.parse(interval).duration
    return (
        _grid(bars, slots, _incomplete(bars, slots))
        .with_columns(run=pl.struct("symbol", "session", "missing").rle_id())
        .filter(pl.col("missing"))
        .group_by("symbol", "session", "run")
        .agg(start=pl.col("ts").min(), last=pl.col("ts").max(), missing=pl.len())
        .select(
            "symbol",
            interval=pl.lit(interval, dtype=pl.String),
            session=pl.col("session"),
            start=pl.col("start"),
            end=pl.col("last") + pl.lit(width),
            missing=pl.col("missing").cast(pl.UInt32),
        )
        .sort("symbol", "start")
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
        .sort("symbol", "interval")
    )


def _symbols(bars: pl.LazyFrame) -> pl.LazyFrame:
    """Return the distinct symbols of `bars` as Strings."""
    return bars.select(pl.col("symbol").cast(pl.String)).unique()


def _marks(bars: pl.LazyFrame) -> pl.LazyFrame:
    """Return the distinct (symbol, ts) of `bars`, with String symbols."""
    return bars.select(pl.col("symbol").cast(pl.String), "ts").unique()


def _incomplete(bars: pl.LazyFrame, slots: pl.LazyFrame) -> pl.LazyFrame:
    """Return the (symbol, session) pairs missing at least one slot: where gaps can be."""
    grid = slots.select("session", "ts")
    present = (
        _marks(bars).join(grid, on="ts", how="inner").group_by("symbol", "session").len("present")
    )
    expected = grid.group_by("session").len("expected")
    return (
        _symbols(bars)
        .join(expected, how="cross")
        .join(present, on=["symbol", "session"], how="left")
        .filter(pl.col("present").fill_null(0) < pl.col("expected"))
        .select("symbol", "session")
    )


def _grid(
    bars: pl.LazyFrame, slots: pl.LazyFrame, pairs: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Return every (symbol, session, ts) slot with ``missing`` true where no bar holds it.

    `pairs` limits it to those (symbol, session) pairs (default: every symbol of
    `bars` on every session of `slots`). Sorted by (symbol, session, ts), the order
    run detection relies on.
    """
    hits = _marks(bars).with_columns(hit=pl.lit(value=True))
    pairs = (
        _symbols(bars).join(slots.select("session").unique(), how="cross")
        if pairs is None
        else pairs
    )
    return (
        pairs.join(slots.select("session", "ts"), on="session")
        .join(hits, on=["symbol", "ts"], how="left")
        .select("symbol", "session", "ts", missing=pl.col("hit").is_null())
        .sort("symbol", "session", "ts")
    )
