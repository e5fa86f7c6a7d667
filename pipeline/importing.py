"""Import bar files: read, normalise to `schema.BARS`, validate, and write to the store.

`read_bars` turns one file into valid bars (bar-open ``ts`` in UTC, sorted by
symbol and ts) plus the rows it rejected; `import_files` reads every file first and
writes only when all of them are acceptable, one `Store.write` per interval.

What a file does not say about itself comes from the options or a preset
(`pipeline.presets`), never from a guess: naive stamps need a zone, intraday stamps
need the open/close convention, the interval must be given.

Examples
--------
>>> options = ImportOptions(interval="1m", tz="America/New_York", stamp="open")
>>> parsed = read_bars(Path("ACME.csv"), options)  # doctest: +SKIP
>>> parsed.bars.schema == schema.BARS  # doctest: +SKIP
True
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import polars as pl

from pipeline import calendar, presets, schema, validate
from pipeline._import_columns import Columns, resolve_columns
from pipeline._import_read import BAR_SUFFIXES, RawTable, read_raw
from pipeline._import_stamps import parse_stamps
from pipeline.errors import ConfigError, ConflictError, InputError
from pipeline.intervals import Interval
from pipeline.presets import Layout, Stamp
from pipeline.store import Store, validate_symbol

log = logging.getLogger(__name__)

_SEPARATOR_NAMES = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "\\t": "\t", "|": "|"}
REJECTED = pl.Schema(
    {
        "file": pl.String(),
        "row": pl.Int64(),
        "column": pl.String(),
        "value": pl.String(),
        "rule": pl.String(),
        "detail": pl.String(),
    }
)


@dataclass(frozen=True)
class ImportOptions:
    """How to read bar files; None means: from the preset, or detected, or an error.

    ``columns`` maps a bar field to a file column (``{"ts": "Time", "close": "Last"}``);
    it is stored as a sorted tuple of pairs so the options stay hashable. ``calendar`` is
    the exchange whose sessions the bars are compared with (a warning when some fall
    outside them; None: no comparison).
    """

    interval: str | None = None
    symbol: str | None = None
    tz: str | None = None
    stamp: Stamp | None = None
    preset: str | None = None
    columns: Mapping[str, str] | Iterable[tuple[str, str]] = ()
    skip_invalid: bool = False
    separator: str | None = None
    has_header: bool | None = None
    calendar: str | None = "XNYS"

    def __post_init__(self) -> None:
        pairs = self.columns.items() if isinstance(self.columns, Mapping) else self.columns
        object.__setattr__(self, "columns", tuple(sorted((str(k), str(v)) for k, v in pairs)))
        if self.interval is not None:
            Interval.parse(self.interval)
        if self.preset is not None:
            presets.get(self.preset)
        if self.tz is not None:
            _check_tz(self.tz)
        if self.stamp not in (None, "open", "close"):
            raise ConfigError(
                f"Stamp {self.stamp!r} is not valid: pass --stamp open or --stamp close."
            )
        if self.separator is not None and self.separator not in _SEPARATOR_NAMES:
            raise ConfigError(
                f"Separator {self.separator!r} is not supported: use ',', ';', '|' or 'tab'."
            )

    @property
    def column_map(self) -> dict[str, str]:
        """Return the column mapping as a dict (field -> file column)."""
        return dict(self.columns.items() if isinstance(self.columns, Mapping) else self.columns)


@dataclass(frozen=True)
class ParsedBars:
    """One file's valid bars (`schema.BARS`, sorted) and rejected rows (`REJECTED`)."""

    interval: Interval
    bars: pl.DataFrame
    rejected: pl.DataFrame
    source: str
    rows_read: int = 0


@dataclass(frozen=True)
class ImportReport:
    """What `import_files` read, skipped and wrote."""

    files: int
    rows_read: int
    rows_written: int
    rows_skipped: int
    rejected: pl.DataFrame
    symbols: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


