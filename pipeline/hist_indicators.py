"""Historical indicators (phase 2.2): values known before a session, from history only.

`compute` turns the trailing history of a session (`schema.CATALOG_BARS` rows, every
loaded interval) into `schema.INDICATORS` rows, one plan per indicator, concatenated.
`daily_values` computes the daily kinds for many sessions in one plan, each from its
own window, with the same values (the coordinator uses it for blocks of sessions).
Nothing here reads the disk or collects: the coordinator collects the result, with
``engine="in-memory"``. The streaming engine may split a group's rows between threads
and add the parts in another order, so the last digit of a mean can change from one
run to the next; the in-memory engine gives the same figures every time.

Windows (`HistoricalIndicator.period`):

- ``Nd``: the symbol's last N daily bars (the last N sessions when its history is
  complete; a symbol with fewer bars, e.g. a recent listing, is averaged over those
  it has).
- ``Nw`` / ``Ny``: the daily bars whose session is strictly after the session date
  minus N calendar weeks (7N days) or N calendar years (29 February falls back to
  28 February). For a session on 2019-02-15, ``52w`` keeps sessions after 2018-02-16.

Kinds: ``avg``, ``max``, ``min`` of a field over the window; ``prev``: the field of
the last daily bar; ``atr``: Wilder's average true range over N daily bars, equal to
TA-Lib's ``ATR(N)`` at the last bar, which needs N + 1 bars (fewer: no row). Daily
indicators read only ``interval == "1d"`` rows; a symbol without any emits no row.

``avg`` with ``granularity = "minute"`` is a per-minute-of-session profile over the
symbol's last N sessions that hold 1m bars: for each minute offset from the session
open, the mean of the field over those sessions whose regular hours reach that
offset (an early close adds nothing to the later minutes). A minute without a bar
counts as 0 for ``volume`` (nothing traded) and is skipped for price fields. A
session missing altogether is a data gap, not a quiet day: it is not in the window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import polars as pl

from pipeline import calendar, schema
from pipeline.config import FIELDS, HISTORICAL_NAMES, HistoricalIndicator
from pipeline.errors import ConfigError

_PERIOD = re.compile(r"^([1-9][0-9]*)([dwy])$")
_DAILY, _MINUTE = "1d", "1m"
_TARGET = "_for"  # the session a daily history row serves (it is in that session's window)
_KEYS = [_TARGET, "symbol"]


def compute(
    history: pl.LazyFrame,
    specs: Sequence[HistoricalIndicator],
    session: dt.date,
    session_open: dt.datetime,
    *,
    sessions: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Compute the historical indicators of one session from its trailing history.

    Parameters
    ----------
    history
        `schema.CATALOG_BARS` rows before `session` (``symbol`` String or Enum). Rows
        of `session` or later are dropped here too, so no value can look ahead.
    specs
        The indicators to compute; each must pass the checks of `validate`.
    session
        The session the values are for.
    session_open
        Its regular open (tz-aware): every row's ``available_at``.
    sessions
        `schema.CALENDAR_SESSIONS` covering the 1m history; required by minute
        profiles. 1m bars of sessions it lacks are ignored. When it also holds
        `session`, profiles are cut to that session's regular hours.

    Raises
    ------
    ConfigError
        A spec that cannot be computed (see `validate`).
    ValueError
        A naive `session_open`, or a minute profile without `sessions`: caller bugs.

    Returns
    -------
    pl.LazyFrame
        Schema `schema.INDICATORS` with the input's ``symbol`` dtype, sorted by
        (``symbol``, ``name``, ``ts``). Daily indicators give one row per symbol,
        interval ``1d``, ``ts`` = `session` at 00:00 UTC; profiles give one row per
        symbol and minute, interval ``1m``, ``ts`` = `session_open` + the offset.

    Examples
    --------
    >>> spec = HistoricalIndicator("avg", "close", "20d")
    >>> compute(bars, [spec], day, open_utc).collect()  # doctest: +SKIP
    """
    for spec in specs:
        validate(spec)
    opened = _utc(session_open)
    past = history.filter(pl.col("session") < session)
    profiles = [spec for spec in specs if spec.granularity == "minute"]
    frames = [_profile_rows(past, spec, session, opened, sessions) for spec in profiles]
    daily = [spec for spec in specs if spec.granularity != "minute"]
    if daily:
        target = pl.DataFrame({"session": [session], "first": [dt.date.min], "open": [opened]})
        frames.append(daily_values(past, daily, target.cast({"open": schema.TS})))
    symbol = history.collect_schema()["symbol"]
    out_schema = pl.Schema(
        {k: symbol if k == "symbol" else v for k, v in schema.INDICATORS.items()}
    )
    if not frames:
        return pl.LazyFrame(schema=out_schema)
    return pl.concat(frames).select(out_schema.names()).sort("symbol", "name", "ts")


