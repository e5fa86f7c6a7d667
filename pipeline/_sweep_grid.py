"""Sweep grids: read ``KEY=V1,V2,...`` entries, expand them, validate every combination.

The first two steps of a sweep (`pipeline.sweep` re-exports the public names):

1. `parse_grid` reads each entry (`parse_value` types each value) and `expand` forms
   their cartesian product, the first entry varying slowest;
2. `plan` applies each combination to the base config's canonical form and validates it
   with the normal config validation (`pipeline.config.parse_config`, the ``[broker]``
   table) before anything runs. A combination the strategy refuses is kept with its
   ``error``, unless a value is refused in every combination holding it.

Examples
--------
>>> parse_grid("broker.fill=next_open,close").values
('next_open', 'close')
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.config import RunConfig, canonical, parse_config
from pipeline.errors import ConfigError, closest

__all__ = [
    "Combination", "GridEntry", "Scalar", "SweepPlan", "expand", "parse_grid", "parse_value",
    "plan", "show_value",
]  # fmt: skip

Scalar = int | float | bool | str

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_KEY = re.compile(rf"{_NAME}(\.({_NAME}|\d+))*")
_INT = re.compile(r"[+-]?\d+(_\d+)*")
_DIGITS = r"\d+(_\d+)*"
_FLOAT = re.compile(rf"[+-]?({_DIGITS}(\.({_DIGITS})?)?|\.{_DIGITS})([eE][+-]?{_DIGITS})?")
#: Combinations a sweep runs at most unless told more (`plan`'s `limit`, ``--max-runs``):
#: each is a whole backtest, and validating one alone takes ~1 ms.
MAX_COMBINATIONS = 10_000
_STRATEGY_KEYS = ("class", "params")


@dataclass(frozen=True)
class GridEntry:
    """One ``--grid`` entry: a dotted config key and the values it takes, in order."""

    key: str
    values: tuple[Scalar, ...]

    @property
    def arrow_type(self) -> pa.DataType:
        """The column type of its values: bool, int64, float64 (ints and floats) or string."""
        kinds = {type(v) for v in self.values}
        if kinds <= {bool}:
            return pa.bool_()
        if kinds <= {int}:
            return pa.int64()
        return pa.float64() if kinds <= {int, float} else pa.string()


@dataclass(frozen=True)
class Combination:
    """One point of the grid: its values, its validated canonical config, or why it is refused."""

    values: Mapping[str, Scalar]
    config: Mapping[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: the grid entries and every combination, in grid order."""

    name: str
    entries: tuple[GridEntry, ...]
    combinations: tuple[Combination, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The grid keys, in the order they were given."""
        return tuple(e.key for e in self.entries)


# --- 1. the grid ----------------------------------------------------------------------


def parse_value(text: str) -> Scalar:
    """Return a grid value typed: ``true``/``false``, an integer, a float, else a string.

    Quotes force a string (``'"10"'`` is the text ``10``); digits may be grouped with
    underscores, as in TOML and Python (``1_000.5``).

    Examples
    --------
    >>> [parse_value(t) for t in ("5", "2.5e3", "true", "5m", '"10"', "1_000.5")]
    [5, 2500.0, True, '5m', '10', 1000.5]
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    return text


def parse_grid(spec: str) -> GridEntry:
    """Read one ``KEY=V1,V2,...`` entry; raise `ConfigError` saying how to write it."""
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--grid {spec!r} is not KEY=V1,V2,...; write e.g. --grid strategy.params.fast=5,10,20"
        )
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"--grid {spec!r}: {key!r} is not a dotted config key; join names (and list "
            "positions) with dots, e.g. strategy.params.fast, broker.cash or indicators.0.period"
        )
    texts = _split(spec, key, text)
    if not all(texts):
        raise ConfigError(
            f"--grid {key}: {text!r} has an empty value; separate values with single commas, "
            f"e.g. --grid {key}=5,10,20"
        )
    values = tuple(parse_value(t) for t in texts)
    for i, value in enumerate(values):
        if any(_same(value, earlier) for earlier in values[:i]):
            raise ConfigError(
                f"--grid {key}: {show_value(value)} is listed twice; list each value once"
            )
    return GridEntry(key, values)


def _split(spec: str, key: str, text: str) -> list[str]:
    """Split `text` at the commas outside quotes ("a,b" and 'a,b' are one value)."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quote:
        raise ConfigError(
            f"--grid {spec!r}: a {quote} quote is not closed; close it, e.g. "
            f"--grid {key}='\"a,b\",c'"
        )
    parts.append("".join(current).strip())
    return parts


def expand(entries: Sequence[GridEntry]) -> list[dict[str, Scalar]]:
    """Return every combination of the entries' values (cartesian product, first slowest)."""
    keys = [e.key for e in entries]
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(e.values for e in entries))
    ]


# --- 2. the plan ----------------------------------------------------------------------


