from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import canonical, config_hash, load_config, parse_config
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "configs" / "sample.toml"


def sample_data() -> dict[str, Any]:
    return tomllib.loads(SAMPLE.read_text())


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "start": "2024-07-01",
        "end": "2024-07-10",
        "symbols": ["ACME", "BOLT"],
        "streams": ["1m", "5m"],
    }
    data.update(changes)
    return data


def problems(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.toml")
    return str(info.value)


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def test_sample_config_parses() -> None:
    config = load_config(SAMPLE)
    assert config.symbols == ("ACME", "BOLT", "TINY")
    assert config.streams == ("1m", "5m", "15m")
    assert (config.start, config.end) == (dt.date(2024, 7, 2), dt.date(2024, 7, 10))
    assert [h.sessions for h in config.history] == [5, 250]
    assert len(config.historical_indicators) == 8
    assert [i.output for i in config.indicators][:5] == [
        "sma_10",
        "ema_20",
        "rsi_14",
        "macd",
        "bbands_20",
    ]
    assert config.strategy["params"]["slow"] == 30
    assert config.broker["fill"] == "next_open"


def test_hash_ignores_key_order() -> None:
    data = sample_data()
    assert config_hash(parse_config(reversed_keys(data))) == config_hash(parse_config(data))


def test_toml_and_json_of_one_config_hash_the_same(tmp_path: Path) -> None:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(as_json(sample_data()), indent=2))
    assert config_hash(load_config(path)) == config_hash(load_config(SAMPLE))


def test_hash_is_the_same_in_fresh_processes_with_other_hash_seeds() -> None:
    code = f"from pipeline.config import *; print(config_hash(load_config({str(SAMPLE)!r})))"
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        seen.add(run.stdout.strip())
    assert seen == {config_hash(load_config(SAMPLE))}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("name",), "other"),
        (("calendar",), "XNAS"),
        (("start",), "2024-07-03"),
        (("end",), "2024-07-09"),
        (("symbols",), ["ACME", "BOLT"]),
        (("streams",), ["1m", "5m", "15m", "30m"]),
        (("extended_hours",), True),
        (("history", 0, "sessions"), 6),
        (("history", 1, "symbols"), ["ACME"]),
        (("historical_indicators", 0, "period"), "21d"),
        (("historical_indicators", 4, "label"), "atr14"),
        (("indicators", 0, "period"), 11),
        (("indicators", 4, "params", "k"), 2.5),
        (("quality", "min_for_entry"), 90),
        (("quality", "emit_incomplete"), True),
        (("strategy", "params", "fast"), 11),
        (("broker", "cash"), 50_000),
        (("broker", "commission"), {"model": "percent", "rate": 0.001}),
        (("broker", "max_open_positions"), 3),
    ],
)
def test_changing_any_value_changes_the_hash(path: tuple[Any, ...], value: Any) -> None:
    data = sample_data()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert config_hash(parse_config(data)) != config_hash(load_config(SAMPLE))


def test_a_broker_default_written_out_does_not_change_the_hash() -> None:
    base = sample_data()
    written = {**base["broker"], "fill": "next_open", "slippage_bps": 0, "on_cap": "keep"}
    written |= {
        "allow_short": False,
        "max_buying_power": None,
        "cash": float(base["broker"]["cash"]),
    }
    same = parse_config({**base, "broker": written})
    assert config_hash(same) == config_hash(load_config(SAMPLE))
    per_share = {"model": "per_share", "rate": 0.005}
    short = parse_config({**base, "broker": {**base["broker"], "commission": per_share}})
    full = {**base["broker"], "commission": {**per_share, "minimum": 0.0}}
    assert config_hash(parse_config({**base, "broker": full})) == config_hash(short)
    assert config_hash(short) != config_hash(load_config(SAMPLE))


def test_data_root_is_kept_but_not_hashed() -> None:
    config = parse_config({**sample_data(), "data_root": "/elsewhere/data"})
    assert config.data_root == "/elsewhere/data"
    assert "data_root" not in canonical(config)
    assert config_hash(config) == config_hash(load_config(SAMPLE))


