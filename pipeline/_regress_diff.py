"""Regression diffs: how a rerun differs from its goldens, and how the difference reads.

`diff_table` matches the rows of two tables by key and tells apart rows that appeared,
vanished or changed; `diff_summary` compares summary figures. A `CaseDiff` gathers a
case's differences and renders them as text fitted to a width (`CaseDiff.describe`),
JSON-ready data (`CaseDiff.to_dict`) or one row of counts (`CaseDiff.to_row`).

Floats agree within `REL_TOL` relative; integers, strings, booleans and timestamps must
be equal; `TIMING_FIELDS` are never compared. `pipeline.regress` re-exports the public
names.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "ABSENT", "CASES_DIR", "REL_TOL", "TIMING_FIELDS", "WIDTH", "CaseDiff", "Change", "RowChange",
    "TableDiff", "diff_summary", "diff_table", "update_command",
]  # fmt: skip

#: Summary figures that measure time: left out of the goldens and never compared.
TIMING_FIELDS = frozenset({"seconds", "seconds_per_phase"})
#: Relative tolerance of float comparisons.
REL_TOL = 1e-9
#: The width `CaseDiff.describe` fits its lines to unless told otherwise.
WIDTH = 80
#: Where ``pipeline regress`` looks for cases unless given ``--cases``.
CASES_DIR = Path("tests/regression/cases")
_NTH = "occurrence"  # numbers rows that share a key, in table order
_GLUE = "\xa0"  # joins the words of an item: textwrap breaks lines only at plain spaces


# --- the diff types -------------------------------------------------------------------


class _Absent:
    """The value of a summary figure one side does not have (not the same as a null)."""

    def __repr__(self) -> str:
        return "ABSENT"


#: `Change.old` / `Change.new` of a summary figure missing from the golden / the rerun.
ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    """One value that differs: `name` (a column or a summary figure), its `old` and `new`.

    A summary figure only one side has is `ABSENT` on the other (shown as ``absent``;
    in JSON a null, with ``"absent": "old"`` or ``"new"``).
    """

    name: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        """``new - old`` when both are numbers and it is finite, else None."""
        if _is_number(self.old) and _is_number(self.new):
            delta = float(self.new - self.old)
            return delta if math.isfinite(delta) else None
        return None


@dataclass(frozen=True)
class RowChange:
    """A row found in the goldens and the rerun under the same `key`, with its changes."""

    key: Mapping[str, Any]
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class TableDiff:
    """How a rerun's table differs from its golden, rows matched by `key`.

    `appeared` rows are only in the rerun, `vanished` rows only in the golden; rows that
    share a key are matched in table order (`occurrence` numbers them). `columns` notes
    columns that appeared, vanished or changed type (those are not compared).
    """

    table: str
    key: tuple[str, ...]
    appeared: tuple[Mapping[str, Any], ...] = ()
    vanished: tuple[Mapping[str, Any], ...] = ()
    changed: tuple[RowChange, ...] = ()
    columns: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the tables agree."""
        return not (self.appeared or self.vanished or self.changed or self.columns)