def daily_values(
    history: pl.LazyFrame, specs: Sequence[HistoricalIndicator], targets: pl.DataFrame
) -> pl.LazyFrame:
    """Compute the daily (not minute-profile) indicators of many sessions at once.

    The same values as `compute` gives session by session, in one plan (phase 2.2 for a
    block of sessions).

    Parameters
    ----------
    history
        `schema.CATALOG_BARS` rows; only ``interval == "1d"`` rows are read.
    specs
        Daily indicators; each must pass the checks of `validate`.
    targets
        One row per session to compute: ``session`` (Date), ``first`` (Date: the first
        session of its history window) and ``open`` (`schema.TS`, the rows'
        ``available_at``). A session's values read the daily bars with
        ``first <= bar session < session``.

    Returns
    -------
    pl.LazyFrame
        `schema.INDICATORS` rows with the input's ``symbol`` dtype, sorted by ``ts``
        (the session at 00:00 UTC), ``symbol``, ``name``.
    """
    for spec in specs:
        validate(spec)
        if spec.granularity == "minute":
            raise ValueError(f"{spec.output!r} is a minute profile: compute it with `compute`.")
    bars = history.filter(pl.col("interval") == _DAILY)
    spans = targets.lazy().select(pl.col("session").alias(_TARGET), "first")
    # One copy of each bar per session whose window holds it, in session order per symbol.
    windows = (
        bars.join(spans, how="cross")
        .filter(pl.col("session").is_between(pl.col("first"), pl.col(_TARGET), closed="left"))
        .sort(_TARGET, "symbol", "session", maintain_order=True)
    )
    opens = targets.lazy().select(pl.col("session").alias(_TARGET), "open")
    frames = [
        _daily(windows, spec)
        .join(opens, on=_TARGET)
        .select(
            "symbol",
            name=pl.lit(spec.output, pl.String),
            interval=pl.lit(_DAILY, pl.String),
            ts=pl.col(_TARGET).cast(schema.TS),  # the session at 00:00 UTC
            value=pl.col("value").cast(pl.Float64),
            available_at=pl.col("open").cast(schema.TS),
        )
        for spec in specs
    ]
    shape = schema.INDICATORS
    if not frames:
        symbol = history.collect_schema()["symbol"]
        return pl.LazyFrame(schema=pl.Schema({**shape, "symbol": symbol}))
    return pl.concat(frames).sort("ts", "symbol", "name", maintain_order=True)


def validate(spec: HistoricalIndicator) -> None:
    """Raise `ConfigError` when `spec` cannot be computed, saying what to change."""
    where = f"Historical indicator {spec.output!r}"
    if spec.name not in HISTORICAL_NAMES:
        raise ConfigError(f"{where}: name {spec.name!r} is not one of {HISTORICAL_NAMES}.")
    if spec.field not in FIELDS:
        raise ConfigError(f"{where}: field {spec.field!r} is not one of {FIELDS}.")
    count, unit = _period(spec)
    if spec.granularity == "minute" and (spec.name != "avg" or unit != "d"):
        raise ConfigError(
            f"{where}: a minute profile is an 'avg' over sessions, found {spec.name!r} over "
            f"{spec.period!r}. Use name = 'avg' and a period such as '20d'."
        )
    if spec.name == "atr" and unit != "d":
        raise ConfigError(f"{where}: ATR counts daily bars; write its period as '{count}d'.")
    if spec.name == "prev" and spec.period != "1d":
        raise ConfigError(
            f"{where}: 'prev' reads the previous session only, found period {spec.period!r}. "
            "Leave the period at '1d'."
        )


def _period(spec: HistoricalIndicator) -> tuple[int, str]:
    """Return the (count, unit) of the spec's period."""
    match = _PERIOD.match(spec.period)
    if match is None:
        raise ConfigError(
            f"Historical indicator {spec.output!r}: period {spec.period!r} is not valid. "
            "Write N sessions ('20d'), N calendar weeks ('52w') or N calendar years ('1y')."
        )
    return int(match.group(1)), match.group(2)