def test_canonical_is_json_with_iso_dates_and_parses_back_to_the_same_hash() -> None:
    config = load_config(SAMPLE)
    plain = canonical(config)
    assert plain["start"] == "2024-07-02"
    assert plain["indicators"][3]["params"] == {"fast": 12, "signal": 9, "slow": 26}
    assert config_hash(parse_config(json.loads(json.dumps(plain)))) == config_hash(config)


def test_holiday_start_rolls_to_the_next_session() -> None:
    config = parse_config(minimal(start="2024-07-04"))
    assert config.start == dt.date(2024, 7, 5)
    assert config_hash(config) == config_hash(parse_config(minimal(start="2024-07-05")))


def test_weekend_end_rolls_back_to_the_last_session_of_the_range() -> None:
    config = parse_config(minimal(start=dt.date(2024, 7, 6), end=dt.date(2024, 7, 14)))
    assert (config.start, config.end) == (dt.date(2024, 7, 8), dt.date(2024, 7, 12))


def test_range_without_a_session_is_an_error() -> None:
    message = problems(minimal(start="2024-07-06", end="2024-07-07"))
    assert "holds no XNYS session" in message
    assert "2024-07-06..2024-07-07" in message


def test_end_before_start_is_an_error() -> None:
    assert "end 2024-07-01 is before start 2024-07-10" in problems(
        minimal(start="2024-07-10", end="2024-07-01")
    )


@pytest.mark.parametrize("value", ["2024-02-30", "07/02/2024", 20240702, "2024-07-02T09:30"])
def test_bad_dates_are_reported(value: Any) -> None:
    assert "config 'x.toml': start" in problems(minimal(start=value))


def test_datetime_is_not_a_date() -> None:
    message = problems(minimal(start=dt.datetime(2024, 7, 2, 9, 30)))
    assert "start must be a date, found datetime 2024-07-02T09:30:00" in message


def test_unknown_key_names_the_closest_valid_key() -> None:
    data = minimal()
    data["symbls"] = data.pop("symbols")
    message = problems(data)
    assert "config 'x.toml': symbls is not a valid key; did you mean 'symbols'?" in message
    assert "symbols is missing" in message


def test_nested_unknown_key_names_its_path() -> None:
    data = minimal(indicators=[{"name": "sma", "interval": "1m", "perod": 5}])
    assert "indicators[0].perod is not a valid key; did you mean 'period'?" in problems(data)


def test_unknown_param_key_names_its_path() -> None:
    data = minimal(
        indicators=[{"name": "bbands", "interval": "1m", "period": 5, "params": {"kk": 2}}]
    )
    assert "indicators[0].params.kk is not a valid key; did you mean 'k'?" in problems(data)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("name", 3, "name must be a string, found integer 3"),
        ("name", "", "name must not be empty"),
        ("calendar", ["XNYS"], "calendar must be a string, found list ['XNYS']"),
        ("symbols", "ACME", "symbols must be a list, found string 'ACME'"),
        ("symbols", ["ACME", 7], "symbols[1] must be a symbol string, found integer 7"),
        ("streams", "1m", "streams must be a list, found string '1m'"),
        ("extended_hours", "yes", "extended_hours must be true or false, found string 'yes'"),
        ("data_root", 5, "data_root must be a string, found integer 5"),
        ("history", {"interval": "1m"}, "history must be a list, found table"),
        ("indicators", [3], "indicators[0] must be a table, found integer 3"),
        ("quality", True, "quality must be a table, found boolean true"),
        ("strategy", None, "strategy must be a table, found null"),
        ("broker", {"cash": float("inf")}, "broker.cash must be a TOML or JSON value"),
    ],
)
def test_wrong_types_name_the_expected_type_and_the_value(
    key: str, value: Any, expected: str
) -> None:
    assert expected in problems(minimal(**{key: value}))


