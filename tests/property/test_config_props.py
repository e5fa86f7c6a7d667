from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import (
    FIELDS,
    INDICATOR_NAMES,
    PERIOD_REQUIRED,
    HistoricalIndicator,
    Indicator,
    RunConfig,
    canonical,
    config_hash,
    parse_config,
)
from pipeline.errors import ConfigError

BASE: dict[str, Any] = {
    "name": "prop",
    "calendar": "XNYS",
    "start": "2024-07-01",
    "end": "2024-07-10",
    "symbols": ["ACME", "BOLT"],
    "streams": ["1m", "5m"],
    "extended_hours": False,
    "data_root": "data",
    "history": [{"interval": "1m", "sessions": 5, "symbols": "all"}],
    "historical_indicators": [
        {"name": "avg", "field": "volume", "period": "20d", "granularity": "daily", "label": "v"}
    ],
    "indicators": [
        {"name": "bbands", "interval": "5m", "period": 20, "params": {"k": 2.0, "field": "close"}}
    ],
    "quality": {"enabled": True, "emit_incomplete": False, "min_for_entry": 95.0},
    "strategy": {"class": "x"},
    "broker": {"cash": 1},
}

# Where a value goes and the kinds of value that may be valid there.
SLOTS: dict[tuple[Any, ...], set[str]] = {
    ("name",): {"str"},
    ("calendar",): {"str"},
    ("start",): {"str", "date"},
    ("end",): {"str", "date"},
    ("symbols",): {"list"},
    ("symbols", 0): {"str"},
    ("streams",): {"list"},
    ("streams", 1): {"str"},
    ("extended_hours",): {"bool"},
    ("data_root",): {"str"},
    ("history",): {"list"},
    ("history", 0): {"table"},
    ("history", 0, "interval"): {"str"},
    ("history", 0, "sessions"): {"int"},
    ("history", 0, "symbols"): {"str", "list"},
    ("historical_indicators",): {"list"},
    ("historical_indicators", 0, "name"): {"str"},
    ("historical_indicators", 0, "field"): {"str"},
    ("historical_indicators", 0, "period"): {"str"},
    ("historical_indicators", 0, "granularity"): {"str"},
    ("historical_indicators", 0, "label"): {"str"},
    ("indicators",): {"list"},
    ("indicators", 0): {"table"},
    ("indicators", 0, "name"): {"str"},
    ("indicators", 0, "interval"): {"str"},
    ("indicators", 0, "period"): {"int"},
    ("indicators", 0, "params"): {"table"},
    ("indicators", 0, "params", "k"): {"int", "float"},
    ("indicators", 0, "params", "field"): {"str"},
    ("quality",): {"table"},
    ("quality", "enabled"): {"bool"},
    ("quality", "emit_incomplete"): {"bool"},
    ("quality", "min_for_entry"): {"int", "float"},
    ("strategy",): {"table"},
    ("broker",): {"table"},
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.dates(dt.date(2020, 1, 1), dt.date(2026, 12, 31)),
)
junk = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)


def kind(value: Any) -> str:
    for cls, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, cls):
            return name
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, list):
        return "list"
    return "table" if isinstance(value, dict) else "null"


def put(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(sorted(SLOTS, key=str)), value=junk)
def test_any_value_in_any_slot_gives_a_config_error_or_a_config(
    path: tuple[Any, ...], value: Any
) -> None:
    data = put(BASE, path, value)
    if kind(value) not in SLOTS[path]:
        with pytest.raises(ConfigError):
            parse_config(data)
        return
    with contextlib.suppress(ConfigError):
        parse_config(data)


@settings(max_examples=100, deadline=None)
@given(
    data=st.one_of(
        st.recursive(junk, lambda inner: st.lists(inner, max_size=3), max_leaves=8),
        st.dictionaries(st.sampled_from([*BASE, "symbls", "Name"]), junk, max_size=8),
    )
)
def test_arbitrary_documents_give_a_config_error_or_a_config(data: Any) -> None:
    with contextlib.suppress(ConfigError):
        assert isinstance(parse_config(data), RunConfig)


