"""Turn a file's stamps into bar-open ``ts`` in UTC, without guessing.

A stamp column is read as text in one detected format (the format that parses the
most of the first rows; rows that do not match are invalid, rule ``timestamp``).
Stamps with an offset (``Z``, ``+00:00``, ``-0500``) need no zone; naive stamps of
intraday bars need one. Daily bars are labelled by the calendar date written in the
stamp (00:00 UTC), weekly bars by the Monday of that date's week; for them neither
the zone nor the stamp convention matters. Integer epoch stamps are refused.
"""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl

from pipeline._import_columns import Columns
from pipeline.errors import InputError
from pipeline.intervals import Interval
from pipeline.presets import Layout

# Families of formats: members differ only in optional seconds; a file uses one family.
_DATETIME_FORMATS: tuple[tuple[str, ...], ...] = (
    ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"),
    ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"),
    ("%Y%m%d %H%M%S", "%Y%m%d %H%M"),
    ("%Y%m%d %H:%M:%S", "%Y%m%d %H:%M"),
    ("%Y%m%dT%H%M%S",),
    ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"),
)
_DATE_FORMATS: tuple[tuple[str, ...], ...] = (("%Y-%m-%d",), ("%Y%m%d",), ("%Y/%m/%d",))
_OFFSET = r"(Z|z|[+-]\d{2}:?\d{2})$"
_SAMPLE = 500
_HELPERS = ("_ts_naive", "_ts_off", "_ts_date_only")

log = logging.getLogger(__name__)


def parse_stamps(
    frame: pl.DataFrame, cols: Columns, layout: Layout, interval: Interval, source: str
) -> pl.DataFrame:
    """Add ``ts`` (UTC bar open, null where invalid), ``_raw_ts`` and ``_ts_problem`` to `frame`."""
    frame = _wall_clock(frame, cols, layout, source)
    if interval.is_intraday:
        frame = _intraday(frame, layout, interval, source)
    else:
        frame = _dated(frame, interval)
    frame = frame.with_columns(_ts_problem=_existing_problem(frame))
    return frame.drop(*(h for h in _HELPERS if h in frame.columns))


# ------------------------------------------------------------------ wall clock
def _wall_clock(frame: pl.DataFrame, cols: Columns, layout: Layout, source: str) -> pl.DataFrame:
    """Add ``_ts_naive`` (as written), ``_ts_off`` (offset seconds or null), ``_raw_ts``."""
    column = cols.ts or cols.date
    assert column is not None  # resolve_columns guarantees a stamp column
    dtype = frame.schema[column]
    if layout.day is not None:
        return _milliseconds(frame, column, layout.day)
    if isinstance(dtype, pl.Datetime):
        return _typed_datetime(frame, column, dtype)
    if dtype == pl.Date:
        return frame.with_columns(
            _raw_ts=pl.col(column).cast(pl.String),
            _ts_naive=pl.col(column).cast(pl.Datetime("us")),
            _ts_off=pl.lit(None, pl.Int64),
            _ts_date_only=pl.lit(True),
        )
    if dtype != pl.String:
        raise InputError(_epoch_message(source, str(frame[column].drop_nulls().head(1).to_list())))
    text = pl.col(column).str.strip_chars()
    if cols.date is not None and cols.time is not None:
        text = pl.concat_str(text, pl.col(cols.time).str.strip_chars(), separator=" ")
    return _text_stamps(frame.with_columns(_raw_ts=text), source)


def _milliseconds(frame: pl.DataFrame, column: str, day: dt.date) -> pl.DataFrame:
    raw = pl.col(column).str.strip_chars()
    ms = raw.cast(pl.Int64, strict=False)
    midnight = pl.lit(dt.datetime(day.year, day.month, day.day), pl.Datetime("us"))
    return frame.with_columns(
        _raw_ts=raw,
        _ts_naive=midnight + pl.duration(milliseconds=ms),
        _ts_off=pl.lit(None, pl.Int64),
        _ts_date_only=pl.lit(False),
        _ts_problem=pl.when(ms.is_null() & raw.is_not_null()).then(
            pl.format("'{}' is not a whole number of milliseconds since midnight", raw)
        ),
    )


def _typed_datetime(frame: pl.DataFrame, column: str, dtype: pl.Datetime) -> pl.DataFrame:
    value = pl.col(column).cast(pl.Datetime("us", dtype.time_zone))
    if dtype.time_zone is None:
        naive, offset = value, pl.lit(None, pl.Int64)
    else:  # the column's own zone gives the wall clock and the offset
        naive = value.dt.replace_time_zone(None)
        utc = value.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        offset = (naive - utc).dt.total_seconds()
    return frame.with_columns(
        _raw_ts=pl.col(column).cast(pl.String),
        _ts_naive=naive,
        _ts_off=offset.cast(pl.Int64),
        _ts_date_only=pl.lit(False),
    )