def test_duplicate_symbols_are_named() -> None:
    message = problems(minimal(symbols=["ACME", "BOLT", "ACME"]))
    assert "symbols[2] symbol 'ACME' repeats symbols[0]" in message


def test_unsafe_symbol_is_refused() -> None:
    assert "symbols[0] is not usable: symbol '../x' is not valid" in problems(
        minimal(symbols=["../x"])
    )


def test_empty_symbols_is_an_error() -> None:
    assert "symbols must not be empty" in problems(minimal(symbols=[]))


def test_bad_interval_is_reported() -> None:
    message = problems(minimal(streams=["1m", "7x"]))
    assert "streams[1] is not usable: interval '7x' is not valid" in message


def test_streams_are_normalised_and_equal_spellings_are_duplicates() -> None:
    assert parse_config(minimal(streams=["1m", "60m"])).streams == ("1m", "1h")
    assert "streams[1] interval '1h' repeats streams[0]" in problems(minimal(streams=["1h", "60m"]))


def test_streams_default_to_one_minute() -> None:
    data = minimal()
    del data["streams"]
    assert parse_config(data).streams == ("1m",)


def test_indicator_interval_must_be_a_stream() -> None:
    data = minimal(indicators=[{"name": "sma", "interval": "15m", "period": 5}])
    assert "indicators[0].interval '15m' is not one of the streams ['1m', '5m']" in problems(data)


def test_unknown_calendar_is_reported_with_a_suggestion() -> None:
    message = problems(minimal(calendar="XNYQ"))
    assert (
        "calendar is not usable: unknown exchange calendar 'XNYQ' (did you mean 'XNYS'?)" in message
    )


def test_history_symbols_must_be_a_subset_of_the_run() -> None:
    data = minimal(history=[{"interval": "1d", "sessions": 20, "symbols": ["ACME", "TINY"]}])
    assert "history[0].symbols[1] 'TINY' is not one of the run's symbols" in problems(data)


def test_history_symbols_all_or_a_list() -> None:
    history = [
        {"interval": "1d", "sessions": 20},
        {"interval": "60m", "sessions": 2, "symbols": ["BOLT"]},
    ]
    config = parse_config(minimal(history=history))
    assert [(h.interval, h.symbols) for h in config.history] == [("1d", "all"), ("1h", ("BOLT",))]
    assert 'history[0].symbols must be "all"' in problems(
        minimal(history=[{**history[0], "symbols": "any"}])
    )


def test_history_sessions_must_be_positive() -> None:
    data = minimal(history=[{"interval": "1m", "sessions": 0}])
    assert "history[0].sessions must be a whole number >= 1, found integer 0" in problems(data)


def test_min_for_entry_out_of_range() -> None:
    message = problems(minimal(quality={"min_for_entry": 120}))
    assert "quality.min_for_entry must be a number from 0 to 100, found integer 120" in message


def test_indicator_period_rules() -> None:
    assert "indicators[0].period is missing (sma needs one)" in problems(
        minimal(indicators=[{"name": "sma", "interval": "1m"}])
    )
    assert "indicators[0].period is not used by vwap" in problems(
        minimal(indicators=[{"name": "vwap", "interval": "1m", "period": 3}])
    )
    assert "indicators[0].period must be a whole number >= 1, found integer 0" in problems(
        minimal(indicators=[{"name": "rsi", "interval": "1m", "period": 0}])
    )
    macd = parse_config(minimal(indicators=[{"name": "macd", "interval": "5m", "period": 9}]))
    assert macd.indicators[0].period is None


def test_indicator_params_are_checked() -> None:
    macd = {"name": "macd", "interval": "1m", "params": {"fast": 30}}
    assert "indicators[0].params.fast 30 must be less than slow 26" in problems(
        minimal(indicators=[macd])
    )
    bands = {"name": "bbands", "interval": "1m", "period": 20, "params": {"k": 0}}
    assert "indicators[0].params.k must be a number > 0, found integer 0" in problems(
        minimal(indicators=[bands])
    )
    field = {"name": "ema", "interval": "1m", "period": 5, "params": {"field": "clsoe"}}
    assert "params.field 'clsoe' is not allowed; did you mean 'close'?" in problems(
        minimal(indicators=[field])
    )


