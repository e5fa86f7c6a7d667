"""Private machinery of `pipeline.config`: reading files, checking values, collecting problems.

Every check records a `Problem` and carries on with a default, so one pass reports
everything wrong with a file; `pipeline.config.parse_config` raises once at the end.
A getter never checks a default, and a key that is absent is reported (if required)
only once, by `Table` itself.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import reprlib
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.errors import ConfigError, PipelineError, closest
from pipeline.intervals import Interval
from pipeline.store import validate_symbol

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOML_AT = re.compile(r"^(.*?)\s*\(at (line \d+), (column \d+)\)$")
_INT64 = range(-(2**63), 2**63)  # TOML's integers
_MAX_DEPTH = 32  # lists and tables inside each other in strategy, broker and scanner params
_KINDS: tuple[tuple[type | Any, str], ...] = (
    (int, "integer"), (float, "float"), (str, "string"), (dt.datetime, "datetime"),
    (dt.date, "date"), (dt.time, "time"), (Mapping, "table"), (list | tuple, "list"),
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (`path`), what, and how to fix it."""

    path: str
    problem: str
    fix: str = ""

    def render(self, source: str) -> str:
        """Return the problem as ``config 'x.toml': <path> <problem>; <fix>``, on one line.

        Keys come from the file as written: line breaks and other unprintable characters
        in the path are shown escaped (``a\\nb``).
        """
        where = f"{printable(self.path)} " if self.path else ""
        fix = f"; {self.fix}" if self.fix else ""
        return f"config {source!r}: {where}{self.problem}{fix}"


class Table:
    """A mapping at `path` (e.g. ``indicators[2]``, ``""`` for the top) under validation.

    Keys not in `keys` (named with the closest valid key) and `required` keys that are
    absent (with an example value) are reported on creation; getters report the rest.
    """

    def __init__(
        self,
        data: Mapping[Any, Any],
        path: str,
        problems: list[Problem],
        keys: Sequence[str],
        required: Mapping[str, str] | None = None,
    ) -> None:
        self.data, self.path, self.problems = data, path, problems
        for key in data:
            if not isinstance(key, str):
                self.fail("", f"has a key that is not a name: {describe(key)}", "remove it")
            elif key not in keys:
                self.fail(key, "is not a valid key", closest(key, keys))
        for key, example in (required or {}).items():
            if key not in data:
                self.fail(key, "is missing", f"add {key} = {example}")

    def at(self, key: str | int) -> str:
        """Return the path of `key` in this table."""
        return join(self.path, key)

    def fail(self, key: str | int, problem: str, fix: str = "") -> None:
        """Record a problem at `key` of this table (``""``: the table itself)."""
        self.problems.append(Problem(self.at(key) if key != "" else self.path, problem, fix))

    def string(
        self, key: str, default: str = "", choices: Sequence[str] = (), blank_ok: bool = True
    ) -> str:
        """Return a string (one of `choices` when given); ``""`` when invalid."""
        if key not in self.data:
            return default
        text = check_string(self.data[key], self.at(key), self.problems, choices)
        if not text.strip() and not blank_ok and isinstance(self.data[key], str):
            self.fail(key, "must not be empty", "write a value")
            return ""
        return text

    def whole(self, key: str, default: int = 1) -> int:
        """Return a whole number >= 1, else `default`."""
        value = self.data.get(key, default)
        if is_whole(value) and value >= 1:
            return int(value)
        self.fail(key, f"must be a whole number >= 1, found {describe(value)}")
        return default

    def positive(self, key: str, default: float = 1.0) -> float:
        """Return a finite number > 0 as a float, else `default`."""
        value = self.data.get(key, default)
        if is_number(value) and value > 0:
            return float(value)
        self.fail(key, f"must be a number > 0, found {describe(value)}")
        return default

    def number(self, key: str, default: float, low: float, high: float) -> float:
        """Return a number in [low, high] as a float, else `default`."""
        value = self.data.get(key, default)
        if is_number(value) and low <= value <= high:
            return float(value)
        self.fail(key, f"must be a number from {low:g} to {high:g}, found {describe(value)}")
        return default

    def flag(self, key: str, default: bool) -> bool:
        """Return true or false, else `default`."""
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        self.fail(key, f"must be true or false, found {describe(value)}")
        return default

    def date(self, key: str) -> dt.date | None:
        """Return a date, or None when it is absent or invalid."""
        return check_date(self.data[key], self.at(key), self.problems) if key in self.data else None

    def interval(self, key: str) -> str:
        """Return an interval normalised by `Interval` (``60m`` -> ``1h``); ``""`` if invalid."""
        if key not in self.data:
            return ""
        return check_interval(self.data[key], self.at(key), self.problems) or ""

    def label(self) -> str:
        """Return the ``label`` key: empty, or a name of letters, digits and ``_``."""
        text = self.string("label")
        if text and not _LABEL.match(text):
            self.fail("label", f"{text!r} is not a valid name", "use letters, digits and _")
        return text

    def items(self, key: str, default: Sequence[Any] = (), example: str = "") -> list[Any]:
        """Return a list's items (``[]`` if not a list); with an `example` it must not be empty."""
        value = self.data.get(key, default)
        if not isinstance(value, list | tuple):
            fix = example and f"write e.g. {key} = {example}"
            self.fail(key, f"must be a list, found {describe(value)}", fix)
            return []
        if example and not value and key in self.data:
            self.fail(key, "must not be empty", f"list at least one, e.g. {key} = {example}")
        return list(value)

    def tables(self, key: str) -> list[tuple[str, Mapping[Any, Any]]]:
        """Return (path, mapping) for each table in the list at `key`; report other items."""
        found = []
        for i, item in enumerate(self.items(key)):
            if isinstance(item, Mapping):
                found.append((join(self.at(key), i), item))
            else:
                where = join(self.at(key), i)
                self.problems.append(Problem(where, f"must be a table, found {describe(item)}"))
        return found

    def sub(self, key: str) -> Mapping[Any, Any]:
        """Return the table at `key` (empty when absent or not a table)."""
        value = self.data.get(key, {})
        if isinstance(value, Mapping):
            return value
        self.fail(key, f"must be a table, found {describe(value)}")
        return {}