def _text_stamps(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    raw = pl.col("_raw_ts")
    frame = frame.with_columns(
        _ts_local=raw.str.replace(r"(\d)\s*" + _OFFSET, "$1"),
        _ts_offtext=raw.str.extract(r"\d\s*" + _OFFSET, 1),
    )
    family = _detect_format(frame["_ts_local"], source)
    with_offsets = frame["_ts_offtext"].drop_nulls().len() * 2 > frame["_ts_offtext"].len()
    naive = _parse(pl.col("_ts_local"), family)
    off = pl.col("_ts_offtext")
    seconds = (
        pl.when(off.str.to_uppercase() == "Z")
        .then(0)
        .otherwise(
            pl.when(off.str.starts_with("-")).then(-1).otherwise(1)
            * (off.str.slice(1, 2).cast(pl.Int64) * 3600 + off.str.slice(-2).cast(pl.Int64) * 60)
        )
    )
    unlike = "has no UTC offset" if with_offsets else "has a UTC offset"
    stray = off.is_null() if with_offsets else off.is_not_null()
    problem = (
        pl.when(raw.is_null() | (raw == ""))
        .then(pl.lit("ts is missing"))
        .when(naive.is_null())
        .then(pl.format(f"'{{}}' does not match the file's stamp format {_human(family)}", raw))
        .when(stray)
        .then(pl.format(f"'{{}}' {unlike}, unlike the file's other stamps", raw))
    )
    return frame.with_columns(
        _ts_naive=pl.when(stray).then(None).otherwise(naive),
        _ts_off=seconds.cast(pl.Int64) if with_offsets else pl.lit(None, pl.Int64),
        _ts_date_only=pl.lit(family in _DATE_FORMATS),
        _ts_problem=problem,
    ).drop("_ts_local", "_ts_offtext")


def _parse(text: pl.Expr, family: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce(text.str.to_datetime(f, strict=False, time_unit="us") for f in family)


def _detect_format(local: pl.Series, source: str) -> tuple[str, ...]:
    sample = local.drop_nulls().filter(local.drop_nulls() != "").head(_SAMPLE)
    if sample.len() == 0:
        return _DATETIME_FORMATS[0]
    families = (*_DATETIME_FORMATS, *_DATE_FORMATS)
    frame = sample.to_frame("s")
    parsed = frame.select(
        _parse(pl.col("s"), f).count().alias(str(i)) for i, f in enumerate(families)
    ).row(0)
    best = max(range(len(families)), key=lambda i: parsed[i])
    if parsed[best]:
        return families[best]
    example = str(sample[0])
    if sample.str.contains(r"^\d+(\.\d+)?$").all():
        raise InputError(_epoch_message(source, example))
    raise InputError(
        f"Stamps in '{source}' such as '{example}' are in no known format (expected e.g. "
        "2024-01-02 14:30:00, 2024-01-02T14:30:00Z, 20240102 143000, 20240102 14:30 or "
        "2024-01-02). Fix the file, or point --column ts=NAME at the stamp column."
    )


def _epoch_message(source: str, example: str) -> str:
    return (
        f"Stamps in '{source}' are numbers (e.g. {example}): epoch or counter stamps are not "
        "guessed. Convert them to text such as 2024-01-02T14:30:00Z, use a preset that knows "
        "the format (e.g. --preset lean), or point --column ts=NAME at another column."
    )


def _human(family: tuple[str, ...]) -> str:
    text = family[0]
    codes = (("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "hh"), ("%M", "mm"), ("%S", "ss"))
    for code, name in (*codes, ("%.f", "[.ffffff]")):
        text = text.replace(code, name)
    return text + (" (seconds optional)" if len(family) > 1 else "")


# ------------------------------------------------------------------ to UTC
def _intraday(frame: pl.DataFrame, layout: Layout, interval: Interval, source: str) -> pl.DataFrame:
    if frame.height and frame["_ts_date_only"][0]:
        raise InputError(
            f"Stamps in '{source}' are dates without a time, but the interval is {interval}: "
            "pass --interval 1d for daily bars, or import a file with times."
        )
    if layout.stamp is None:
        raise InputError(
            f"Say whether stamps in '{source}' mark the bar's open or close: pass --stamp open "
            "or --stamp close."
        )
    if frame["_ts_off"].null_count() < frame.height:
        if layout.tz is not None:
            example = frame.filter(pl.col("_ts_off").is_not_null())["_raw_ts"][0]
            log.warning(
                "Stamps in '%s' carry their own UTC offset (e.g. '%s'), so the time zone %s "
                "(--tz or the preset) was not used.",
                source,
                example,
                layout.tz,
            )
        utc = (pl.col("_ts_naive") - pl.duration(seconds=pl.col("_ts_off"))).dt.replace_time_zone(
            "UTC"
        )
        frame = frame.with_columns(ts=utc)
    else:
        frame = _localise(frame, layout.tz, source)
    if layout.stamp == "close":
        frame = frame.with_columns(ts=pl.col("ts") - pl.duration(seconds=interval.seconds))
    return frame


def _localise(frame: pl.DataFrame, tz: str | None, source: str) -> pl.DataFrame:
    if tz is None:
        raise InputError(
            f"Stamps in '{source}' have no time zone; pass --tz America/New_York (the "
            "exchange's zone) or --tz UTC."
        )
    naive = pl.col("_ts_naive")
    strict = naive.dt.replace_time_zone(tz, ambiguous="null", non_existent="null")
    earliest = naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    local = naive.dt.to_string("%Y-%m-%d %H:%M:%S")
    problem = (
        pl.when(naive.is_not_null() & earliest.is_null())
        .then(pl.format(f"local time {{}} does not exist in {tz} (clocks jump forward)", local))
        .when(earliest.is_not_null() & strict.is_null())
        .then(pl.format(f"local time {{}} occurs twice in {tz} (clocks fall back)", local))
    )
    return frame.with_columns(
        ts=strict.dt.convert_time_zone("UTC"),
        _ts_problem=pl.coalesce(_existing_problem(frame), problem),
    )


def _existing_problem(frame: pl.DataFrame) -> pl.Expr:
    return pl.col("_ts_problem") if "_ts_problem" in frame.columns else pl.lit(None, pl.String)


def _dated(frame: pl.DataFrame, interval: Interval) -> pl.DataFrame:
    day = pl.col("_ts_naive").dt.date()
    if interval.unit == "w":
        day = day - pl.duration(days=day.dt.weekday() - 1)
    return frame.with_columns(ts=day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
