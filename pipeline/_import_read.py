"""Read one bar file (CSV, a zip holding one CSV, or Parquet) into a raw frame.

CSV cells stay text (``infer_schema=False``); the caller casts them and reports
what does not parse. Every frame gets a 0-based ``_row`` column counting data rows
as they appear in the file (blank lines count, then are dropped), so that
``_row + header_lines + 1`` is the physical line of a CSV row.
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import InputError
from pipeline.presets import Layout

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
BAR_SUFFIXES = (*CSV_SUFFIXES, ".zip", *PARQUET_SUFFIXES)
_SEPARATORS = (",", ";", "\t", "|")
_BOM = b"\xef\xbb\xbf"
_NUMBER_START = re.compile(r"^[+-]?\.?\d")


@dataclass(frozen=True)
class RawTable:
    """A file's cells before any parsing, with where they came from."""

    frame: pl.DataFrame
    source: str
    header_lines: int
    unit: str  # "line" for CSV, "row" for Parquet


def read_raw(path: Path, layout: Layout) -> RawTable:
    """Return the cells of the bar file at `path`; raise `InputError` when it cannot be read."""
    if not path.is_file():
        raise InputError(f"Bar file '{path}' does not exist or is not a file: check the path.")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path)
    elif suffix == ".zip":
        source, data = _zip_member(path)
        table = _read_csv(data, source, layout)
    else:
        table = _read_csv(path.read_bytes(), str(path), layout)
    if table.frame.height == 0:
        raise InputError(
            f"Bar file '{table.source}' holds no bars (it is empty or has only a header). "
            "Check that it is the right file."
        )
    return table


def _zip_member(path: Path) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise InputError(
                    f"Zip file '{path}' should hold exactly one CSV file, found: {names}. "
                    "Unpack it and import the files one by one."
                )
            return f"{path}:{members[0].filename}", archive.read(members[0])
    except zipfile.BadZipFile as exc:
        raise InputError(f"File '{path}' is not a readable zip archive ({exc}).") from exc


def _read_parquet(path: Path) -> RawTable:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"Parquet file '{path}' cannot be read ({exc}).") from exc
    return RawTable(frame.with_row_index("_row"), str(path), header_lines=0, unit="row")


def _read_csv(data: bytes, source: str, layout: Layout) -> RawTable:
    data = data.removeprefix(_BOM)
    _check_utf8(data, source)
    first = data.split(b"\n", 1)[0].decode().rstrip("\r")
    separator = layout.separator or _sniff_separator(first)
    header = (
        layout.has_header if layout.has_header is not None else _looks_like_header(first, separator)
    )
    if not data.strip():
        return RawTable(pl.DataFrame(), source, int(header), "line")
    try:
        frame = pl.read_csv(data, separator=separator, has_header=header, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise InputError(_csv_problem(data, source, separator)) from exc
    if not header and layout.names:
        frame = _name_columns(frame, layout.names, source)
    frame = frame.rename({c: c.strip() for c in frame.columns}).with_row_index("_row")
    cells = [c for c in frame.columns if c != "_row"]
    blank = pl.all_horizontal(
        pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in cells
    )
    return RawTable(frame.filter(~blank), source, int(header), "line")


def _csv_problem(data: bytes, source: str, separator: str) -> str:
    """Return why Polars could not read `data` as CSV, in our words, naming the line.

    Polars' own text names options of its API and rarely the line, so the lines are
    looked at again: the first with an unclosed quote, then the first with more fields
    than the first line (quoted separators are not told apart: this only words the error).
    """
    lines = pl.Series("text", data.decode().split("\n")).str.strip_chars_end("\r").to_frame()
    counted = lines.with_row_index("line", offset=1).with_columns(
        fields=pl.col("text").str.count_matches(separator, literal=True) + 1,
        quotes=pl.col("text").str.count_matches('"', literal=True),
    )
    expected = counted["fields"][0]
    unclosed = counted.filter(pl.col("quotes") % 2 == 1).head(1)
    ragged = counted.filter(pl.col("fields") > expected, pl.col("text") != "").head(1)
    how = f"Bar file '{source}' cannot be read as CSV (separator {separator!r})"
    if unclosed.height:
        line = unclosed["line"][0]
        return f'{how}: line {line} opens a quote (") that it never closes. Close or remove it.'
    if ragged.height:
        line, fields = ragged["line"][0], ragged["fields"][0]
        return (
            f"{how}: line {line} has {fields} fields, the first line {expected}. Fix that "
            "line, or pass --separator if the file uses another separator."
        )
    return (
        f"{how}: a row does not split into the same fields as the first line. Check that "
        "every row has the same number of fields and closes its quotes, or pass --separator "
        "if the file uses another separator."
    )


def _check_utf8(data: bytes, source: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"Bar file '{source}' is not UTF-8 text: line {line} holds byte "
            f"0x{data[exc.start]:02X}. Save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`) "
            "and import it again."
        ) from exc


def _sniff_separator(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _looks_like_header(first_line: str, separator: str) -> bool:
    fields = [f.strip().strip('"').strip() for f in first_line.split(separator)]
    return not any(_NUMBER_START.match(f) for f in fields)


def _name_columns(frame: pl.DataFrame, names: tuple[str, ...], source: str) -> pl.DataFrame:
    if frame.width != len(names):
        raise InputError(
            f"Bar file '{source}' has {frame.width} fields per row, expected {len(names)} "
            f"({', '.join(names)}). Check that the file matches the preset."
        )
    return frame.rename(dict(zip(frame.columns, names, strict=True)))