class _Shown(reprlib.Repr):
    """`repr` cut to a few levels and items; safe on huge integers and deep nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, 60, 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() <= 128:
            return super().repr_int(x, level)
        return f"<{'-' if x < 0 else ''}{_digits(x)} digits>"  # repr() refuses > 4300 digits


_SHOWN = _Shown()


def _digits(value: int) -> str:
    return f"about {int(abs(value).bit_length() * math.log10(2)) + 1}"


def describe(value: Any) -> str:
    """Return a short description of a found value with its type, e.g. ``integer 3``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    kind = next((name for cls, name in _KINDS if isinstance(value, cls)), type(value).__name__)
    if isinstance(value, int) and value not in _INT64:
        return f"{kind} of {_digits(value)} digits{' (negative)' if value < 0 else ''}"
    text = value.isoformat() if isinstance(value, dt.date | dt.time) else _SHOWN.repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def printable(text: str) -> str:
    """Return `text` with line breaks and other unprintable characters escaped (``\\n``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def reason(exc: PipelineError) -> str:
    """Return an error's message as a clause: first word lowered, final period dropped.

    A first word in capitals (a MIC such as ``XNYS``) keeps them.
    """
    text = str(exc).rstrip(".")
    if text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def join(path: str, key: str | int) -> str:
    """Return the path of `key` inside `path`: ``a.b`` for a key, ``a[2]`` for an index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def is_whole(value: Any) -> bool:
    """True for an integer that is not a boolean and fits in 64 bits, as TOML's do."""
    return isinstance(value, int) and not isinstance(value, bool) and value in _INT64


def is_number(value: Any) -> bool:
    """True for a finite integer or float that is not a boolean."""
    return math.isfinite(value) if isinstance(value, float) else is_whole(value)


def check_string(
    value: Any, path: str, problems: list[Problem], choices: Sequence[str] = ()
) -> str:
    """Return `value` when it is a string (one of `choices` when given); else report it."""
    if not isinstance(value, str):
        problems.append(Problem(path, f"must be a string, found {describe(value)}"))
        return ""
    if choices and value not in choices:
        problems.append(Problem(path, f"{value!r} is not allowed", closest(value, choices)))
        return ""
    return value


def check_interval(value: Any, path: str, problems: list[Problem]) -> str | None:
    """Return an interval normalised by `Interval`, or None after reporting why it is not one."""
    return _check_text(value, path, problems, "an interval", lambda v: str(Interval.parse(v)))


def check_symbol(value: Any, path: str, problems: list[Problem]) -> str | None:
    """Return a valid symbol (see `validate_symbol`), or None after reporting why it is not one."""
    return _check_text(value, path, problems, "a symbol", validate_symbol)


def _check_text(
    value: Any, path: str, problems: list[Problem], what: str, parse: Callable[[str], str]
) -> str | None:
    """Return `parse(value)` for a string `value`; report a wrong type or a parse error."""
    if not isinstance(value, str):
        problems.append(Problem(path, f"must be {what} string, found {describe(value)}"))
        return None
    try:
        return parse(value)
    except PipelineError as exc:
        problems.append(Problem(path, f"is not usable: {reason(exc)}"))
        return None


