"""`parse_config`: ``[broker]`` is checked whenever present; ``[strategy]`` needs its class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config, parse_config
from pipeline.errors import ConfigError

STRATEGY = {"class": "pipeline.strategies:MovingAverageCross"}


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "start": "2024-07-01",
        "end": "2024-07-10",
        "symbols": ["ACME"],
    }
    data.update(changes)
    return data


def problems(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.toml")
    return str(info.value)


@pytest.mark.parametrize("strategy", [None, STRATEGY])
def test_a_bad_broker_is_refused_with_or_without_a_strategy(strategy: Any) -> None:
    data = minimal(broker={"cash": -5, "fill": "bogus"})
    if strategy is not None:
        data["strategy"] = strategy

    message = problems(data)

    assert "config 'x.toml': broker.cash must be a number > 0" in message
    assert "broker.fill 'bogus' is not allowed" in message


def test_the_cash_fix_names_the_default_not_a_limit() -> None:
    message = problems(minimal(broker={"cash": 0}))

    assert "leave it out for the default 100,000" in message
    assert "no limit" not in message


def test_a_limit_fix_still_says_no_limit() -> None:
    assert "leave it out for no limit" in problems(minimal(broker={"max_per_trade": -1}))


def test_a_valid_broker_without_a_strategy_is_accepted() -> None:
    assert parse_config(minimal(broker={"cash": 5000, "fill": "close"})).broker["cash"] == 5000


def test_a_strategy_table_without_class_is_refused() -> None:
    message = problems(minimal(strategy={"params": {"fast": 5}}))

    assert "strategy.class is missing" in message
    assert "remove [strategy]" in message


def test_a_bare_strategy_header_in_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(
        'name = "t"\nstart = 2024-07-01\nend = 2024-07-10\nsymbols = ["ACME"]\n[strategy]\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError, match=r"x.toml': strategy.class is missing"):
        load_config(path)


def test_no_strategy_or_the_canonical_empty_one_means_a_flow_only_run() -> None:
    assert not parse_config(minimal()).strategy
    assert not parse_config(minimal(strategy={})).strategy


def test_a_date_past_the_calendar_keeps_the_mics_capitals() -> None:
    message = problems(minimal(start="2300-01-03", end="2300-01-10"))

    assert "XNYS has no session" in message
    assert "xNYS" not in message
