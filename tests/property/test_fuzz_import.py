"""Hostile bar files, fuzzed (issue 7, item 2): import succeeds with valid bars or says why.

Every generated CSV or Parquet file, with random but plausible `ImportOptions`, is
imported into a copy of a small seeded store. The import either succeeds and the
store then holds only valid bars, or raises a `PipelineError` with a non-empty
one-line message and leaves the store byte-for-byte unchanged. Any other exception
fails the test. The cases tried are counted and printed by the last test
(``pytest tests/property/test_fuzz_import.py -s``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import PipelineError
from pipeline.importing import ImportOptions, import_files
from pipeline.store import Store
from pipeline.validate import invalid_rows

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CASES = {"tried": 0, "imported": 0, "refused": 0}
# File names holding a line break are left out of FILE_NAMES: library messages quote the
# path as given; the CLI's error boundary folds any message onto one line.

T0 = dt.datetime(2024, 3, 8, 14, 30, tzinfo=dt.UTC)

# --------------------------------------------------------------------- cells
NUMBER_TEXT = st.one_of(
    st.floats(0.01, 1000).map(lambda x: f"{x:.2f}"),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e308", "1e309", "-1e308", "-5", "0", ""]),
    st.sampled_from(["9" * 40, "-" + "9" * 25, "1,5", "12abc", "0x1F", " 101.5 ", "1e-320"]),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.text(max_size=6),
)


def _stamp(minute: int, form: str) -> str:
    t = T0 + dt.timedelta(minutes=minute)
    local = t.replace(tzinfo=None)
    return {
        "iso_z": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "iso_naive": local.strftime("%Y-%m-%d %H:%M:%S"),
        "iso_offset": t.isoformat(),
        "us_slash": local.strftime("%m/%d/%Y %H:%M"),
        "compact": local.strftime("%Y%m%d %H%M%S"),
        "date": local.strftime("%Y-%m-%d"),
        "epoch_s": str(int(t.timestamp())),
        "epoch_ms": str(int(t.timestamp() * 1000)),
        "far": "9999-12-31 23:59:59",
        "ancient": "0001-01-01 00:00:00",
        "feb30": "2024-02-30 10:00:00",
        "garbage": "yesterday",
        "empty": "",
    }[form]


STAMP_FORMS = ["iso_z", "iso_naive", "iso_offset", "us_slash", "compact", "date", "epoch_s"]
STAMP_FORMS += ["epoch_ms", "far", "ancient", "feb30", "garbage", "empty"]

SYMBOLS = st.one_of(
    st.sampled_from(["ACME", "BRK.B", "^SPX", "../x", "a/b", "..", ".", "C:\\x", "", " ", "é"]),
    st.sampled_from(["x" * 40, "ACME\nBOLT", "nul\x00", "-", "con", "ACME "]),
    st.text(max_size=10),
)
KNOWN_COLUMNS = ["ts", "timestamp", "date", "time", "symbol", "ticker", "open", "o", "high"]
KNOWN_COLUMNS += ["low", "close", "c", "volume", "vol", "Close ", "OPEN"]
COLUMN_NAMES = st.one_of(st.sampled_from(KNOWN_COLUMNS), st.text(max_size=8))


def rarely(draw: st.DrawFn, odds: int = 6) -> bool:
    """Return True about once in `odds` draws: one hostile feature at a time, mostly."""
    return draw(st.integers(0, odds - 1)) == 0


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, str]]:
    """Mostly plausible bars, then duplicated, shuffled and spiked with hostile cells."""
    form = draw(st.sampled_from(STAMP_FORMS[:3])) if not rarely(draw) else None
    symbol = "ACME" if not rarely(draw) else None
    out = []
    for minute in draw(st.lists(st.integers(-3, 30), min_size=1, max_size=8)):
        low, a, b, high = sorted(draw(st.lists(st.floats(1, 500), min_size=4, max_size=4)))
        row = {
            "ts": _stamp(minute, form or draw(st.sampled_from(STAMP_FORMS))),
            "symbol": symbol or draw(st.sampled_from(["ACME", "BOLT"]) | SYMBOLS),
            "open": f"{a:.4f}",
            "high": f"{high:.4f}",
            "low": f"{low:.4f}",
            "close": f"{b:.4f}",
            "volume": str(draw(st.integers(0, 10**6))),
        }
        if rarely(draw, 10):
            row[draw(st.sampled_from(["open", "high", "low", "close", "volume"]))] = draw(
                NUMBER_TEXT
            )
        out.append(row)
    if rarely(draw, 4):
        out += draw(st.lists(st.sampled_from(out), max_size=3))
    return draw(st.permutations(out)) if rarely(draw, 3) else out


@st.composite
def header(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(file column name, field it holds) pairs: standard, renamed, dropped or duplicated."""
    fields = ["ts", "symbol", "open", "high", "low", "close", "volume"]
    kept = [f for f in fields if not rarely(draw, 40)]
    pairs = [(draw(COLUMN_NAMES) if rarely(draw, 30) else f, f) for f in kept]
    if rarely(draw, 5):
        pairs.append((draw(COLUMN_NAMES), draw(st.sampled_from(fields))))
    return draw(st.permutations(pairs)) if rarely(draw, 3) else pairs


