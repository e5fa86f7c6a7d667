"""Run configs, fuzzed (issue 7): a valid frozen config or a one-line `ConfigError`, nothing else.

Three families of generated input go through `parse_config` and `load_config`:

- a complete valid config with one to four keys (every key of every section, list
  items, and misspelt keys) set to wrong types, out-of-range values, line breaks,
  huge or deeply nested values, or removed;
- whole random documents (any TOML or JSON value, tables keyed by config keys and junk);
- files: those documents written as TOML or JSON text, often then cut, spliced or
  corrupted into unparseable text or bytes, under a right or wrong file extension.

Every case must end in a `RunConfig` that is frozen, hashes (`config_hash`) and parses
again from its canonical form to the same hash, or in a `ConfigError` whose message is
non-empty and one line. Each test prints its case count (``pytest ... -s``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import RunConfig, canonical, config_hash, load_config, parse_config
from pipeline.errors import ConfigError

# Derandomized, yet the accepted/refused split moves a little with the modules already
# imported (Hypothesis also draws literals found in loaded project code): floors, not pins.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE: dict[str, Any] = {
    "name": "fuzz",
    "calendar": "XNYS",
    "start": "2024-07-01",
    "end": "2024-07-10",
    "symbols": ["ACME", "BOLT"],
    "streams": ["1m", "5m"],
    "extended_hours": False,
    "data_root": "data",
    "history": [
        {"interval": "1m", "sessions": 5, "symbols": "all"},
        {"interval": "1d", "sessions": 20, "symbols": ["ACME"]},
    ],
    "historical_indicators": [
        {"name": "avg", "field": "volume", "period": "20d", "granularity": "daily", "label": "v"},
        {"name": "avg", "field": "volume", "period": "5d", "granularity": "minute"},
    ],
    "indicators": [
        {"name": "sma", "interval": "5m", "period": 10, "params": {"field": "close"}},
        {"name": "macd", "interval": "5m", "params": {"fast": 12, "slow": 26, "signal": 9}},
        {"name": "bbands", "interval": "1m", "period": 20, "params": {"k": 2.0}, "label": "bb"},
    ],
    "quality": {"enabled": True, "emit_incomplete": False, "min_for_entry": 95.0},
    "strategy": {"class": "pipeline.strategies:Crossover", "params": {"fast": 5}},
    "broker": {"cash": 100_000, "fill": "next_open"},
    "scanner": {"query": "most_active", "params": {"top": 5}, "symbols": "all"},
}


def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list item of `value`, outermost first."""
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    paths = []
    for key, item in items:
        paths.append((*prefix, key))
        paths += key_paths(item, (*prefix, key))
    return paths


# Keys the valid config could hold but does not: misspelt, out of place, one item too many.
ABSENT = [
    ("symbls",),
    ("Name",),
    ("history", 2),
    ("history", 0, "sesions"),
    ("indicators", 0, "params", "fast"),
    ("indicators", 1, "period"),
    ("indicators", 3),
    ("historical_indicators", 0, "interval"),
    ("quality", "min_entry"),
    ("scanner", "params", "session"),
    ("strategy", "params", "nested"),
]
PATHS = [*key_paths(BASE), *ABSENT]  # every key of the valid config, and the absent ones

# ------------------------------------------------------------------- values
HUGE = 10**5000  # more digits than Python turns into text by default
LINE_BREAKS = ["a\nb", "1m\n", "\r", "ACME\r\nBOLT", "x\u2028y", "\x0b", "\x85", "tab\there"]
TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from([*LINE_BREAKS, "", " ", "\x00", "\ud800", "é", "x" * 300, "all", "ALL"]),
    st.sampled_from(["1m", "5m", "60m", "1h", "30s", "1d", "1w", "2d", "0m", "25h", "1M", "7x"]),
    st.sampled_from(["sma", "macd", "bbands", "obv", "vwap", "avg", "prev", "atr", "minute"]),
    st.sampled_from(["close", "volume", "Close", "20d", "52w", "1y", "0d", "5x", "daily"]),
    st.sampled_from(["XNYS", "XLON", "xnys", "NYSE", "XXXX", "ACME", "BRK.B", "^SPX", "../x"]),
    st.sampled_from(["2024-07-01", "2024-07-04", "2024-02-30", "2024-13-01", "24-07-01"]),
    st.sampled_from(["1900-01-01", "2099-12-31", "2100-01-01", "0001-01-01", "9999-12-31"]),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 300),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1]),
    st.sampled_from([1, -1]).map(lambda sign: sign * HUGE),  # built lazily: repr(HUGE) fails
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 100.0, 100.5, 1e308, 5e-324]),
)
MOMENTS = st.one_of(
    st.dates(dt.date(2023, 6, 1), dt.date(2025, 6, 30)),
    st.sampled_from([dt.date(1, 1, 1), dt.date(1899, 12, 31), dt.date(2100, 1, 1)]),
    st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 31)),
    st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 31), timezones=st.just(dt.UTC)),
    st.times(),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS, MOMENTS)
