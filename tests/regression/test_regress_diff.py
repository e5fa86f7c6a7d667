"""The regression diff on small inline frames: what counts as a change, and how it reads."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline import regress

T = [dt.datetime(2024, 7, 8, 14, m, tzinfo=dt.UTC) for m in range(6)]
KEY = regress.KEYS["trades"]


def trades(**columns: list[object]) -> pl.DataFrame:
    base: dict[str, list[object]] = {
        "symbol": ["ACME", "ACME", "BOLT"],
        "entry_ts": [T[0], T[1], T[0]],
        "exit_ts": [T[2], T[3], T[4]],
        "pnl": [10.0, -5.0, 2.5],
        "bars_held": [2, 2, 4],
        "side": ["long", "long", "long"],
    }
    return pl.DataFrame(base | columns, schema_overrides={"bars_held": pl.UInt32})


def test_equal_tables_have_an_empty_diff() -> None:
    assert regress.diff_table("trades", trades(), trades(), KEY).empty


def test_floats_within_1e9_relative_are_equal_and_beyond_are_not() -> None:
    close = trades(pnl=[10.0 * (1 + 5e-10), -5.0, 2.5])
    assert regress.diff_table("trades", trades(), close, KEY).empty
    far = trades(pnl=[10.0 * (1 + 5e-9), -5.0, 2.5])
    (row,) = regress.diff_table("trades", trades(), far, KEY).changed
    assert row.key == {"symbol": "ACME", "entry_ts": T[0]}
    assert [c.name for c in row.changes] == ["pnl"]


def test_integers_strings_and_timestamps_compare_exactly() -> None:
    new = trades(
        exit_ts=[T[2], T[3] + dt.timedelta(microseconds=1), T[4]],
        bars_held=[2, 3, 4],
        side=["long", "long", "short"],
    )
    diff = regress.diff_table("trades", trades(), new, KEY)
    changed = {(r.key["symbol"], r.key["entry_ts"]): r.changes for r in diff.changed}
    assert [c.name for c in changed["ACME", T[1]]] == ["exit_ts", "bars_held"]
    assert [(c.name, c.old, c.new) for c in changed["BOLT", T[0]]] == [("side", "long", "short")]


def test_nulls_equal_nulls_and_differ_from_values() -> None:
    old = trades(pnl=[None, 1.0, None])
    new = trades(pnl=[None, None, 3.0])
    diff = regress.diff_table("trades", old, new, KEY)
    assert [(c.old, c.new) for r in diff.changed for c in r.changes] == [(1.0, None), (None, 3.0)]


def test_trades_that_appear_vanish_or_move_are_told_apart() -> None:
    new = trades(entry_ts=[T[0], T[5], T[0]], exit_ts=[T[2], T[5], T[5]])
    diff = regress.diff_table("trades", trades(), new, KEY)
    assert [r["entry_ts"] for r in diff.appeared] == [T[5]]
    assert [r["entry_ts"] for r in diff.vanished] == [T[1]]
    (moved,) = diff.changed
    assert moved.key == {"symbol": "BOLT", "entry_ts": T[0]}
    assert [(c.name, c.old, c.new) for c in moved.changes] == [("exit_ts", T[4], T[5])]


def test_rows_sharing_a_key_are_matched_in_order() -> None:
    old = trades(symbol=["ACME"] * 3, entry_ts=[T[0]] * 3, pnl=[1.0, 2.0, 3.0])
    new = trades(symbol=["ACME"] * 3, entry_ts=[T[0]] * 3, pnl=[1.0, 2.5, 3.0])
    (row,) = regress.diff_table("trades", old, new, KEY).changed
    assert row.key == {"symbol": "ACME", "entry_ts": T[0], "occurrence": 1}
    assert [(c.old, c.new) for c in row.changes] == [(2.0, 2.5)]


def test_column_changes_are_noted_not_compared() -> None:
    new = trades().drop("side").with_columns(pl.col("bars_held").cast(pl.Int64), fee=0.0)
    diff = regress.diff_table("trades", trades(), new, KEY)
    assert diff.columns == (
        "column 'side' vanished",
        "column 'fee' appeared",
        "column 'bars_held' was UInt32, is Int64",
    )
    assert not diff.changed


def test_summary_diff_gives_old_new_and_delta_and_ignores_timings() -> None:
    old = {"trades": 6, "sharpe": 1.5, "fill": "next_open", "seconds": 1.0, "cagr": None}
    new = {"trades": 7, "sharpe": 1.5 * (1 + 1e-12), "fill": "close", "seconds": 9.0, "cagr": 0.1}
    changes = {c.name: c for c in regress.diff_summary(old, new)}
    assert sorted(changes) == ["cagr", "fill", "trades"]
    assert changes["trades"].delta == 1.0
    assert changes["fill"].delta is None
    assert changes["cagr"].delta is None
    assert regress.diff_summary({"x": True}, {"x": 1}) == (regress.Change("x", True, 1),)


def test_a_figure_one_side_lacks_reads_absent_not_null() -> None:
    old, new = {"cagr": None, "sharpe": 1.5}, {"cagr": None, "sortino": None}
    changes = {c.name: c for c in regress.diff_summary(old, new)}
    assert sorted(changes) == ["sharpe", "sortino"]
    assert changes["sharpe"].new is regress.ABSENT
    assert changes["sortino"].old is regress.ABSENT
    diff = regress.CaseDiff("demo", Path("cases/demo"), summary=tuple(changes.values()))
    text = diff.describe()
    assert "    sharpe   1.5 -> absent" in text.splitlines()
    assert "    sortino  absent -> null" in text.splitlines()
    found = {c["name"]: c for c in json.loads(json.dumps(diff.to_dict()))["summary"]}
    assert found["sharpe"] == {"name": "sharpe", "old": 1.5, "new": None, "delta": None} | {
        "absent": "new"
    }
    assert found["sortino"]["absent"] == "old"


def test_describe_reads_as_a_diff_and_to_dict_is_json_ready() -> None:
    new = trades(entry_ts=[T[0], T[5], T[0]], pnl=[12.0, -5.0, 2.5])
    table = regress.diff_table("trades", trades(), new, KEY)
    summary = (regress.Change("total_return", 0.01, 0.02),)
    diff = regress.CaseDiff("demo", Path("cases/demo"), summary=summary, tables=(table,))
    text = diff.describe()
    assert text.splitlines()[0] == "FAIL  demo (cases/demo)"
    assert "total_return  0.01 -> 0.02 (+0.01)" in text
    assert "trades: 1 appeared, 1 vanished, 1 changed (rows matched by symbol, entry_ts)" in text
    assert "    + ACME 2024-07-08 14:05:00Z: exit_ts=2024-07-08 14:03:00Z" in text
    assert "    ~ ACME 2024-07-08 14:00:00Z: pnl 10 -> 12 (+2)" in text
    data = diff.to_dict()
    assert data["ok"] is False
    assert data["tables"]["trades"]["appeared"][0]["entry_ts"] == "2024-07-08T14:05:00+00:00"
    assert data["summary"] == [{"name": "total_return", "old": 0.01, "new": 0.02, "delta": 0.01}]


def test_long_diffs_are_cut_in_the_text_only() -> None:
    old = pl.DataFrame({"session": [dt.date(2024, 7, d) for d in range(1, 31)], "equity": 1.0})
    new = old.with_columns(equity=2.0)
    table = regress.diff_table("equity", old, new, ("session",))
    assert len(table.changed) == 30
    text = regress.CaseDiff("demo", Path("x"), tables=(table,)).describe(limit=5)
    assert "... and 25 more (--format json shows all)" in text


@pytest.mark.parametrize("missing", [("trades.parquet",), regress.GOLDEN_FILES])
def test_missing_goldens_fail_with_the_update_command(missing: tuple[str, ...]) -> None:
    diff = regress.CaseDiff("demo", Path("x"), missing=missing)
    assert not diff.ok
    assert "pipeline regress demo --update" in diff.describe()


def wide_diff() -> regress.CaseDiff:
    """A failing case with a long path, missing goldens, long rows and long changes."""
    new = trades(entry_ts=[T[0], T[5], T[0]], pnl=[12.0, -5.0, 2.5], side=["long"] * 3)
    new = new.with_columns(reason=pl.lit("insufficient cash: order needs 49860.64, cash 1.0"))
    table = regress.diff_table("trades", trades().with_columns(reason=pl.lit("")), new, KEY)
    path = Path("/a/folder/with/a/rather/long/name/that/goes/on/and/on/for/ever/cases/demo")
    summary = (regress.Change("a_figure_with_a_long_name", 0.123456789012, 0.98765432101),)
    return regress.CaseDiff("demo", path, regress.GOLDEN_FILES, summary, (table,))


@pytest.mark.parametrize("width", [80, 60])
def test_describe_fits_the_width_and_breaks_between_items(width: int) -> None:
    lines = wide_diff().describe(width=width).splitlines()
    assert max(len(line) for line in lines) <= width
    assert lines[0].startswith("FAIL  demo")
    assert all(line.startswith("  ") for line in lines[1:])  # continued lines are indented
    assert any(line.endswith("pipeline regress demo --update") for line in lines)
    assert sum("exit_ts=2024-07-08 14:03:00Z," in line for line in lines) == 2  # items whole


def test_describe_at_80_columns_puts_the_long_path_and_items_on_lines_of_their_own() -> None:
    lines = wide_diff().describe().splitlines()
    assert lines[:2] == ["FAIL  demo", f"    ({wide_diff().path})"]
    assert "  check the run, then write them with: pipeline regress demo --update" in lines
    assert "    + ACME 2024-07-08 14:05:00Z: exit_ts=2024-07-08 14:03:00Z, pnl=-5," in lines
    assert "        reason='insufficient cash: order needs 49860.64, cash 1.0'" in lines


def test_update_text_says_same_or_what_was_rewritten() -> None:
    same = regress.CaseDiff("demo", Path("x"))
    assert same.describe(update=True) == "same  demo"
    assert same.describe() == "ok    demo"
    lines = wide_diff().describe(update=True).splitlines()
    assert lines[:2] == ["updated demo", f"    ({wide_diff().path})"]
    assert lines[2].startswith("  wrote trades.parquet, fills.parquet,")
    assert not any("--update" in line for line in lines)  # nothing left to write
    assert max(len(line) for line in lines) <= 80


def test_row_counts_trades_figures_tables_and_missing_goldens() -> None:
    row = wide_diff().to_row()
    assert row == {
        "case": "demo",
        "ok": False,
        "trades_appeared": 1,
        "trades_vanished": 1,
        "trades_changed": 2,  # pnl and reason of one, reason of the other
        "figures_changed": 1,
        "tables_changed": 1,
        "goldens_missing": len(regress.GOLDEN_FILES),
        "error": "",
    }
    equity = regress.TableDiff("equity", ("session",), changed=(regress.RowChange({}, ()),))
    quiet = regress.CaseDiff("x", Path("x"), tables=(equity,)).to_row()
    assert (quiet["ok"], quiet["trades_changed"], quiet["tables_changed"]) == (False, 0, 1)