def plan(
    config: RunConfig,
    entries: Sequence[GridEntry],
    source: str = "<config>",
    *,
    limit: int = MAX_COMBINATIONS,
) -> SweepPlan:
    """Validate every value and combination of the grid over `config`; nothing runs yet.

    Each value is first checked alone, then each combination; either failing raises a
    `ConfigError` naming the grid entry and the fix. A combination the strategy refuses
    keeps its message as `Combination.error`, unless one of its values is refused in
    every combination holding it: that value is refused like any other bad value. A
    grid of more than `limit` combinations is refused before any is validated.
    """
    if not entries:
        raise ConfigError(
            "A sweep needs at least one --grid KEY=V1,V2,...; e.g. --grid strategy.params.fast=5,10"
        )
    _unique_keys(entries)
    count = math.prod(len(e.values) for e in entries)
    if count > limit:
        sizes = " x ".join(str(len(e.values)) for e in entries)
        raise ConfigError(
            f"the grid makes {count:,} combinations ({sizes}), more than the {limit:,} a sweep "
            f"runs unless told: each is a backtest. Use fewer values, or pass --max-runs {count} "
            "to run them all."
        )
    if not config.strategy:
        raise ConfigError(
            f"config {source!r} has no [strategy]: a sweep compares backtests; add a [strategy] "
            'with class = "module:Class" and its params'
        )
    base = canonical(config)
    accepted = _strategy_params(config)
    for entry in entries:
        _check_key(entry.key, accepted, "strategy.class" in {e.key for e in entries})
        for value in entry.values:
            _validate(base, {entry.key: value}, source)
    combinations = []
    for values in expand(entries):
        settings = _validate(base, values, source)
        combinations.append(Combination(values, canonical(settings), _refusal(settings)))
    _usable(entries, combinations)
    return SweepPlan(config.name, tuple(entries), tuple(combinations))


def _usable(entries: Sequence[GridEntry], combinations: list[Combination]) -> None:
    """Refuse a value that the strategy refuses in every combination holding it."""
    for entry in entries:
        for value in entry.values:
            held = [c for c in combinations if _same(c.values[entry.key], value)]
            if all(c.error is not None for c in held):
                raise ConfigError(
                    f"--grid {entry.key}={show_value(value)}: no combination can use it; the "
                    f"strategy refuses e.g. {_label(held[0].values)}: {held[0].error}"
                )


def _same(a: Scalar, b: Scalar) -> bool:
    """Equal as grid values: ``true`` is not ``1``."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _unique_keys(entries: Sequence[GridEntry]) -> None:
    keys = [e.key for e in entries]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--grid {key} is given twice; put all its values in one --grid")
        if key == "data_root":
            raise ConfigError("--grid data_root: the store is not a sweep parameter; use --root")


def _strategy_params(config: RunConfig) -> tuple[str, tuple[str, ...]] | None:
    """Return the strategy class's name and parameters (None: it takes any, or is unknown)."""
    from pipeline.engine import strategy_from_config

    try:
        strategy = strategy_from_config(config.strategy)
    except ConfigError:
        return None
    params = inspect.signature(type(strategy)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = tuple(p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)
    return type(strategy).__name__, names


def _check_key(key: str, accepted: tuple[str, tuple[str, ...]] | None, class_varies: bool) -> None:
    """Refuse a ``strategy`` key the strategy does not take (the rest is `parse_config`'s)."""
    parts = key.split(".")
    if parts[0] != "strategy" or len(parts) < 2:
        return
    if parts[1] not in _STRATEGY_KEYS:
        hint = closest(parts[1], _STRATEGY_KEYS)
        raise ConfigError(f"--grid {key}: [strategy] has no key {parts[1]!r}; {hint}")
    if parts[1] != "params" or len(parts) != 3 or accepted is None or class_varies:
        return
    name, params = accepted
    if parts[2] not in params:
        hint = closest(parts[2], params)
        raise ConfigError(f"--grid {key}: {name} takes no parameter {parts[2]!r}; {hint}")


def _validate(base: Mapping[str, Any], values: Mapping[str, Scalar], source: str) -> RunConfig:
    """Return `base` with `values` set, validated; a problem is a `ConfigError` naming them.

    `parse_config` checks the ``[broker]`` table too.
    """
    data = copy.deepcopy(dict(base))
    label = f"--grid {_label(values)}"
    for key, value in values.items():
        _assign(data, key, value, label)
    try:
        settings = parse_config(data, source)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    return settings


def _assign(data: dict[str, Any], key: str, value: Scalar, label: str) -> None:
    """Set the dotted `key` in `data` (tables it names are created; list positions must exist)."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if isinstance(node, list) and not (part.isdigit() and int(part) < len(node)):
            raise ConfigError(
                f"{label}: {where} is a list of {len(node)}; "
                f"name a position from 0 to {len(node) - 1}, e.g. {where}.0"
            )
        if not isinstance(node, list | dict):
            raise ConfigError(
                f"{label}: {where} holds a value, not a table; "
                "name a key of a table, e.g. strategy.params.fast"
            )
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if last:
                node[int(part)] = value
            node = node[int(part)]
        elif last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def _refusal(settings: RunConfig) -> str | None:
    """Return why the strategy refuses this combination's parameters, or None."""
    from pipeline.engine import strategy_from_config

    try:
        strategy_from_config(settings.strategy)
    except ConfigError as exc:
        return str(exc)
    return None


def _label(values: Mapping[str, Scalar]) -> str:
    return " ".join(f"{key}={show_value(value)}" for key, value in values.items())


def show_value(value: Scalar) -> str:
    """Return a grid value as it is written in ``--grid`` (booleans as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