def read_bars(path: Path, options: ImportOptions) -> ParsedBars:
    """Read one bar file into valid `schema.BARS` rows; raise `InputError` if it cannot be used.

    Invalid rows (see `pipeline.validate`) refuse the file unless
    ``options.skip_invalid``, in which case they are returned in ``rejected``.
    Identical repeated rows are dropped silently.
    """
    path = Path(path)
    layout = _layout(path, options)
    raw = read_raw(path, layout)
    interval = _interval(layout, raw.source)
    found = [c for c in raw.frame.columns if c != "_row"]
    cols = resolve_columns(found, options.column_map, raw.source)
    frame = _normalise(raw, cols, layout, interval)
    symbol = _symbol(
        frame,
        cols.symbol,
        given=options.symbol,
        from_preset=layout.symbol,
        path=path,
        source=raw.source,
    )
    frame = frame.with_columns(symbol=symbol)
    violations = validate.invalid_rows(frame.lazy(), interval).collect(engine="in-memory")
    if violations.height and not options.skip_invalid:
        raise InputError(validate.describe(violations, raw.source, raw.header_lines, unit=raw.unit))
    bars = _clean(frame, violations["_row"])
    rejected = violations.select(
        file=pl.lit(raw.source, pl.String),
        row=pl.col("_row") + raw.header_lines + 1,
        column="column",
        value="value",
        rule="rule",
        detail="detail",
    )
    dropped = frame.height - violations["_row"].n_unique() - bars.height
    if dropped:
        log.info("%s: dropped %d identical repeated row(s)", raw.source, dropped)
    return ParsedBars(interval, bars, rejected, raw.source, rows_read=frame.height)


def _check_tz(tz: str) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"Time zone {tz!r} is unknown: pass an IANA name such as America/New_York or UTC."
        ) from exc


def _layout(path: Path, options: ImportOptions) -> Layout:
    base = presets.get(options.preset).layout_for(path) if options.preset else Layout()
    separator = _SEPARATOR_NAMES[options.separator] if options.separator else base.separator
    return replace(
        base,
        separator=separator,
        has_header=base.has_header if options.has_header is None else options.has_header,
        tz=options.tz or base.tz,
        stamp=options.stamp or base.stamp,
        interval=options.interval or base.interval,
    )


def _interval(layout: Layout, source: str) -> Interval:
    if layout.interval is None:
        raise InputError(
            f"The bar interval of '{source}' is unknown: pass --interval (e.g. 1m, 5m, 1d) "
            "or a --preset that reads it from the file name."
        )
    return Interval.parse(layout.interval)


def _normalise(raw: RawTable, cols: Columns, layout: Layout, interval: Interval) -> pl.DataFrame:
    """Return ``_row``, ``ts`` and Float64 OHLCV plus the ``_raw_*`` text the rules report."""
    frame = parse_stamps(raw.frame, cols, layout, interval, raw.source)
    numbers = {}
    for target, source in cols.prices.items():
        column = pl.col(source)
        text = column.cast(pl.String).str.strip_chars()
        value = text.cast(pl.Float64, strict=False) if frame.schema[source] == pl.String else column
        if target != "volume" and layout.price_divisor != 1:
            value = _divide(text, layout.price_divisor)
        numbers[target] = value.cast(pl.Float64)
        numbers[f"_raw_{target}"] = text
    keep = [c for c in (cols.symbol,) if c is not None]
    return frame.select("_row", *keep, "ts", "_raw_ts", "_ts_problem", **numbers)


def _divide(text: pl.Expr, divisor: int) -> pl.Expr:
    """Divide exactly, as Python's ``int / int`` would: Polars turns ``x / 10000`` into
    ``x * 0.0001``, which makes 7495500 / 10000 come out as 749.5500000000001."""
    exact = pl.Decimal(38, 9)
    return text.cast(exact, strict=False).truediv(pl.lit(divisor, pl.Decimal(38, 0)))


def _symbol(
    frame: pl.DataFrame,
    column: str | None,
    *,
    given: str | None,
    from_preset: str | None,
    path: Path,
    source: str,
) -> pl.Expr:
    """Return the symbol: `given`, else the `column`, else `from_preset`, else the file name."""
    if given is not None:
        return pl.lit(validate_symbol(given.strip()), pl.String)
    if column is not None:
        values = frame[column].cast(pl.String).str.strip_chars()
        if values.null_count() or (values == "").any():
            raise InputError(
                f"Bar file '{source}' has rows with an empty {column!r} column: fill it in, "
                "or pass --symbol for a single-symbol file."
            )
        for value in values.unique().sort().to_list():
            validate_symbol(value)
        return pl.col(column).cast(pl.String).str.strip_chars()
    if from_preset is not None:
        return pl.lit(validate_symbol(from_preset), pl.String)
    return pl.lit(_symbol_from_name(path, source), pl.String)


