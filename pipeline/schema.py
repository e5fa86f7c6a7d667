"""Every table's columns and dtypes, in one place.

Timestamps are tz-aware ``Datetime("us", "UTC")`` everywhere. ``ts`` is the bar's
open; daily bars are labelled by their session date at 00:00 UTC and weekly bars
by the Monday of their week. ``symbol`` is a String on disk and a ``pl.Enum`` of the
run's universe in memory (zero-copy into DuckDB); use `with_symbols` to get the
in-memory form of a schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
import polars as pl

TS = pl.Datetime("us", "UTC")
PRICE = pl.Float64()

OHLCV: dict[str, pl.DataType] = {
    "open": PRICE,
    "high": PRICE,
    "low": PRICE,
    "close": PRICE,
    "volume": pl.Float64(),
}

#: Columns of a bar file in the store (symbol and interval live in the path).
STORED_BARS = pl.Schema({"ts": TS, **OHLCV})

#: Bars of one interval for many symbols, as the store returns them.
BARS = pl.Schema({"symbol": pl.String(), "ts": TS, **OHLCV})

#: Bars in the catalog (`history_bars`, `session_bars`): every interval in one table.
#: ``session`` is the exchange session the bar belongs to (extended-hours bars included);
#: ``ts_close`` is ``ts`` + interval, cut at the session close or a lunch break, and a
#: daily bar's is its session's close; ``available_at`` = ``ts_close`` (a bar is visible
#: once it has closed); ``n_src`` counts the base bars a derived bar aggregates (1 for a
#: stored bar) and ``complete`` says every expected base bar was there.
CATALOG_BARS = pl.Schema(
    {
        "symbol": pl.String(),
        "interval": pl.String(),
        "session": pl.Date(),
        "ts": TS,
        **OHLCV,
        "ts_close": TS,
        "available_at": TS,
        "n_src": pl.UInt32(),
        "complete": pl.Boolean(),
    }
)

#: Indicator values, historical and session (`indicators`).
INDICATORS = pl.Schema(
    {
        "symbol": pl.String(),
        "name": pl.String(),
        "interval": pl.String(),
        "ts": TS,
        "value": pl.Float64(),
        "available_at": TS,
    }
)

#: Quality per symbol x interval x session (`quality`).
QUALITY = pl.Schema(
    {
        "symbol": pl.String(),
        "interval": pl.String(),
        "session": pl.Date(),
        "expected": pl.UInt32(),
        "present": pl.UInt32(),
        "quality": pl.Float64(),
        "complete": pl.Boolean(),
    }
)

#: Quality over a window of sessions, per symbol and interval (`quality.summarise`).
QUALITY_SUMMARY = pl.Schema(
    {
        "symbol": pl.String(),
        "interval": pl.String(),
        "sessions": pl.UInt32(),
        "expected": pl.UInt64(),
        "present": pl.UInt64(),
        "quality": pl.Float64(),
        "incomplete": pl.UInt32(),
    }
)


#: Runs of missing slots (`gaps`): ``start`` is the first missing slot's open,
#: ``end`` that of the last missing slot plus one interval (a gap ending in a slot cut
#: short by the close or a break reaches past it).
GAPS = pl.Schema(
    {
        "symbol": pl.String(),
        "interval": pl.String(),
        "session": pl.Date(),
        "start": TS,
        "end": TS,
        "missing": pl.UInt32(),
    }
)

#: Exchange sessions from the calendar. Break columns are null where there is no break.
CALENDAR_SESSIONS = pl.Schema(
    {
        "session": pl.Date(),
        "open": TS,
        "close": TS,
        "break_start": TS,
        "break_end": TS,
        "early_close": pl.Boolean(),
    }
)

#: Expected bar slots: one row per bar open inside regular hours.
SLOTS = pl.Schema({"session": pl.Date(), "ts": TS})

#: What the store holds (`pipeline data list`).
INVENTORY = pl.Schema(
    {
        "interval": pl.String(),
        "symbol": pl.String(),
        "first": TS,
        "last": TS,
        "rows": pl.UInt64(),
        "files": pl.UInt32(),
    }
)

#: Per-session figures of a run (`sessions`).
SESSIONS = pl.Schema(
    {
        "run_id": pl.String(),
        "session": pl.Date(),
        "phase": pl.String(),
        "bars": pl.UInt64(),
        "seconds": pl.Float64(),
        "quality": pl.Float64(),
    }
)

#: Per-run figures (`runs`).
RUNS = pl.Schema(
    {
        "run_id": pl.String(),
        "name": pl.String(),
        "started": TS,
        "sessions": pl.UInt32(),
        "bars": pl.UInt64(),
        "seconds": pl.Float64(),
        "peak_memory_mb": pl.Float64(),
    }
)

#: The analysis engine's record, as the simulated broker builds it (`pipeline.broker`).
#: Orders: ``status`` is working, partially_filled, filled, cancelled or refused
#: (``reason`` says why); ``filled_quantity`` is the shares filled so far.
ORDERS = pl.Schema(
    {
        "run_id": pl.String(),
        "order_id": pl.UInt64(),
        "symbol": pl.String(),
        "ts": TS,
        "side": pl.String(),
        "kind": pl.String(),
        "quantity": pl.Float64(),
        "limit_price": pl.Float64(),
        "stop_price": pl.Float64(),
        "status": pl.String(),
        "reason": pl.String(),
        "filled_quantity": pl.Float64(),
    }
)
#: Fills: ``slippage`` is its currency cost, ``at_close`` says it filled at the signal
#: bar's close (``fill = "close"``) rather than at the next bar's open.
FILLS = pl.Schema(
    {
        "run_id": pl.String(),
        "order_id": pl.UInt64(),
        "symbol": pl.String(),
        "ts": TS,
        "side": pl.String(),
        "quantity": pl.Float64(),
        "price": pl.Float64(),
        "commission": pl.Float64(),
        "slippage": pl.Float64(),
        "at_close": pl.Boolean(),
    }
)
#: Round-trip trades: ``side`` is "long" or "short", ``commission`` the entry and exit
#: fills' share of it.
TRADES = pl.Schema(
    {
        "run_id": pl.String(),
        "symbol": pl.String(),
        "entry_ts": TS,
        "exit_ts": TS,
        "quantity": pl.Float64(),
        "entry_price": pl.Float64(),
        "exit_price": pl.Float64(),
        "pnl": pl.Float64(),
        "return": pl.Float64(),
        "bars_held": pl.UInt32(),
        "side": pl.String(),
        "commission": pl.Float64(),
    }
)
#: Positions at each session close, with the P&L realised so far and the open P&L.
POSITIONS = pl.Schema(
    {
        "run_id": pl.String(),
        "symbol": pl.String(),
        "ts": TS,
        "quantity": pl.Float64(),
        "avg_price": pl.Float64(),
        "market_value": pl.Float64(),
        "realised_pnl": pl.Float64(),
        "unrealised_pnl": pl.Float64(),
    }
)
#: Equity per base bar time; ``drawdown`` = equity / running peak - 1 (0 at a peak).
EQUITY = pl.Schema(
    {
        "run_id": pl.String(),
        "ts": TS,
        "cash": pl.Float64(),
        "equity": pl.Float64(),
        "drawdown": pl.Float64(),
    }
)

#: The catalog's tables by their fixed names (DESIGN section 3).
CATALOG_TABLES: dict[str, pl.Schema] = {
    "history_bars": CATALOG_BARS,
    "session_bars": CATALOG_BARS,
    "indicators": INDICATORS,
    "quality": QUALITY,
    "gaps": GAPS,
    "orders": ORDERS,
    "fills": FILLS,
    "trades": TRADES,
    "positions": POSITIONS,
    "equity": EQUITY,
    "sessions": SESSIONS,
    "runs": RUNS,
}


#: The Unix epoch in UTC: a `TS` value counts microseconds from it.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def moment_micros(moment: dt.datetime) -> int:
    """Return a tz-aware datetime as microseconds since the epoch (a `TS` value)."""
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def moment_lit(moment: dt.datetime) -> pl.Expr:
    """Return a tz-aware datetime as a `TS` literal (10x cheaper than ``pl.lit(moment)``)."""
    return pl.lit(moment_micros(moment), pl.Int64).cast(TS)


def moment_of(micros: int) -> dt.datetime:
    """Return a `TS` value (microseconds since the epoch) as a UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=micros)


