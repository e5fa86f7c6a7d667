"""Sweep grids: reading entries, expanding them, validating combinations, ordering rows.

Nothing here runs a backtest; `tests/integration/test_sweep.py` does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import sweep
from pipeline.config import canonical, load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "configs" / "sample.toml")
CONFIG = load_config(SOURCE)
FAST, SLOW = "strategy.params.fast", "strategy.params.slow"


def grid(*specs: str) -> list[sweep.GridEntry]:
    return [sweep.parse_grid(spec) for spec in specs]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("-3", -3),
        ("1_000", 1000),
        ("1_000.5", 1000.5),
        ("2_5e1_0", 2.5e11),
        ("1__0", "1__0"),
        ("2.5", 2.5),
        ("1e-3", 0.001),
        (".5", 0.5),
        ("true", True),
        ("False", False),
        ("5m", "5m"),
        ("next_open", "next_open"),
        ('"10"', "10"),
        ("'true'", "true"),
        ("nan", "nan"),
        (" 7 ", 7),
    ],
)
def test_value_is_typed_int_float_bool_or_text(text: str, value: object) -> None:
    parsed = sweep.parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


def test_grid_entry_holds_its_key_and_values_in_order() -> None:
    entry = sweep.parse_grid(" strategy.params.fast = 20, 5 ,10")
    assert entry == sweep.GridEntry(FAST, (20, 5, 10))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "is not KEY=V1,V2"),
        ("=5", "is not KEY=V1,V2"),
        ("strategy..fast=1", "not a dotted config key"),
        ("fast-x=1", "not a dotted config key"),
        ("fast=5,,10", "has an empty value"),
        ("fast=", "has an empty value"),
        ("fast=5,5", "listed twice"),
        ("fast=5,5.0", "listed twice"),
    ],
)
def test_malformed_grid_entry_says_how_to_write_it(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep.parse_grid(spec)


def test_quoted_values_may_hold_commas() -> None:
    entry = sweep.parse_grid("""strategy.class='a,b',"c, d",e""")
    assert entry.values == ("a,b", "c, d", "e")


def test_an_unclosed_quote_is_refused() -> None:
    with pytest.raises(ConfigError, match="quote is not closed"):
        sweep.parse_grid("""x="a,b""")


def test_a_grid_over_the_limit_is_refused_before_validation() -> None:
    entries = grid(f"{FAST}=1,2,3", f"{SLOW}=40,50")
    with pytest.raises(ConfigError, match=r"makes 6 combinations \(3 x 2\).*--max-runs 6"):
        sweep.plan(CONFIG, entries, SOURCE, limit=5)
    assert len(sweep.plan(CONFIG, entries, SOURCE, limit=6).combinations) == 6
    assert sweep.MAX_COMBINATIONS == 10_000


def test_true_and_one_are_different_values() -> None:
    assert sweep.parse_grid("x=1,true").values == (1, True)