def check_date(value: Any, path: str, problems: list[Problem]) -> dt.date | None:
    """Return a date from a TOML date or a ``YYYY-MM-DD`` string, or None when invalid."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            problems.append(Problem(path, f"{value!r} is not a date ({exc})", "fix the day"))
            return None
    fix = "write it as YYYY-MM-DD, e.g. 2024-07-02"
    problems.append(Problem(path, f"must be a date, found {describe(value)}", fix))
    return None


def unique(
    found: Sequence[tuple[str, str | None]], problems: list[Problem], what: str, fix: str
) -> None:
    """Report each (path, value) whose value repeats an earlier one; None values are skipped."""
    seen: dict[str, str] = {}
    for path, value in found:
        if value is not None and value in seen:
            problems.append(Problem(path, f"{what} {value!r} repeats {seen[value]}", fix))
        elif value is not None:
            seen[value] = path


def names(
    table: Table,
    key: str,
    check: Callable[[Any, str, list[Problem]], str | None],
    what: str,
    *,
    default: Sequence[str] = (),
    example: str = "",
) -> tuple[str, ...] | None:
    """Return the non-empty list at `key`, each item passed through `check` and none repeated.

    Return None when the list has a problem, so that checks which depend on it are skipped.
    """
    before = len(table.problems)
    items = enumerate(table.items(key, default, example))
    found = [(table.at(key) + f"[{i}]", item) for i, item in items]
    checked = [(path, check(item, path, table.problems)) for path, item in found]
    unique(checked, table.problems, what, f"list each {what} once")
    if not checked or len(table.problems) > before:
        return None
    return tuple(value for _, value in checked if value is not None)


def subset(
    values: Sequence[Any], path: str, allowed: Collection[str] | None, problems: list[Problem]
) -> tuple[str, ...]:
    """Return `values` as unique strings from `allowed` (None: membership is not checked)."""
    found: list[tuple[str, str | None]] = []
    for i, value in enumerate(values):
        here = join(path, i)
        text = check_string(value, here, problems)
        if text and allowed is not None and text not in allowed:
            fix = "use 'all' or symbols from the top-level symbols list"
            problems.append(Problem(here, f"{text!r} is not one of the run's symbols", fix))
        found.append((here, text or None))
    unique(found, problems, "symbol", "list each symbol once")
    return tuple(v for _, v in found if v)


def freeze(value: Any, path: str, problems: list[Problem], depth: int = 0) -> Any:
    """Return `value` deeply immutable: tables as `MappingProxyType`, lists as tuples.

    Leaves must be TOML or JSON values with a JSON form: string, finite number (integers
    of 64 bits), boolean, date, time or null. Nesting stops at 32 levels.
    """
    if isinstance(value, Mapping | list | tuple) and depth >= _MAX_DEPTH:
        fix = "flatten it"
        problems.append(Problem(path, f"nests lists or tables deeper than {_MAX_DEPTH}", fix))
        return None
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                frozen[key] = freeze(item, join(path, key), problems, depth + 1)
            else:
                problems.append(Problem(path, f"has a key that is not a name: {describe(key)}"))
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        items = enumerate(value)
        return tuple(freeze(item, join(path, i), problems, depth + 1) for i, item in items)
    if value is None or is_number(value) or isinstance(value, str | bool | dt.date | dt.time):
        return value
    problems.append(Problem(path, f"must be a TOML or JSON value, found {describe(value)}"))
    return None


def plain(value: Any) -> Any:
    """Return `value` as JSON-ready data with the same meaning.

    Dataclasses and mappings become dicts with sorted keys (a dataclass field that is
    None is left out, as if absent from the file), tuples lists, dates ISO strings.
    """
    if is_dataclass(value) and not isinstance(value, type):
        found = {f.name: getattr(value, f.name) for f in fields(value)}
        return {k: plain(found[k]) for k in sorted(found) if found[k] is not None}
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def read(path: Path, source: str) -> Any:
    """Return the contents of a ``.toml`` or ``.json`` file; raise `ConfigError` if unreadable."""
    kind = path.suffix.lower()
    if kind not in (".toml", ".json"):
        shown = repr(kind) if kind else "(no extension)"
        raise ConfigError(
            f"config {source!r}: file type {shown} is not supported; use a .toml or .json file"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config {source!r} does not exist; check the path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config {source!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"config {source!r} cannot be read ({exc.strerror or exc}); "
            "check the path and its permissions"
        ) from None
    return _parse_toml(text, source) if kind == ".toml" else _parse_json(text, source)


def _parse_toml(text: str, source: str) -> Any:
    """Parse TOML text; turn a syntax error into a `ConfigError` with its line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_AT.match(str(exc))
        what, where = (match[1], f" {match[2]}, {match[3]}") if match else (str(exc), "")
        raise ConfigError(
            f"config {source!r}{where}: {what[:1].lower() + what[1:]}; fix the TOML syntax "
            '(strings in quotes, dates as 2024-07-02, lists as ["a", "b"])'
        ) from None
    except (RecursionError, ValueError) as exc:
        raise _unreadable(source, exc) from None


def _parse_json(text: str, source: str) -> Any:
    """Parse JSON text; a syntax error or a repeated key is a `ConfigError`."""
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, source))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config {source!r} line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg[:1].lower() + exc.msg[1:]}; fix the JSON syntax "
            "(double-quoted keys and strings, no trailing commas)"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise _unreadable(source, exc) from None


def _unreadable(source: str, exc: RecursionError | ValueError) -> ConfigError:
    """The error for text the parser gave up on: lists nested too deep, a number too long."""
    if isinstance(exc, RecursionError):
        what = "nests lists or tables too deeply to read; flatten it"
    else:
        what = "holds a number too long to read; write numbers that fit in 64 bits"
    return ConfigError(f"config {source!r} {what}")


def _json_object(pairs: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice (JSON would keep the last silently)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ConfigError(f"config {source!r}: key {key!r} appears twice; keep one of them")
        found[key] = value
    return found
