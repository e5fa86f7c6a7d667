"""The same config on the same store gives the same results whatever the time zone or threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_sample(tz: str, runs: Path, threads: int | None = None) -> list[dict[str, object]]:
    env = {**os.environ, "TZ": tz}
    if threads is not None:
        env["POLARS_MAX_THREADS"] = str(threads)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(REPO / "configs" / "sample.toml"),
            "--root",
            str(REPO / "data"),
            "--sessions",
            "--runs",
            str(runs),
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=REPO,
    )
    rows = json.loads(out.stdout)
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.slow
def test_run_is_identical_in_any_process_time_zone(tmp_path: Path) -> None:
    utc = run_sample("UTC", tmp_path)
    assert len(utc) == 6
    assert run_sample("America/New_York", tmp_path) == utc
    assert run_sample("Asia/Tokyo", tmp_path) == utc


@pytest.mark.slow
def test_run_is_identical_with_one_polars_thread(tmp_path: Path) -> None:
    assert run_sample("UTC", tmp_path, threads=1) == run_sample("UTC", tmp_path, threads=2)