@dataclass(frozen=True)
class CaseDiff:
    """A case's result: golden files missing, summary figures changed, table differences."""

    case: str
    path: Path
    missing: tuple[str, ...] = ()
    summary: tuple[Change, ...] = ()
    tables: tuple[TableDiff, ...] = ()
    #: Why the case could not be rerun or compared (its one-line error), else "".
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the rerun equals the goldens."""
        return not (self.error or self.missing or self.summary or self.tables)

    def to_dict(self) -> dict[str, Any]:
        """Return the diff as JSON-ready data (timestamps as ISO strings)."""
        return {
            "case": self.case,
            "path": str(self.path),
            "ok": self.ok,
            "error": self.error or None,
            "missing": list(self.missing),
            "summary": [_change_dict(c) for c in self.summary],
            "tables": {t.table: _table_dict(t) for t in self.tables},
        }

    def to_row(self) -> dict[str, Any]:
        """Return the diff as one row of counts: the ``--format csv`` of ``pipeline regress``.

        ``figures_changed`` counts summary figures, ``tables_changed`` the golden tables
        that differ (trades included) and ``goldens_missing`` the golden files not found;
        ``error`` says why a case could not be checked (empty when it was).
        """
        trades = next((t for t in self.tables if t.table == "trades"), TableDiff("trades", ()))
        return {
            "case": self.case,
            "ok": self.ok,
            "trades_appeared": len(trades.appeared),
            "trades_vanished": len(trades.vanished),
            "trades_changed": len(trades.changed),
            "figures_changed": len(self.summary),
            "tables_changed": len(self.tables),
            "goldens_missing": len(self.missing),
            "error": self.error,
        }

    def describe(
        self,
        limit: int = 20,
        width: int = WIDTH,
        *,
        update: bool = False,
        cases: Path | None = None,
    ) -> str:
        """Return the diff as text: ``ok  name``, or what changed (`limit` rows per table).

        Lines are at most `width` characters: long ones break between items and go on
        indented. With `update` the text tells what rewriting the goldens did: ``same``,
        or ``updated`` and what changed. `cases` is the ``--cases`` folder the case was
        read from, for the command that writes missing goldens (`update_command`).

        Examples
        --------
        >>> print(CaseDiff("demo", Path("cases/demo")).describe(update=True))
        same  demo
        """
        if self.ok:
            return "\n".join(_wrap(f"{'same' if update else 'ok':<4}  {self.case}", (), width))
        if self.error:  # one line, unwrapped: it may hold a command to paste
            return "\n".join([*_title(f"ERROR {self.case}", self.path, width), f"  {self.error}"])
        head = _title(f"updated {self.case}" if update else f"FAIL  {self.case}", self.path, width)
        if not update:
            return "\n".join([*head, *self.lines(limit, width, cases=cases)])
        head += _wrap("  wrote ", self.missing, width) if self.missing else []
        return "\n".join([*head, *replace(self, missing=()).lines(limit, width)])

    def lines(self, limit: int = 20, width: int = WIDTH, *, cases: Path | None = None) -> list[str]:
        """Return the differences as indented lines of at most `width` characters."""
        lines = []
        if self.missing:
            lines += _wrap("  no golden ", self.missing, width)
            command = update_command(self.case, cases)
            lines += _wrap("  check the run, then write them with: ", [command], width)
        if self.summary:
            lines.append(f"  summary: {len(self.summary)} figures changed")
            pad = max(len(c.name) for c in self.summary)
            for change in self.summary:
                lines += _wrap(f"    {change.name:<{pad}}  {_arrow(change)}", (), width)
        for table in self.tables:
            lines += _describe_table(table, limit, width)
        return lines


def update_command(case: str, cases: Path | None = None) -> str:
    """Return the command that rewrites the goldens of `case`, quoted for the shell.

    It names ``--cases`` when `cases`, the folder holding the case, is given and is not
    `CASES_DIR` (the default of ``pipeline regress``).

    Examples
    --------
    >>> update_command("my case", Path("elsewhere"))
    "pipeline regress 'my case' --update --cases elsewhere"
    """
    where = [] if cases is None or cases == CASES_DIR else ["--cases", str(cases)]
    return shlex.join(["pipeline", "regress", case, "--update", *where])


# --- comparing ------------------------------------------------------------------------


def diff_summary(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    """Return the summary figures that differ (timings left out), by name."""
    names = sorted((set(old) | set(new)) - TIMING_FIELDS)
    return tuple(
        Change(n, old.get(n, ABSENT), new.get(n, ABSENT))
        for n in names
        if (n in old) != (n in new) or not _same(old[n], new[n])
    )


def diff_table(name: str, old: pl.DataFrame, new: pl.DataFrame, key: Sequence[str]) -> TableDiff:
    """Match the rows of `old` and `new` by `key` and return what appeared, vanished, changed."""
    key = tuple(key)
    notes = _column_notes(old.schema, new.schema)
    if any(k not in old.schema or old.schema[k] != new.schema.get(k) for k in key):
        notes.append(f"key columns {', '.join(key)} differ: rows cannot be matched")
        return TableDiff(name, key, tuple(new.to_dicts()), tuple(old.to_dicts()), (), tuple(notes))
    pairs = _numbered(old, key, "_old").join(
        _numbered(new, key, "_new"),
        on=[*key, _NTH],
        how="full",
        coalesce=True,
        maintain_order="left_right",
    )
    vanished = old[pairs.filter(pl.col("_new").is_null()).get_column("_old")]
    appeared = new[pairs.filter(pl.col("_old").is_null()).get_column("_new")]
    matched = pairs.drop_nulls(["_old", "_new"])
    shared = [c for c in old.columns if c not in key and old.schema[c] == new.schema.get(c)]
    changed = _changed_rows(matched, old, new, key, shared)
    return TableDiff(
        name, key, tuple(appeared.to_dicts()), tuple(vanished.to_dicts()), changed, tuple(notes)
    )


def _numbered(frame: pl.DataFrame, key: tuple[str, ...], index: str) -> pl.DataFrame:
    """Return the key columns, the row number `index` and the occurrence of each key."""
    return (
        frame.select(key)
        .with_row_index(index)
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over(key).alias(_NTH))
    )


def _changed_rows(
    matched: pl.DataFrame,
    old: pl.DataFrame,
    new: pl.DataFrame,
    key: tuple[str, ...],
    shared: list[str],
) -> tuple[RowChange, ...]:
    """Return the matched rows where a shared column differs (floats within `REL_TOL`)."""
    if not shared or matched.is_empty():
        return ()
    a = old[matched.get_column("_old")].select(shared)
    b = new[matched.get_column("_new")].select(shared)
    both = pl.concat([a, b.rename(lambda c: f"{c}\x00new")], how="horizontal")
    flags = both.select(_differs(c, old.schema[c]) for c in shared)
    rows = flags.select(pl.any_horizontal(pl.all())).to_series().arg_true()
    keyed = matched.select(*key, _NTH)
    out = []
    for i in rows.to_list():  # only the rows that differ
        keys = dict(zip(keyed.columns, keyed.row(i), strict=True))
        if not keys[_NTH]:
            del keys[_NTH]
        changes = tuple(Change(c, a[c][i], b[c][i]) for c in shared if flags[c][i])
        out.append(RowChange(keys, changes))
    return tuple(out)


def _differs(column: str, dtype: pl.DataType) -> pl.Expr:
    """Return whether the old and new values of `column` differ: floats within `REL_TOL`."""
    a, b = pl.col(column), pl.col(f"{column}\x00new")
    if not dtype.is_float():
        return a.ne_missing(b).alias(column)
    bound = REL_TOL * pl.max_horizontal(a.abs(), b.abs())
    # an infinity is close to nothing but itself (|inf - x| <= 1e-9 * inf would hold)
    close = a.is_finite() & b.is_finite() & ((a - b).abs() <= bound)
    same = ((a == b) | close | (a.is_nan() & b.is_nan())).fill_null(False)
    return (~same & ~(a.is_null() & b.is_null())).alias(column)


def _column_notes(old: pl.Schema, new: pl.Schema) -> list[str]:
    notes = [f"column {c!r} vanished" for c in old if c not in new]
    notes += [f"column {c!r} appeared" for c in new if c not in old]
    notes += [
        f"column {c!r} was {old[c]}, is {new[c]}" for c in old if c in new and old[c] != new[c]
    ]
    return notes


def _same(old: Any, new: Any) -> bool:
    if _is_number(old) and _is_number(new):
        if isinstance(old, int) and isinstance(new, int):
            return bool(old == new)
        if math.isnan(old) and math.isnan(new):
            return True
        return math.isclose(old, new, rel_tol=REL_TOL, abs_tol=0.0)
    return type(old) is type(new) and bool(old == new)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- text -----------------------------------------------------------------------------


def _wrap(head: str, items: Sequence[str], width: int) -> list[str]:
    """Return `head` followed by `items` (joined by ", ") in lines of at most `width`.

    A line breaks at a space of `head` or between items; an item breaks at its own
    spaces only when it alone is wider than a line. Lines after the first are indented
    four more columns.
    """
    indent = " " * (len(head) - len(head.lstrip()) + 4)
    fits = width - len(indent)
    glued = (item.replace(" ", _GLUE) if len(item) <= fits else item for item in items)
    text = head + ", ".join(glued)
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)
    return [line.replace(_GLUE, " ").rstrip() for line in lines]


def _title(name: str, path: Path, width: int) -> list[str]:
    """Return ``name (path)``, the path on lines of its own when the whole is too wide."""
    line = f"{name} ({path})"
    if len(line) <= width:
        return [line]
    indent = " " * 4
    rest = textwrap.wrap(
        f"({path})", width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )
    return [name, *rest]


def _describe_table(table: TableDiff, limit: int, width: int) -> list[str]:
    counts = [
        f"{len(rows)} {label}"
        for rows, label in (
            (table.appeared, "appeared"),
            (table.vanished, "vanished"),
            (table.changed, "changed"),
        )
        if rows
    ]
    head = ", ".join(counts + list(table.columns))
    lines = _wrap(f"  {table.table}: {head} (rows matched by {', '.join(table.key)})", (), width)
    items = [_row_lines("+", r, table.key, width) for r in table.appeared]
    items += [_row_lines("-", r, table.key, width) for r in table.vanished]
    items += [
        _wrap(f"    ~ {_key_text(r.key)}: ", [f"{c.name} {_arrow(c)}" for c in r.changes], width)
        for r in table.changed
    ]
    lines += [line for item in items[:limit] for line in item]
    if len(items) > limit:
        lines.append(f"    ... and {len(items) - limit} more (--format json shows all)")
    return lines


def _row_lines(mark: str, row: Mapping[str, Any], key: tuple[str, ...], width: int) -> list[str]:
    rest = [f"{k}={_show(v)}" for k, v in row.items() if k not in key]
    return _wrap(f"    {mark} {_key_text({k: row[k] for k in key})}: ", rest, width)


def _key_text(key: Mapping[str, Any]) -> str:
    parts = (
        f"#{v + 1}" if k == _NTH else v if isinstance(v, str) else _show(v) for k, v in key.items()
    )
    return " ".join(parts)


def _arrow(change: Change) -> str:
    text = f"{_show(change.old)} -> {_show(change.new)}"
    delta = change.delta
    if delta is not None:
        text += f" ({delta:+.6g})"
    elif isinstance(change.old, dt.datetime) and isinstance(change.new, dt.datetime):
        moved = change.new - change.old
        text += f" ({'-' if moved < dt.timedelta(0) else '+'}{abs(moved)})"
    return text


def _show(value: Any) -> str:
    if value is ABSENT:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dt.datetime):
        fraction = ".%f" if value.microsecond else ""
        return value.strftime(f"%Y-%m-%d %H:%M:%S{fraction}{'Z' if value.tzinfo else ''}")
    if isinstance(value, str):
        return repr(value)
    return str(value)


# --- JSON -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Return `value` as JSON-ready data."""
    if value is ABSENT:
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _change_dict(change: Change) -> dict[str, Any]:
    found = {
        "name": change.name,
        "old": _plain(change.old),
        "new": _plain(change.new),
        "delta": change.delta,
    }
    absent = [side for side in ("old", "new") if getattr(change, side) is ABSENT]
    return found | ({"absent": absent[0]} if absent else {})


def _table_dict(table: TableDiff) -> dict[str, Any]:
    return {
        "key": list(table.key),
        "columns": list(table.columns),
        "appeared": [_plain(r) for r in table.appeared],
        "vanished": [_plain(r) for r in table.vanished],
        "changed": [
            {"key": _plain(r.key), "changes": [_change_dict(c) for c in r.changes]}
            for r in table.changed
        ],
    }
