"""Datetime <-> TS value conversions agree with Polars' own."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipeline import schema

MOMENTS = [
    dt.datetime(2024, 3, 10, 6, 59, 59, 999_999, tzinfo=dt.UTC),
    dt.datetime(2024, 3, 10, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
    dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_moment_conversions_match_polars(moment: dt.datetime) -> None:
    polars_value = pl.select(pl.lit(moment).cast(schema.TS)).item()
    assert pl.select(schema.moment_lit(moment)).item() == polars_value
    assert pl.select(schema.moment_lit(moment)).to_series().dtype == schema.TS
    micros = schema.moment_micros(moment)
    assert pl.Series([moment]).cast(schema.TS).dt.epoch("us").item() == micros
    assert schema.moment_of(micros) == moment


def test_moments_of_equals_moment_of_one_by_one() -> None:
    whole = np.array([0, 60_000_000, -3_155_760_000_000_000, 1_719_840_600_000_000], np.int64)
    for values in (whole, whole + 7):  # whole seconds, and not
        got = schema.moments_of(values)
        assert got == [schema.moment_of(v) for v in values.tolist()]
        assert all(m.tzinfo is dt.UTC for m in got)