@st.composite
def indicator(draw: st.DrawFn, streams: list[str]) -> dict[str, Any]:
    name = draw(st.sampled_from(INDICATOR_NAMES))
    found: dict[str, Any] = {"name": name, "interval": draw(st.sampled_from(streams))}
    if name in PERIOD_REQUIRED:
        found["period"] = draw(st.integers(1, 200))
    params: dict[str, Any] = {}
    if draw(st.booleans()):
        params["field"] = draw(st.sampled_from(FIELDS))
    if name == "macd":
        fast = draw(st.integers(1, 50))
        params |= {"fast": fast, "slow": fast + draw(st.integers(1, 50))}
    if name == "bbands":
        params["k"] = draw(st.floats(0.1, 5.0))
    return {**found, "params": params} if params or draw(st.booleans()) else found


@st.composite
def historical(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(("avg", "max", "min", "atr", "prev")))
    found = {"name": name, "field": draw(st.sampled_from(FIELDS))}
    found["period"] = f"{draw(st.integers(1, 300))}{draw(st.sampled_from('dwy'))}"
    if name == "avg" and draw(st.booleans()):
        found["granularity"] = "minute"
    return found


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),  # TOML's integers are 64-bit
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    symbols = draw(
        st.lists(
            st.sampled_from(["ACME", "BOLT", "TINY", "BRK.B", "^SPX"]), min_size=1, unique=True
        )
    )
    streams = draw(
        st.lists(st.sampled_from(["1m", "5m", "15m", "30m", "1h"]), min_size=1, unique=True)
    )
    start = draw(st.dates(dt.date(2024, 1, 2), dt.date(2024, 11, 30)))
    data: dict[str, Any] = {
        "name": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=draw(st.integers(6, 40)))).isoformat(),
        "symbols": symbols,
        "streams": streams,
        "history": [
            {
                "interval": draw(st.sampled_from(["1m", "5m", "1d"])),
                "sessions": draw(st.integers(1, 300)),
                "symbols": draw(
                    st.just("all") | st.lists(st.sampled_from(symbols), min_size=1, unique=True)
                ),
            }
            for _ in range(draw(st.integers(0, 2)))
        ],
        "historical_indicators": draw(
            st.lists(historical(), max_size=4, unique_by=lambda d: HistoricalIndicator(**d).output)
        ),
        "indicators": draw(
            st.lists(indicator(streams), max_size=4, unique_by=lambda d: Indicator(**d).output)
        ),
        "quality": {"enabled": draw(st.booleans()), "min_for_entry": draw(st.floats(0, 100))},
        # a strategy names its class (its params are free-form); the broker is checked
        "strategy": {
            "class": "module:Class",
            "params": draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
        },
        "broker": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "cash": st.floats(1, 1e9),
                    "fill": st.sampled_from(["next_open", "close"]),
                    "slippage_bps": st.floats(0, 10_000),
                    "allow_short": st.booleans(),
                },
            )
        ),
    }
    optional = ["history", "historical_indicators", "indicators", "quality", "strategy", "broker"]
    for key in draw(st.lists(st.sampled_from(optional), unique=True)):
        del data[key]
    return data


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


@settings(max_examples=80, deadline=None)
@given(data=valid_configs(), root=st.none() | st.text(min_size=1, max_size=8).filter(str.strip))
def test_valid_configs_parse_and_hash_deterministically(
    data: dict[str, Any], root: str | None
) -> None:
    config = parse_config(data)
    digest = config_hash(config)
    assert config_hash(parse_config(copy.deepcopy(data))) == digest
    assert config_hash(parse_config(reversed_keys(data))) == digest
    assert config_hash(parse_config(json.loads(json.dumps(data)))) == digest
    if root is not None:
        assert config_hash(parse_config({**data, "data_root": root})) == digest
    again = parse_config(canonical(config))
    assert again == dataclasses.replace(config, data_root=None)
    assert config_hash(again) == digest