def _profile_rows(
    past: pl.LazyFrame,
    spec: HistoricalIndicator,
    session: dt.date,
    opened: dt.datetime,
    sessions: pl.DataFrame | None,
) -> pl.LazyFrame:
    """Return the `schema.INDICATORS` rows of one minute profile."""
    if sessions is None:
        raise ValueError(
            f"Historical indicator {spec.output!r} is a minute profile: pass the calendar "
            "sessions of the history as `sessions=`."
        )
    count, _ = _period(spec)
    values = _profile(past, spec.field, count, sessions, session)
    return values.select(
        "symbol",
        name=pl.lit(spec.output, pl.String),
        interval=pl.lit(_MINUTE, pl.String),
        ts=(schema.moment_lit(opened) + pl.duration(minutes=pl.col("minute"))).cast(schema.TS),
        value=pl.col("value").cast(pl.Float64),
        available_at=schema.moment_lit(opened),
    )


def _daily(windows: pl.LazyFrame, spec: HistoricalIndicator) -> pl.LazyFrame:
    """Return (``_for``, ``symbol``, ``value``) of a daily indicator per session and symbol.

    `windows` hold each session's daily bars, marked with the session they serve
    (``_for``), in session order per (``_for``, ``symbol``).
    """
    count, unit = _period(spec)
    field = pl.col(spec.field)
    if spec.name == "prev":
        return windows.group_by(_KEYS).agg(value=field.sort_by("session").last())
    if spec.name == "atr":
        return _atr(windows, count)
    rows = windows.filter(_window(count, unit))
    value = {"avg": field.mean(), "max": field.max(), "min": field.min()}[spec.name]
    return rows.group_by(_KEYS).agg(value=value)


def _window(count: int, unit: str) -> pl.Expr:
    """Return the filter keeping the daily bars inside a period ending before their session.

    Calendar periods are half-open, ``[session - period, session)``: 52w is the 364
    days before the session, so 1w is the five sessions of the week before; a year back
    from 29 February is 28 February.
    """
    if unit == "d":
        return pl.col("session").rank("ordinal", descending=True).over(_KEYS) <= count
    return pl.col("session") >= pl.col(_TARGET).dt.offset_by(f"-{count}{unit}")


def _atr(windows: pl.LazyFrame, n: int) -> pl.LazyFrame:
    """Return Wilder's ATR(n) at each window's last daily bar, as TA-Lib computes it.

    True ranges start at the second bar (they need a previous close); the first ATR is
    the mean of the first n of them and each later one ``(atr * (n - 1) + tr) / n``,
    which is an EWM with alpha ``1 / n`` seeded with that mean.
    """
    high, low, close = (pl.col(c).sort_by("session") for c in ("high", "low", "close"))
    prev = close.shift(1)
    tr = pl.max_horizontal(high - low, (high - prev).abs(), (low - prev).abs()).slice(1)
    seeded = tr.head(n).mean().append(tr.slice(n))
    atr = seeded.ewm_mean(alpha=1.0 / n, adjust=False).last()
    return (
        windows.group_by(_KEYS)
        .agg(value=atr, bars=pl.len())
        .filter(pl.col("bars") > n)
        .select(*_KEYS, "value")
    )


def _profile(
    past: pl.LazyFrame, field: str, count: int, sessions: pl.DataFrame, session: dt.date
) -> pl.LazyFrame:
    """Return (``symbol``, ``minute``, ``value``): the per-minute profile of `field`."""
    calendar_days = sessions.lazy()
    minutes = past.filter(pl.col("interval") == _MINUTE)
    window = (
        minutes.select("symbol", "session")
        .unique()
        .join(calendar_days.select("session"), on="session", how="semi")
        .filter(pl.col("session").rank("ordinal", descending=True).over("symbol") <= count)
    )
    used = calendar_days.join(window.select("session").unique(), on="session", how="semi")
    cells = window.join(_minutes_of(used), on="session").join(
        minutes.select("symbol", "ts", field), on=["symbol", "ts"], how="left"
    )
    value = pl.col(field).fill_null(0.0) if field == "volume" else pl.col(field)
    out = cells.group_by("symbol", "minute").agg(value=value.mean()).drop_nulls("value")
    today = sessions.filter(pl.col("session") == session)
    if today.height:
        out = out.join(_minutes_of(today.lazy()).select("minute"), on="minute", how="semi")
    return out


def _minutes_of(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Return (``session``, ``ts``, ``minute``): every regular 1m slot, minutes after the open."""
    opens = sessions.select("session", "open")
    since_open = (pl.col("ts") - pl.col("open")).dt.total_minutes().cast(pl.Int32)
    return (
        calendar.slots(sessions, _MINUTE)
        .join(opens, on="session")
        .select("session", "ts", minute=since_open)
    )


def _utc(moment: dt.datetime) -> dt.datetime:
    """Return the tz-aware `moment` in UTC; a naive one is a caller's bug."""
    if moment.tzinfo is None:
        raise ValueError(f"session_open {moment} is naive: pass a tz-aware datetime (UTC).")
    return moment.astimezone(dt.UTC)