def test_historical_indicator_rules() -> None:
    bad = [{"name": "max", "field": "high", "period": "52q", "granularity": "minute"}]
    message = problems(minimal(historical_indicators=bad))
    assert "historical_indicators[0].period '52q' is not a period" in message
    assert "historical_indicators[0].granularity 'minute' is for avg only" in message


def test_output_labels_must_be_unique() -> None:
    prev = [{"name": "prev", "field": "close"}, {"name": "prev", "field": "close"}]
    assert (
        "historical_indicators[1] output name 'prev_close' repeats historical_indicators[0]"
        in problems(minimal(historical_indicators=prev))
    )
    sma = [
        {"name": "sma", "interval": "1m", "period": 5},
        {"name": "sma", "interval": "5m", "period": 5, "label": "sma_5"},
    ]
    assert "indicators[1] output name 'sma_5' repeats indicators[0]" in problems(
        minimal(indicators=sma)
    )


def test_multiple_problems_are_reported_in_one_message() -> None:
    data = minimal(
        symbls=1, symbols=["ACME", "ACME"], quality={"min_for_entry": 120}, calendar="XNYQ"
    )
    message = problems(data)
    assert "\n" not in message
    parts = message.split("; config 'x.toml': ")
    assert len(parts) == 4
    for fragment in ("symbls", "symbols[1]", "quality.min_for_entry", "calendar"):
        assert fragment in message


def test_missing_required_keys_are_all_named() -> None:
    message = problems({})
    for key in ("name", "start", "end", "symbols"):
        assert f"config 'x.toml': {key} is missing; add {key} = " in message


def test_top_level_must_be_a_table() -> None:
    assert "must hold a table of settings, found list" in problems([1, 2])


def test_config_is_deeply_frozen() -> None:
    config = load_config(SAMPLE)
    with pytest.raises(TypeError):
        config.strategy["class"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.strategy["params"]["fast"] = 1
    with pytest.raises(TypeError):
        config.indicators[3].params["fast"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.name = "x"  # type: ignore[misc]
    strategy = {"class": "m:C", "params": {"tiers": [1, {"a": [2]}]}}
    frozen = parse_config(minimal(strategy=strategy)).strategy["params"]["tiers"]
    assert isinstance(frozen, tuple)
    with pytest.raises(TypeError):
        frozen[1]["a"] = 3


def test_parse_does_not_keep_a_reference_to_the_input() -> None:
    data = minimal(strategy={"class": "m:C", "params": {"fast": 10}})
    config = parse_config(data)
    data["strategy"]["params"]["fast"] = 99
    assert config.strategy["params"]["fast"] == 10


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.yaml", "name: x", "file type '.yaml' is not supported; use a .toml or .json file"),
        ("bad.toml", 'name = "x"\nstart = \n', "config '{path}' line 2, column 9: invalid value"),
        (
            "bad.json",
            '{"name": "x",\n  "start": }',
            "config '{path}' line 2, column 12: expecting value",
        ),
        ("dup.json", '{"name": "x", "name": "y"}', "key 'name' appears twice"),
    ],
)
def test_file_errors_name_the_file_and_the_place(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path)
    assert expected.format(path=path) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; check the path"):
        load_config(tmp_path / "nope.toml")


def test_problems_in_a_file_are_prefixed_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\nstart = 2024-07-02\nend = 2024-07-03\nsymbols = ["A", "A"]\n')
    with pytest.raises(ConfigError, match=r"symbols\[1\] symbol 'A' repeats symbols\[0\]") as info:
        load_config(path)
    assert str(info.value).startswith(f"config {str(path)!r}: ")


# --- [broker] whenever present, [strategy] with its class ---------------------------


STRATEGY = {"class": "pipeline.strategies:MovingAverageCross"}


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