def _quote(cell: str, sep: str) -> str:
    if any(ch in cell for ch in (sep, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["table"] * 12 + ["empty", "header_only", "binary", "latin1"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"\r\n\r\n", b"\xef\xbb\xbf", b"   "]))
    if kind == "binary":
        return draw(st.binary(max_size=64))
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    cols = draw(header())
    lines = [] if rarely(draw, 10) else [sep.join(_quote(name, sep) for name, _ in cols)]
    if kind != "header_only":
        for row in draw(rows()):
            cells = [_quote(row[field], sep) for _, field in cols]
            if rarely(draw, 30):
                cells = cells[: draw(st.integers(0, len(cells)))]
            lines.append(sep.join(cells))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))
    if kind == "latin1":
        return text.encode("utf-8") + "Zürich,é".encode("latin-1")
    return text.encode("utf-8", errors="surrogatepass")


PARQUET_DTYPES = [
    "string",
    "float",
    "int",
    "datetime_utc",
    "datetime_naive",
    "date",
    "bool",
    "null",
]


def _typed(field: str, values: list[str], how: str, draw: st.DrawFn) -> pl.Series:
    if how == "string" or field == "symbol":
        return pl.Series(values, dtype=pl.String)
    if how == "null":
        return pl.Series([None] * len(values), dtype=pl.Null)
    if how == "bool":
        return pl.Series([draw(st.booleans()) for _ in values], dtype=pl.Boolean)
    if field == "ts":
        minutes = [draw(st.integers(-3, 30)) for _ in values]
        stamps = [T0 + dt.timedelta(minutes=m) for m in minutes]
        if how == "date":
            return pl.Series([s.date() for s in stamps], dtype=pl.Date)
        if how == "datetime_naive":
            return pl.Series([s.replace(tzinfo=None) for s in stamps], dtype=pl.Datetime("us"))
        if how == "int":
            return pl.Series([int(s.timestamp()) for s in stamps], dtype=pl.Int64)
        return pl.Series(stamps, dtype=pl.Datetime("ns", "UTC"))
    if how == "int":
        ints = st.integers(-(2**63), 2**63 - 1) | st.integers(0, 1000)
        return pl.Series([draw(ints) for _ in values], dtype=pl.Int64)
    floats = [_as_float(v) for v in values]
    return pl.Series(floats, dtype=pl.Float64)


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@st.composite
def parquet_frame(draw: st.DrawFn) -> pl.DataFrame | bytes:
    if rarely(draw, 10):
        return draw(st.binary(max_size=64)) + draw(st.sampled_from([b"", b"PAR1"]))
    cols = draw(header())
    body = draw(rows())
    series = {}
    for name, field in cols:
        how = draw(st.sampled_from(PARQUET_DTYPES)) if rarely(draw, 4) else "string"
        if name in series:
            continue
        series[name] = _typed(field, [r[field] for r in body], how, draw).alias(name)
    return pl.DataFrame(list(series.values())) if series else pl.DataFrame()


# ------------------------------------------------------------------- options
TZS = st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo", "Mars/Olympus", "", "+05:00"])
TZS |= st.sampled_from(["../../etc/passwd", "EST5EDT", "utc", "America/New_York\n"])


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    """Plausible options, each one wrong now and then."""
    columns = st.dictionaries(
        st.sampled_from(["ts", "open", "close", "volume", "symbol", "bogus"]),
        COLUMN_NAMES | st.sampled_from(["1", "2", "9"]),
        min_size=1,
        max_size=2,
    )
    good_tz = st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"])
    return {
        "interval": draw(st.sampled_from(["5m", "1d", "1h", "7x", "", None]))
        if rarely(draw)
        else "1m",
        "symbol": draw(SYMBOLS) if rarely(draw, 8) else None,
        "tz": draw(st.none() | TZS) if rarely(draw) else draw(good_tz),
        "stamp": draw(st.sampled_from([None, "middle"])) if rarely(draw, 8) else "open",
        "columns": draw(columns) if rarely(draw, 8) else {},
        "skip_invalid": draw(st.booleans()),
        "separator": draw(st.sampled_from([",", ";", "tab", "|", ":"])) if rarely(draw) else None,
        "has_header": draw(st.sampled_from([True, False])) if rarely(draw) else None,
        "_replace": draw(st.booleans()),
    }