def _symbol_from_name(path: Path, source: str) -> str:
    stem = path.stem.upper()
    try:
        validate_symbol(stem)
    except InputError as exc:
        raise InputError(
            f"Bar file '{source}' names no symbol and its file name {path.stem!r} is not a "
            "valid symbol: pass --symbol."
        ) from exc
    log.info("symbol %s taken from the file name", stem)
    return stem


def _clean(frame: pl.DataFrame, bad_rows: pl.Series) -> pl.DataFrame:
    return (
        frame.filter(~pl.col("_row").is_in(bad_rows.implode()))
        .select(schema.BARS.names())
        .unique(subset=["symbol", "ts"], keep="first", maintain_order=True)
        .sort("symbol", "ts")
    )


def bar_files(paths: Sequence[Path], options: ImportOptions) -> list[Path]:
    """Return the files to import: each path, with folders expanded recursively (sorted).

    Inside folders only bar files (``.csv .txt .tsv .zip .parquet .pq``) are taken,
    hidden files are skipped, and so are files a preset passes over (LEAN quotes).
    """
    skip = presets.get(options.preset).skip_in_folders if options.preset else None
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(
            f
            for f in path.rglob("*")
            if f.is_file() and f.suffix.lower() in BAR_SUFFIXES and not f.name.startswith(".")
        )
        kept = [f for f in found if not (skip and fnmatch.fnmatch(f.name.lower(), skip))]
        if len(kept) < len(found):
            log.info("%s: skipped %d file(s) matching %s", path, len(found) - len(kept), skip)
        if not kept:
            raise InputError(f"Folder '{path}' holds no bar files ({', '.join(BAR_SUFFIXES)}).")
        files.extend(kept)
    return files