def moments_of(micros: npt.NDArray[np.int64]) -> list[dt.datetime]:
    """Return `TS` values as UTC datetimes, as `moment_of` does one.

    Whole seconds (bar clocks) go through ``fromtimestamp`` with an integer: exact and
    ~2x cheaper than adding a timedelta.
    """
    if (micros % 1_000_000 == 0).all():
        seconds, utc = (micros // 1_000_000).tolist(), dt.UTC
        return [dt.datetime.fromtimestamp(s, utc) for s in seconds]
    return [moment_of(m) for m in micros.tolist()]


def micros(times: pl.Series) -> npt.NDArray[np.int64]:
    """Return a datetime column as int64 microseconds since the epoch (UTC).

    A zero-copy view for `TS` columns (NumPy's datetime64[us] read as int64); much
    cheaper than ``to_physical()``, which the hot paths avoid.
    """
    values = times.to_numpy()
    if values.dtype != np.dtype("datetime64[us]"):
        values = times.dt.cast_time_unit("us").to_numpy()
    return values.view(np.int64)


def symbol_dtype(symbols: Iterable[str]) -> pl.Enum:
    """Return the in-memory symbol dtype for a universe: an Enum of the sorted symbols."""
    return pl.Enum(sorted(set(symbols)))


def with_symbols(schema: Mapping[str, pl.DataType], symbols: Iterable[str]) -> pl.Schema:
    """Return `schema` with its ``symbol`` column typed as the universe's Enum."""
    enum = symbol_dtype(symbols)
    return pl.Schema({k: (enum if k == "symbol" else v) for k, v in schema.items()})


def empty(schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Return an empty frame with `schema`."""
    return pl.DataFrame(schema=dict(schema))


def check(frame: pl.LazyFrame | pl.DataFrame, schema: Mapping[str, pl.DataType], what: str) -> None:
    """Raise `SchemaMismatchError` when `frame` lacks a column of `schema` or has the wrong dtype.

    Uses ``collect_schema()``, which does not run the query. Enum and String symbol
    columns are both accepted where the schema says String.
    """
    actual = frame.collect_schema()
    for name, dtype in schema.items():
        got = actual.get(name)
        ok = got == dtype or (dtype == pl.String and isinstance(got, pl.Enum))
        if not ok:
            raise SchemaMismatchError(f"{what}: column {name!r} should be {dtype}, found {got}.")


class SchemaMismatchError(AssertionError):
    """A stage produced a frame of the wrong shape: a bug in the pipeline, not in the input."""
