"""A 2x2 sweep of the sample crossover: the same table in-process, in a process pool and on Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest

from pipeline import results, sweep
from pipeline.catalog import Catalog
from pipeline.config import canonical, load_config
from pipeline.engine import backtest
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "data"
CONFIG = load_config(REPO / "configs" / "sample.toml")
FAST, SLOW = "strategy.params.fast", "strategy.params.slow"
# 30/30 is refused by the crossover: three runs and one error row
PLAN = sweep.plan(CONFIG, [sweep.parse_grid(f"{FAST}=10,30"), sweep.parse_grid(f"{SLOW}=30,60")])


@pytest.fixture(scope="module")
def in_process() -> tuple[pa.Table, list[tuple[int, int]]]:
    """The sweep run in this process, and the progress calls it made."""
    calls: list[tuple[int, int]] = []
    table = sweep.run(
        PLAN, ROOT, workers=1, progress=lambda done, total: calls.append((done, total))
    )
    return table, calls


@pytest.fixture(scope="module")
def ray_module() -> Iterator[ModuleType]:
    """A local Ray of 2 CPUs for this module, shut down after it."""
    try:
        import ray
    except ImportError:
        message = "Ray is not installed: pip install -e '.[ray]' (the test extra includes it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run the Ray test")
        pytest.skip(message)
    with sweep.ray_session(workers=2):
        yield ray


def test_one_row_per_combination_sorted_by_sharpe_refused_last(
    in_process: tuple[pa.Table, list[tuple[int, int]]],
) -> None:
    table, _ = in_process
    rows = table.select([FAST, SLOW, "sharpe", "trades"]).to_pylist()
    assert [(r[FAST], r[SLOW]) for r in rows] == [(30, 60), (10, 60), (10, 30), (30, 30)]
    sharpes = [r["sharpe"] for r in rows]
    assert sharpes[:3] == sorted(sharpes[:3], reverse=True)
    assert sharpes[3] is None
    errors = table["error"].to_pylist()
    assert errors[:3] == [None, None, None]
    assert "fast < slow" in errors[3]
    assert table.column_names[:2] == [FAST, SLOW]
    assert table.column_names[-1] == "error"
    assert set(sweep.FIGURES) <= set(table.column_names)
    assert not set(sweep.TIMINGS) & set(table.column_names)


def test_row_equals_the_summary_of_a_plain_backtest(
    in_process: tuple[pa.Table, list[tuple[int, int]]],
) -> None:
    table, _ = in_process
    store = Store(ROOT)
    catalog = Catalog()
    report, frames = backtest(CONFIG, store, catalog)
    catalog.close()
    figures = results.summary(frames, report, CONFIG, run_id=results.run_id(CONFIG, store))
    row = next(r for r in table.to_pylist() if (r[FAST], r[SLOW]) == (10, 30))
    expected = {k: v for k, v in figures.items() if k not in sweep.TIMINGS}
    expected["symbols"] = ",".join(expected["symbols"])
    assert {k: row[k] for k in expected} == expected


def test_progress_counts_completed_combinations(
    in_process: tuple[pa.Table, list[tuple[int, int]]],
) -> None:
    _, calls = in_process
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


@pytest.mark.slow
def test_process_pool_gives_the_same_table(
    in_process: tuple[pa.Table, list[tuple[int, int]]],
) -> None:
    table = sweep.run(PLAN, ROOT, workers=2)
    assert table.equals(in_process[0])


@pytest.mark.slow
def test_ray_gives_the_same_table(
    in_process: tuple[pa.Table, list[tuple[int, int]]], ray_module: ModuleType
) -> None:
    calls: list[tuple[int, int]] = []
    table = sweep.run(PLAN, ROOT, use_ray=True, progress=lambda d, t: calls.append((d, t)))
    assert table.equals(in_process[0])
    assert ray_module.is_initialized()  # the module's Ray was used, not shut down
    assert calls[-1] == (3, 3)


def test_failed_run_is_a_row_with_its_error(tmp_path: Path) -> None:
    row = sweep.run_combination(canonical(CONFIG), tmp_path)  # an empty store
    assert row.column_names == ["error"]
    assert "No stored interval" in row["error"][0].as_py()