KEYS = st.one_of(st.sampled_from([*BASE, "params", "fast", "k", "class"]), TEXTS)


def nested(depth: int, inner: Any, as_table: bool) -> Any:
    """`inner` wrapped in `depth` lists or tables (built without recursion)."""
    for _ in range(depth):
        inner = {"x": inner} if as_table else [inner]
    return inner


DEEP = st.builds(nested, st.sampled_from([20, 40, 200, 3000]), SCALARS, st.booleans())
VALUES = (
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=10,
    )
    | DEEP
)

DELETE = object()


def put(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """Return `data` with `value` at `path` (DELETE removes it), copying only along the path."""
    key, rest = path[0], path[1:]
    copy: Any
    if isinstance(data, dict):
        copy, present = dict(data), key in data
    elif isinstance(data, list) and isinstance(key, int) and key <= len(data):
        copy, present = list(data), key < len(data)
    else:
        return data  # an earlier change replaced what the path runs through
    if rest:
        if not present:
            return data
        copy[key] = put(copy[key], rest, value)
        return copy
    if value is DELETE:
        if present:
            del copy[key]
    elif present or isinstance(copy, dict):
        copy[key] = value
    else:
        copy.append(value)
    return copy


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid config with 1-4 keys set to hostile values or removed."""
    data = BASE
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        value = DELETE if draw(st.integers(0, 9)) == 0 else draw(VALUES)
        data = put(data, path, value)
    return data


DOCUMENTS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=10),
    st.fixed_dictionaries(
        {k: st.just(v) for k, v in BASE.items() if k in ("name", "start", "end", "symbols")},
        optional={k: VALUES for k in BASE if k not in ("name", "start", "end", "symbols")},
    ),
    VALUES,
)

# -------------------------------------------------------------- text forms
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass(frozen=True)
class Raw:
    """Text written into a file as it is (a number too long for `str(int)`)."""

    text: str


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE.match(text) else json.dumps(text, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """`value` as TOML text; None (TOML has none) is written as the invalid token null."""
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return hex(value) if value.bit_length() > 4000 else str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def toml_text(doc: Any) -> str:
    """`doc` as a TOML file: plain keys first, then [tables] and [[arrays of tables]]."""
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc)}\n"
    lines, sections = [], []
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            sections += [
                f"[{_key(key)}]",
                *(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()),
            ]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                sections.append(f"[[{_key(key)}]]")
                sections += [f"{_key(k)} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.append(f"{_key(key)} = {toml_value(value)}")
    return "\n".join([*lines, *sections]) + "\n"


def json_ready(value: Any) -> Any:
    """`value` with dates as strings and huge integers as raw digits (for `json_text`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4000:
        return Raw("9" * 4400)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    return value


def json_text(doc: Any) -> str:
    """`doc` as JSON (NaN and Infinity as Python writes them)."""
    raws: list[str] = []

    def placeholder(value: Any) -> str:
        raws.append(value.text)
        return f"@@RAW{len(raws) - 1}@@"

    text = json.dumps(json_ready(doc), ensure_ascii=False, default=placeholder)
    return re.sub(r'"@@RAW(\d+)@@"', lambda m: raws[int(m[1])], text)


SNIPPETS = ["", '"', "[", "]", "{", "}", "=", ",", "\n", "#", "\\", "\x00", "[[x]]", "a = 1"]


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid config with a few of its values varied within what is valid."""
    start = draw(st.dates(dt.date(2024, 1, 2), dt.date(2024, 11, 30)))
    end = start + dt.timedelta(days=draw(st.integers(0, 60)))
    as_text = draw(st.booleans())
    more = draw(st.lists(st.sampled_from(["BOLT", "TINY", "BRK.B", "^SPX"]), unique=True))
    return {
        **BASE,
        "name": draw(st.text(min_size=1, max_size=12).filter(str.strip)),
        "start": start.isoformat() if as_text else start,
        "end": end.isoformat() if as_text else end,
        "symbols": ["ACME", *more],
        "streams": ["1m", "5m", *draw(st.lists(st.sampled_from(["15m", "1h"]), unique=True))],
        "extended_hours": draw(st.booleans()),
    }


@st.composite
def config_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file suffix, bytes): a config written as TOML or JSON, often corrupted, or junk."""
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "corrupted", "corrupted", "junk"]))
    form = draw(st.sampled_from(["toml", "json"]))
    if kind == "junk":
        content = draw(st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
        return f".{form}", content
    doc = draw(valid_configs() if kind == "valid" else mutated_configs() | DOCUMENTS)
    try:
        text = toml_text(doc) if form == "toml" else json_text(doc)
    except RecursionError:  # a deep value: write it as deep text
        text = "a = " + "[" * 3000 + "]" * 3000
    if kind != "corrupted":
        suffix = draw(st.sampled_from([f".{form}", f".{form.upper()}"]))
        return suffix, text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(1, 3))):
        at, cut = draw(st.integers(0, len(text))), draw(st.integers(0, 10))
        text = text[:at] + draw(st.sampled_from(SNIPPETS) | st.text(max_size=3)) + text[at + cut :]
    content = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        content = content[: draw(st.integers(0, len(content)))] + b"\xff\xfe"
    return draw(st.sampled_from([f".{form}"] * 8 + [".yaml", ""])), content


