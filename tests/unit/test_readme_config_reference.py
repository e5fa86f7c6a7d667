"""The README's config reference lists exactly the keys a run config accepts."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import _broker_models, config, engine

README = Path(__file__).resolve().parents[2] / "README.md"
# A reference row starts with its dotted key in backticks: | `broker.commission.rate` | ...
ROW = re.compile(r"^\| `([a-z_.]+)` \|", re.MULTILINE)


def accepted_keys() -> set[str]:
    """Return every key the config takes, dotted from the top (``indicators.params.k``)."""
    nested = {
        "history": config._HISTORY_KEYS,
        "historical_indicators": config._HISTORICAL_KEYS,
        "indicators": config._INDICATOR_KEYS,
        "indicators.params": config._ALL_PARAMS,
        "quality": config._QUALITY_KEYS,
        "scanner": config._SCANNER_KEYS,
        "strategy": engine._STRATEGY_KEYS,
        "broker": _broker_models._KEYS,
        "broker.commission": {k for keys in _broker_models._MODEL_KEYS.values() for k in keys},
    }
    keys = set(config._TOP_KEYS)
    for table, names in nested.items():
        keys |= {f"{table}.{name}" for name in names}
    return keys


def reference() -> str:
    """Return the README's "Config reference" section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Config reference\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_accepted_key_is_in_the_reference() -> None:
    listed = set(ROW.findall(reference()))
    assert sorted(accepted_keys() - listed) == []


def test_the_reference_lists_no_key_the_config_refuses() -> None:
    listed = set(ROW.findall(reference()))
    assert sorted(listed - accepted_keys()) == []


def test_each_key_is_listed_once() -> None:
    listed = ROW.findall(reference())
    assert sorted(k for k in set(listed) if listed.count(k) > 1) == []