FILE_NAMES = st.sampled_from(["ACME", "ACME", "ACME", "bolt", "..", "a b", "x..y", "é", "^SPX"])
FILE_NAMES |= st.text(st.characters(exclude_characters="/\x00\n\r", codec="utf-8"), max_size=12)


# --------------------------------------------------------------------- store
@pytest.fixture(scope="module")
def seeded_store() -> Iterator[Path]:
    """A store holding 1m and 1d bars of ACME around the stamps the fuzz uses."""
    stamps = [T0 + dt.timedelta(minutes=m) for m in range(0, 20, 2)]
    bars = pl.DataFrame(
        {
            "symbol": "ACME",
            "ts": pl.Series(stamps, dtype=pl.Datetime("us", "UTC")),
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.5,
            "volume": 1000.0,
        }
    )
    daily = bars.head(1).with_columns(pl.col("ts").dt.truncate("1d"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        Store(root).write_many({"1m": bars, "1d": daily})
        yield root


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_store_valid(store: Store) -> None:
    for interval in store.intervals():
        stored = store.read(interval).collect()
        bad = invalid_rows(stored.with_row_index("_row").lazy(), interval).collect()
        assert bad.is_empty(), f"{interval}: stored invalid bars\n{bad}"
        for column in ("open", "high", "low", "close", "volume"):
            assert all(math.isfinite(v) for v in stored[column].to_list())
        assert stored.select(pl.struct("symbol", "ts").is_unique().all()).item()


def check_import(seeded: Path, write: Any, raw_options: dict[str, Any]) -> None:
    """Import one generated file into a copy of `seeded` and check the outcome."""
    CASES["tried"] += 1
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        shutil.copytree(seeded, root)
        path = write(Path(folder) / "in")
        before = snapshot(root)
        replace = bool(raw_options.pop("_replace", False))
        message = None
        try:
            report = import_files(
                Store(root), [path], ImportOptions(**raw_options), replace=replace
            )
        except PipelineError as exc:
            message = str(exc)
        if message is not None:
            CASES["refused"] += 1
            assert message.strip(), "empty error message"
            assert "\n" not in message, f"multi-line: {message!r}"
            assert "\r" not in message, f"multi-line: {message!r}"
            assert snapshot(root) == before, "a refused import changed the store"
            return
        CASES["imported"] += 1
        assert report.files == 1
        assert not list(root.rglob("*.tmp")), "temporary files left behind"
        assert_store_valid(Store(root))


def _writer(name: str, suffix: str, content: pl.DataFrame | bytes) -> Any:
    def write(folder: Path) -> Path:
        folder.mkdir()
        path = folder / f"{name}{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.write_parquet(path)
        return path

    return write


# --------------------------------------------------------------------- tests
@FUZZ
@given(
    content=csv_bytes(),
    file=st.tuples(FILE_NAMES, st.sampled_from([".csv", ".csv", ".txt", ".tsv"])),
    raw_options=options(),
)
def test_fuzzed_csv_imports_cleanly_or_raises_a_pipeline_error(
    seeded_store: Path,
    content: bytes,
    file: tuple[str, str],
    raw_options: dict[str, Any],
) -> None:
    check_import(seeded_store, _writer(*file, content), raw_options)


@FUZZ
@given(
    content=parquet_frame(),
    file=st.tuples(FILE_NAMES, st.sampled_from([".parquet", ".pq"])),
    raw_options=options(),
)
def test_fuzzed_parquet_imports_cleanly_or_raises_a_pipeline_error(
    seeded_store: Path,
    content: pl.DataFrame | bytes,
    file: tuple[str, str],
    raw_options: dict[str, Any],
) -> None:
    check_import(seeded_store, _writer(*file, content), raw_options)


def test_zz_fuzz_case_count() -> None:
    """Runs last in this module: report how many hostile files were tried."""
    print(
        f"\nfuzzed import cases: {CASES['tried']} "
        f"(imported {CASES['imported']}, refused with a PipelineError {CASES['refused']})"
    )
    assert CASES["tried"] > 200