# ------------------------------------------------------------------ oracle
def check(run: Callable[[], RunConfig], counts: Counter[str]) -> None:
    """Run one case: a sound config or a one-line `ConfigError`; anything else fails."""
    counts["tried"] += 1
    try:
        config = run()
    except ConfigError as exc:
        message = str(exc)
        counts["refused"] += 1
        assert message.strip(), "empty ConfigError message"
        assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"
        return
    counts["accepted"] += 1
    assert isinstance(config, RunConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "changed"  # type: ignore[misc]
    digest = config_hash(config)
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert config_hash(parse_config(canonical(config))) == digest


def report(family: str, counts: Counter[str]) -> None:
    print(
        f"\nconfig fuzz, {family}: {counts['tried']} cases "
        f"(accepted {counts['accepted']}, refused with a one-line ConfigError {counts['refused']})"
    )


# ------------------------------------------------------------------- tests
def test_hostile_values_in_every_key_give_a_config_or_a_one_line_config_error() -> None:
    counts: Counter[str] = Counter()

    @settings(FUZZ, max_examples=500)
    @given(data=mutated_configs())
    def case(data: dict[str, Any]) -> None:
        check(lambda: parse_config(data, "fuzz.toml"), counts)

    case()
    report("hostile values in every key", counts)
    assert counts["tried"] >= 500
    assert counts["accepted"] >= 10, "the mutations never left a valid config: fuzz is too blunt"
    assert counts["refused"] >= 300


def test_random_documents_give_a_config_or_a_one_line_config_error() -> None:
    counts: Counter[str] = Counter()

    @settings(FUZZ, max_examples=200)
    @given(data=DOCUMENTS)
    def case(data: Any) -> None:
        check(lambda: parse_config(data), counts)

    case()
    report("random documents", counts)
    assert counts["tried"] >= 200
    assert counts["refused"] >= 100


def test_toml_and_json_text_give_a_config_or_a_one_line_config_error() -> None:
    counts: Counter[str] = Counter()

    with tempfile.TemporaryDirectory() as folder:

        @settings(FUZZ, max_examples=500)
        @given(file=config_files())
        def case(file: tuple[str, bytes]) -> None:
            path = Path(folder) / f"run{counts['tried']}{file[0]}"
            path.write_bytes(file[1])
            check(lambda: load_config(path), counts)
            path.unlink()

        case()
        check(lambda: load_config(Path(folder) / "absent.toml"), counts)
        check(lambda: load_config(Path(folder)), counts)
    report("TOML and JSON files", counts)
    assert counts["tried"] >= 400
    assert counts["accepted"] >= 10, "no generated file was a valid config: fuzz is too blunt"
    assert counts["refused"] >= 200


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", "[" * 100_000 + "]" * 100_000),
        (".toml", "a = " + "[" * 100_000 + "]" * 100_000),
        (".json", '{"name": ' + "1" * 5000 + "}"),
        (".toml", "name = " + "1" * 5000),
    ],
    ids=["json-deep", "toml-deep", "json-long-number", "toml-long-number"],
)
def test_regression_deep_or_long_number_files_give_a_one_line_config_error(
    tmp_path: Path, suffix: str, text: str
) -> None:
    # Found by the fuzz: RecursionError and ValueError escaped from the parsers.
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize(
    "data",
    [
        {**BASE, "a\nb": 1},
        {**BASE, "strategy": {"a\r\nb": float("nan")}},
        {**BASE, "scanner": {"query": "q", "params": {"x\u2028y": [1]}}},
        {**BASE, "name": HUGE},
        {**BASE, "broker": {"cash": HUGE}},
        {**BASE, "strategy": {"deep": nested(3000, 1, as_table=False)}},
        {**BASE, "name": nested(3000, 1, as_table=True)},
    ],
    ids=[
        "key-newline",
        "nested-key-crlf",
        "scanner-key-u2028",
        "huge-name",
        "huge-cash",
        "deep-strategy",
        "deep-name",
    ],
)
def test_regression_line_breaks_huge_numbers_and_deep_values_give_a_one_line_error(
    data: dict[str, Any],
) -> None:
    # Found by the fuzz: keys were shown raw (multi-line messages), repr of a huge integer
    # raised ValueError, deep values raised RecursionError, a huge broker cash was accepted
    # and then could not be hashed.
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert len(str(caught.value).splitlines()) == 1