def test_expand_is_the_cartesian_product_first_entry_slowest() -> None:
    combos = sweep.expand(grid("a=1,2", "b=x,y,z"))
    assert combos == [
        {"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "kind"),
    [("x=1,2", pa.int64()), ("x=1,2.5", pa.float64()), ("x=true,false", pa.bool_()),
     ("x=1,a", pa.string()), ("x=true,1", pa.string())],
)  # fmt: skip
def test_grid_column_type_follows_its_values(spec: str, kind: pa.DataType) -> None:
    assert sweep.parse_grid(spec).arrow_type == kind


def test_plan_validates_each_combination_into_a_canonical_config() -> None:
    plan = sweep.plan(CONFIG, grid(f"{FAST}=5,10", f"{SLOW}=30,60"), SOURCE)
    assert plan.keys == (FAST, SLOW)
    assert [dict(c.values) for c in plan.combinations] == [
        {FAST: 5, SLOW: 30}, {FAST: 5, SLOW: 60}, {FAST: 10, SLOW: 30}, {FAST: 10, SLOW: 60},
    ]  # fmt: skip
    assert all(c.error is None for c in plan.combinations)
    assert plan.combinations[2].config == canonical(CONFIG)  # the sample's own 10/30
    assert plan.combinations[1].config["strategy"]["params"] == {
        "fast": 5, "slow": 60, "interval": "5m",
    }  # fmt: skip


def test_combination_the_strategy_refuses_is_kept_with_its_error() -> None:
    plan = sweep.plan(CONFIG, grid(f"{FAST}=10,30", f"{SLOW}=30,60"), SOURCE)
    errors = [c.error for c in plan.combinations]
    assert errors[:2] == [None, None]
    assert errors[2] is not None
    assert "fast < slow" in errors[2]
    assert errors[3] is None


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([f"{FAST}=40,50"], r"--grid strategy.params.fast=40: no combination can use it"),
        ([f"{FAST}=5,abc"], r"--grid strategy.params.fast=abc: .*whole numbers"),
        ([f"{FAST}=10,50", f"{SLOW}=30,40"], r"--grid strategy.params.fast=50: .*fast=50 "),
    ],
)
def test_value_the_strategy_refuses_in_every_combination_is_refused(
    specs: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep.plan(CONFIG, grid(*specs), SOURCE)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("strategy.params.fsat=5", r"--grid strategy.params.fsat: .*did you mean 'fast'\?"),
        ("strategy.clas=x", r"did you mean 'class'\?"),
        ("stratgy.params.fast=5", r"stratgy is not a valid key; did you mean 'strategy'\?"),
        ("broker.csh=5", r"--grid broker.csh=5: .*did you mean 'cash'\?"),
        ("quality.min_for_entyr=50", r"did you mean 'min_for_entry'\?"),
        ("quality.min_for_entry=50,150", r"--grid quality.min_for_entry=150: .*0 to 100"),
        ("broker.cash=-5,1000", r"--grid broker.cash=-5: .*broker.cash"),
        ("broker.fill=next_open,closing", r"--grid broker.fill=closing: .*did you mean 'close'"),
        ("symbols.3=ACME", "name a position from 0 to 2"),
        ("name.x=1", "holds a value, not a table"),
        ("data_root=elsewhere", "use --root"),
    ],
)
def test_bad_grid_key_or_value_is_refused_naming_the_entry(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep.plan(CONFIG, grid(spec), SOURCE)


def test_values_valid_alone_but_not_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="--grid start=2024-07-08 end=2024-07-05: .*swap"):
        sweep.plan(CONFIG, grid("start=2024-07-08", "end=2024-07-05"), SOURCE)


def test_list_positions_and_keys_the_file_leaves_out_can_vary() -> None:
    plan = sweep.plan(CONFIG, grid("indicators.0.period=5,20", "broker.slippage_bps=0,5"), SOURCE)
    last = plan.combinations[-1].config
    assert last["indicators"][0]["period"] == 20
    assert last["broker"]["slippage_bps"] == 5


def test_key_given_twice_or_no_grid_or_no_strategy_is_refused() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        sweep.plan(CONFIG, grid(f"{FAST}=5", f"{FAST}=10"), SOURCE)
    with pytest.raises(ConfigError, match="at least one --grid"):
        sweep.plan(CONFIG, [], SOURCE)
    with pytest.raises(ConfigError, match=r"no \[strategy\]"):
        sweep.plan(dataclasses.replace(CONFIG, strategy={}), grid("broker.cash=1000"), SOURCE)


def test_sort_names_a_figure_or_grid_key() -> None:
    plan = sweep.plan(CONFIG, grid(f"{FAST}=5,10"), SOURCE)
    sweep.check_sort(plan, "max_drawdown")
    sweep.check_sort(plan, FAST)
    with pytest.raises(ConfigError, match="did you mean 'sharpe'"):
        sweep.check_sort(plan, "sharp")


def test_out_file_needs_a_known_suffix() -> None:
    sweep.check_out(Path("sweep.parquet"))
    with pytest.raises(ConfigError, match=r"\.csv, \.json, \.parquet"):
        sweep.check_out(Path("sweep.txt"))


def test_sort_puts_missing_last_and_breaks_ties_by_grid_values() -> None:
    table = pa.table({
        "a": [2, 1, 1, 2, 1],
        "b": ["y", "y", "x", "x", "z"],
        "sharpe": [0.5, None, 0.5, 1.5, -1.0],
    })  # fmt: skip
    down = sweep.sort_table(table, "sharpe", ["a", "b"])
    assert down.to_pydict()["sharpe"] == [1.5, 0.5, 0.5, -1.0, None]
    assert list(zip(down["a"].to_pylist(), down["b"].to_pylist(), strict=True)) == [
        (2, "x"), (1, "x"), (2, "y"), (1, "z"), (1, "y"),
    ]  # fmt: skip
    up = sweep.sort_table(table, "sharpe", ["a", "b"], ascending=True)
    assert up["sharpe"].to_pylist() == [-1.0, 0.5, 0.5, 1.5, None]


def test_sort_by_a_figure_no_row_has_keeps_grid_order() -> None:
    table = pa.table({"a": [3, 1, 2], "error": ["x", "y", "z"]})
    assert sweep.sort_table(table, "sharpe", ["a"])["a"].to_pylist() == [1, 2, 3]
