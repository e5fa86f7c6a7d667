"""Fixtures shared by every kind of test."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pipeline.importing import ImportOptions, import_files
from pipeline.store import Store

REAL_DATA_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _pipeline_logger() -> None:
    """Start each test with the ``pipeline`` logger as a library user has it.

    A CLI command sets it up (a handler on the stderr it was given, no propagation);
    run in-process by CliRunner, in a test or a module fixture, that stderr is closed
    afterwards, and a later test's ``caplog`` would see nothing.
    """
    logger = logging.getLogger("pipeline")
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Return the folder of real vendor data (``../shared/data/real`` beside the repo).

    ``PIPELINE_REAL_DATA`` overrides the location. When the folder is absent the test
    is skipped, except on CI (``CI=true``), where it fails: CI must run them.
    """
    root = Path(os.environ.get("PIPELINE_REAL_DATA", REAL_DATA_DEFAULT))
    if not root.is_dir():
        message = (
            f"real data not found at {root}: clone the shared folder beside the repo or set "
            "PIPELINE_REAL_DATA"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def spy(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store of the real SPY 1-minute bars of 2019 (eqker), imported once."""
    store = Store(tmp_path_factory.mktemp("spy") / "store")
    path = real_data / "eqker-24sym-2019" / "SPY_1min.csv"
    import_files(store, [path], ImportOptions(preset="alphavantage"))
    return store
