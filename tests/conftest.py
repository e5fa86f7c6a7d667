"""Fixtures shared by every kind of test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


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
