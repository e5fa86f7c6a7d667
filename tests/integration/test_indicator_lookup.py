"""The catalog's indicator lookup (an index over the session's values) equals a table filter."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl

from pipeline.catalog import Catalog
from pipeline.config import load_config
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.stream import Step

REPO = Path(__file__).resolve().parents[2]
CONFIG = dataclasses.replace(
    load_config(REPO / "configs" / "sample.toml"),
    start=dt.date(2024, 7, 2),
    end=dt.date(2024, 7, 3),
    strategy={},
)


def reference(table: pl.DataFrame, key: tuple[str, str, str], clock: dt.datetime) -> float | None:
    """The latest value of `key` visible at `clock`, by filtering the whole table."""
    symbol, name, interval = key
    rows = table.filter(
        pl.col("symbol").cast(pl.String) == symbol,
        name=name,
        interval=interval,
    ).filter(pl.col("available_at") <= clock)
    if rows.is_empty():
        return None
    value = rows.sort("ts").get_column("value")[-1]
    return None if value is None else float(value)


def test_indicator_lookup_equals_a_filter_of_the_table_at_every_checked_step() -> None:
    catalog = Catalog()
    checked: list[int] = []

    def check(step: Step) -> None:
        if len(checked) % 29:  # every 29th step (and the first)
            checked.append(0)
            return
        table = catalog.table("indicators")
        keys = table.select(pl.col("symbol").cast(pl.String), "name", "interval").unique().rows()
        for key in keys:
            assert catalog.get_historical_indicator(*key) == reference(table, key, step.clock), key
        checked.append(len(keys))

    try:
        Coordinator(CONFIG, Store(REPO / "data"), catalog).run([check])
    finally:
        catalog.close()
    assert sum(1 for n in checked if n) > 20
    assert max(checked) > 30  # session values of every indicator and symbol were compared
