"""The bar store's files on disk: staging, atomic writes, clean-up, damaged partitions.

`pipeline.store` decides what to write; these helpers write it, remove what a failed
write left, and turn a damaged or unwritable file into a `StoreError` naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schema
from pipeline.errors import StoreError

#: Rows per Parquet row group: about ten sessions of 1m bars, so a read of a few weeks
#: decodes only the row groups whose ts statistics overlap it, not the whole year.
ROW_GROUP = 4_096
TMP_SUFFIX = ".tmp"
MAGIC = b"PAR1"
#: Beside a damaged partition that ``replace`` wrote over: the damaged file, kept.
DAMAGED_SUFFIX = ".damaged"
#: What reading a damaged Parquet file raises once it opened (pyarrow: OSError or ValueError).
READ_ERRORS = (OSError, ValueError, pa.ArrowException, pl.exceptions.PolarsError)
UNREADABLE = "it cannot be read as a Parquet file of bars"


def footer_stats(path: Path) -> tuple[dt.datetime | None, dt.datetime | None, int]:
    """Return the first and last ``ts`` and the row count of a bar file, from its footer.

    A row group without ``ts`` statistics (a file another writer made) is scanned instead.
    Raise `StoreError` naming the file when it is damaged.
    """
    check_footer(path)
    try:
        meta = pq.read_metadata(path)
        column = meta.schema.names.index("ts")
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        stats = [g.column(column).statistics for g in groups if g.num_rows]
        if not all(s is not None and s.has_min_max for s in stats):
            found = (
                pl.scan_parquet(path, schema=schema.STORED_BARS)
                .select(first=pl.col("ts").min(), last=pl.col("ts").max())
                .collect()
                .row(0)
            )
            return found[0], found[1], meta.num_rows
    except READ_ERRORS as exc:
        raise StoreError(damaged_message(path, UNREADABLE)) from exc
    if not stats:
        return None, None, meta.num_rows
    first = min(s.min for s in stats)
    last = max(s.max for s in stats)
    return first, last, meta.num_rows


class Damaged(StoreError):
    """A partition file that does not end as a Parquet file does."""


def check_footer(path: Path) -> None:
    """Raise `Damaged` when `path` does not end as a Parquet file does (a cut-off write).

    Reads 4 bytes, so a read of many files pays ~10 us each for a clear error instead of
    Polars' raw one at collect time. An unreadable file raises `StoreError`.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - len(MAGIC), 0))
            ending = handle.read()
    except OSError as exc:
        raise StoreError(
            f"Cannot read the partition file '{path}': {exc.strerror or exc}. Check that you "
            "can read the data root, or pass --root DIR."
        ) from exc
    if size < 3 * len(MAGIC) or ending != MAGIC:
        reason = f"it is cut off ({size} bytes, no Parquet footer)"
        raise Damaged(damaged_message(path, reason))


def read_bars(path: Path) -> pl.DataFrame:
    """Read a partition file; `Damaged` (naming it and the fix) when it cannot be read."""
    check_footer(path)
    try:
        return pl.read_parquet(path, schema=schema.STORED_BARS)
    except READ_ERRORS as exc:
        raise Damaged(damaged_message(path, UNREADABLE)) from exc


def damaged_message(path: Path, reason: str) -> str:
    iv, symbol, year = (p.name.partition("=")[2] for p in path.parents[2::-1])
    return (
        f"Partition file '{path}' ({iv} bars of {symbol} in {year}) is damaged: {reason}. "
        f"Delete it and import those bars again, or import them over it with `pipeline data "
        f"import FILE --interval {iv} --replace` (the damaged file is then kept as "
        f"'{path.name}{DAMAGED_SUFFIX}')."
    )


def replaced_damaged_message(path: Path) -> str:
    return (
        f"Partition file '{path}' is damaged: writing the new bars over it (--replace). It is "
        f"kept as '{path.name}{DAMAGED_SUFFIX}'; its bars that the new ones do not cover are "
        "no longer stored, so import them again."
    )


def keep_damaged(target: Path) -> tuple[Path, Path]:
    """Stage a hard link to the damaged `target` as its ``.damaged`` copy (no bytes copied)."""
    backup = target.with_name(target.name + DAMAGED_SUFFIX)
    tmp = temporary(backup)
    try:
        os.link(target, tmp)
    except OSError as exc:
        raise StoreError(os_message(exc, target)) from exc
    return tmp, backup


def temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")


def stage(tmp: Path, target: Path, frame: pl.DataFrame) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(tmp, row_group_size=ROW_GROUP, statistics=True)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError as exc:
        remove([tmp])
        raise StoreError(os_message(exc, target)) from exc


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a hidden path beside `path` to write; rename it to `path` when the block ends.

    A reader never sees half a file, and the hidden one is removed whatever happens
    (an `OSError` propagates for the caller to name the file).
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            tmp.unlink()  # NotADirectoryError: a file stands where a folder of `path` should


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(paths: Iterator[Path] | Sequence[Path]) -> None:
    for path in list(paths):
        # NotADirectoryError: a file stands where a folder of the path should be.
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()


def missing_folders(folder: Path) -> list[Path]:
    """Return `folder` and its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def prune(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents below `stop` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, gone, or not a folder: stop here
            return
        folder = folder.parent


def blocking_file(path: Path) -> Path | None:
    """Return the file that stands where a folder of `path` should be, if any."""
    for folder in (path, *path.parents):
        if folder.exists():
            return None if folder.is_dir() else folder
    return None


def os_message(exc: OSError, where: Path) -> str:
    if exc.errno == errno.ENOSPC:
        what = "the disk is full"
        fix = "free some space and import again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "permission denied"
        fix = "check that you can write to the data root, or pass --root DIR"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR) and (blocker := blocking_file(where)):
        what = f"'{blocker}' is a file where a folder is needed"
        fix = "move that file away, or pass --root DIR to use another store"
    else:
        what = exc.strerror or str(exc)
        fix = "check the data root and import again"
    return f"Cannot write to the store at '{where}': {what}. Nothing was changed; {fix}."
