"""The regression diff with infinities and NaN: 1e-9 relative holds only between finite floats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from pipeline import regress

INF, NAN = math.inf, math.nan


def diff_of(old: float | None, new: float | None) -> regress.TableDiff:
    schema = {"session": pl.Int64, "equity": pl.Float64}
    before = pl.DataFrame({"session": [1], "equity": [old]}, schema=schema)
    after = pl.DataFrame({"session": [1], "equity": [new]}, schema=schema)
    return regress.diff_table("equity", before, after, ("session",))


@pytest.mark.parametrize(("old", "new"), [(INF, 1.0), (1.0, INF), (INF, -INF), (-INF, 1e300)])
def test_an_infinity_in_a_golden_table_differs_from_any_other_value(old: float, new: float) -> None:
    (row,) = diff_of(old, new).changed
    assert [(c.old, c.new) for c in row.changes] == [(old, new)]
    assert regress.diff_summary({"x": old}, {"x": new})  # the summary already said so


@pytest.mark.parametrize(("old", "new"), [(INF, INF), (-INF, -INF), (NAN, NAN), (None, None)])
def test_the_same_infinity_nan_or_null_is_no_change(old: float | None, new: float | None) -> None:
    assert diff_of(old, new).empty


def test_a_change_from_or_to_a_non_finite_value_has_no_delta_and_gives_valid_json() -> None:
    diff = regress.CaseDiff(
        "demo",
        Path("cases/demo"),
        summary=(regress.Change("profit_factor", NAN, 1.5),),
        tables=(diff_of(1.0, INF),),
    )
    data = json.loads(json.dumps(diff.to_dict(), allow_nan=False))  # no NaN or Infinity
    assert data["summary"][0]["delta"] is None
    assert data["tables"]["equity"]["changed"][0]["changes"][0]["delta"] is None
    text = diff.describe()
    assert "profit_factor  nan -> 1.5\n" in text + "\n"
    assert "nan)" not in text
    assert "inf)" not in text
