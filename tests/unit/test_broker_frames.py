"""The broker's record tables, built column by column, equal Polars' own row construction."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline._broker_models import EQUITY, FILLS, ORDERS, POSITIONS, TRADES, frame

T = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.UTC)
NY = dt.timezone(dt.timedelta(hours=-5))


def _value(dtype: pl.DataType, i: int) -> object:
    if isinstance(dtype, pl.Datetime):
        # another zone, microseconds, before the epoch: all the same instants to Polars
        return [
            T,
            T.astimezone(NY),
            T + dt.timedelta(microseconds=7),
            dt.datetime(1969, 12, 31, 23, 59, tzinfo=dt.UTC),
        ][i % 4]
    if dtype == pl.String:
        return f"s{i}"
    if dtype == pl.Boolean:
        return i % 2 == 0
    if dtype.is_integer():
        return i
    return [1.5, 2, -0.1, float("inf")][i % 4]  # an int in a float column too


@pytest.mark.parametrize("shape", [ORDERS, FILLS, TRADES, POSITIONS, EQUITY])
def test_frame_equals_row_construction(shape: pl.Schema) -> None:
    rows = [tuple(_value(d, i + j) for j, d in enumerate(shape.values())) for i in range(8)]
    rows.append(tuple(None for _ in shape))  # nulls in every column
    want = pl.DataFrame(rows, schema=dict(shape), orient="row")
    assert_frame_equal(frame(rows, shape), want)


def test_empty_and_ragged_rows() -> None:
    assert frame([], FILLS).schema == FILLS
    with pytest.raises(ValueError, match="every row must hold"):
        frame([("r", 1)], FILLS)