def import_files(
    store: Store,
    paths: Sequence[Path],
    options: ImportOptions,
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Read and validate every file, then write them all to `store` in one write.

    Nothing is written when any file is refused or any write fails. Rows of two files
    that disagree on the same (symbol, ts) refuse the import; rows that disagree with
    stored bars raise `ConflictError` (an `InputError` naming the files) unless `replace`
    (then the files win). Bars outside the ``options.calendar``'s range, sessions or
    regular hours are imported with a WARNING log record (see `calendar_fit`).
    """
    files = bar_files(paths, options)
    if options.calendar is not None:
        calendar.timezone(options.calendar)  # an unknown MIC fails before any file is read
    parsed: list[ParsedBars] = []
    for done, path in enumerate(files, start=1):
        parsed.append(read_bars(path, options))
        if progress is not None:
            progress(done, len(files))
    if options.calendar is not None:
        _warn_off_calendar(parsed, options.calendar)
    by_interval: dict[Interval, list[ParsedBars]] = {}
    for item in parsed:
        by_interval.setdefault(item.interval, []).append(item)
    merged = {iv: _merge_files(items, iv) for iv, items in sorted(by_interval.items())}
    try:
        reports = store.write_many({str(iv): bars for iv, bars in merged.items()}, replace=replace)
    except ConflictError as exc:
        raise _in_files(exc, parsed) from exc
    written = sum(r.rows_added + r.rows_replaced for r in reports)
    rejected = pl.concat([p.rejected for p in parsed]) if parsed else schema.empty(REJECTED)
    return ImportReport(
        files=len(files),
        rows_read=sum(p.rows_read for p in parsed),
        rows_written=written,
        rows_skipped=rejected.select(pl.struct("file", "row").n_unique()).item(),
        rejected=rejected,
        symbols=MappingProxyType(
            {str(iv): tuple(sorted(b["symbol"].unique().to_list())) for iv, b in merged.items()}
        ),
    )


def _merge_files(items: list[ParsedBars], interval: Interval) -> pl.DataFrame:
    """Concatenate files of one interval; raise `InputError` where two disagree on a bar."""
    both = pl.concat([p.bars.with_columns(_file=pl.lit(p.source)) for p in items])
    distinct = both.unique(subset=schema.BARS.names(), keep="first", maintain_order=True)
    clashes = distinct.filter(pl.len().over("symbol", "ts") > 1)
    if clashes.height:
        shown = (
            clashes.group_by("symbol", "ts", maintain_order=True)
            .agg(pl.col("_file").unique(maintain_order=True).str.join("' and '"))
            .head(5)
            .select(
                pl.format(
                    "{} {} in '{}'",
                    "symbol",
                    pl.col("ts").dt.to_string("%Y-%m-%d %H:%M:%S UTC"),
                    "_file",
                )
            )
            .to_series()
            .to_list()
        )
        raise InputError(
            f"{clashes['symbol', 'ts'].n_unique()} {interval} bar(s) differ between the files "
            f"being imported: {'; '.join(shown)}. Import only one version of each bar."
        )
    return distinct.drop("_file").sort("symbol", "ts")


def _in_files(exc: ConflictError, parsed: list[ParsedBars]) -> ConflictError:
    """Return `exc` naming the files that hold its bars."""
    stamps = pl.Series(exc.stamps, dtype=schema.TS).implode()
    sources = [
        repr(p.source)
        for p in parsed
        if str(p.interval) == exc.interval
        and not p.bars.filter(pl.col("symbol") == exc.symbol, pl.col("ts").is_in(stamps)).is_empty()
    ]
    return ConflictError(
        f"Bar file {', '.join(sources)}: {exc}",
        interval=exc.interval,
        symbol=exc.symbol,
        stamps=exc.stamps,
    )


# ------------------------------------------------------------------ calendar
@dataclass(frozen=True)
class CalendarFit:
    """How many bars fall outside an exchange calendar's range, sessions or regular hours.

    ``closed_days`` counts bars on days without a session (weekends, holidays: the
    exchange's local date for intraday bars); ``off_hours`` intraday bars on session days
    but outside [open, close). Weekly bars are not compared.
    """

    bars: int
    outside_range: int = 0
    closed_days: int = 0
    off_hours: int = 0


def calendar_fit(bars: pl.DataFrame, interval: Interval, mic: str) -> CalendarFit:
    """Compare the ``ts`` of `bars` (`schema.BARS`) with the sessions of exchange `mic`.

    Cheap: one lookup of each bar among the sessions' opens, not a join with every slot.

    Examples
    --------
    >>> bars = pl.DataFrame({"ts": [dt.datetime(2024, 7, 6, 14, 30)]}).with_columns(
    ...     pl.col("ts").dt.replace_time_zone("UTC"))
    >>> calendar_fit(bars, Interval.parse("1m"), "XNYS").closed_days  # a Saturday
    1
    """
    ts = bars["ts"]
    if ts.is_empty() or interval.unit == "w":
        return CalendarFit(ts.len())
    earliest, latest = calendar.bounds(mic)
    day = ts.dt.date()
    inside = ts.filter(day.is_between(earliest, latest))
    if inside.is_empty():
        return CalendarFit(ts.len(), outside_range=ts.len())
    lo = max(earliest, inside.min().date() - dt.timedelta(days=1))  # type: ignore[union-attr]
    hi = min(latest, inside.max().date() + dt.timedelta(days=1))  # type: ignore[union-attr]
    sessions = calendar.sessions(mic, lo, hi)
    if interval.is_intraday:
        local = inside.dt.convert_time_zone(calendar.timezone(mic)).dt.date()
        open_day = local.is_in(sessions["session"].implode())
        at = sessions["open"].search_sorted(inside, side="right").cast(pl.Int64) - 1
        close = sessions["close"].gather(at.clip(0, max(sessions.height - 1, 0)))
        in_hours = (at >= 0) & (inside < close)
    else:  # a daily bar on a session day is in its hours
        open_day = in_hours = inside.dt.date().is_in(sessions["session"].implode())
    return CalendarFit(
        bars=ts.len(),
        outside_range=ts.len() - inside.len(),
        closed_days=int((~open_day).sum()),
        off_hours=int((open_day & ~in_hours).sum()),
    )


def _warn_off_calendar(parsed: list[ParsedBars], mic: str) -> None:
    """Log a WARNING per file whose bars fall outside `mic`'s range, sessions or hours."""
    for item in parsed:
        fit = calendar_fit(item.bars, item.interval, mic)
        if fit.outside_range:
            earliest, latest = calendar.bounds(mic)
            log.warning(
                "%s: %d of %d %s bar(s) lie outside the %s calendar (%s to %s); "
                "`pipeline data check` cannot check them. Check the file's stamps.",
                item.source,
                fit.outside_range,
                fit.bars,
                item.interval,
                mic,
                earliest,
                latest,
            )
        off = fit.closed_days + fit.off_hours
        if off:
            log.warning(
                "%s: %d of %d %s bar(s) (%.0f%%) fall outside %s regular hours (%d on days "
                "without a session). Extended-hours bars are fine; otherwise check --tz and "
                "--stamp.",
                item.source,
                off,
                fit.bars,
                item.interval,
                100 * off / fit.bars,
                mic,
                fit.closed_days,
            )
