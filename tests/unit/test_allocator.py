"""Importing pipeline before Polars gives Polars' allocator the batch setting, unless one is set."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import ALLOCATOR

SHOW = "import pipeline, polars, os; print(os.environ['_RJEM_MALLOC_CONF'])"


def _conf(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_pipeline_first_sets_the_allocator_polars_reads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # Polars puts its defaults first and the environment's value after: the last one wins.
    assert _conf(env).endswith("," + ALLOCATOR)


def test_a_setting_already_in_the_environment_is_kept() -> None:
    env = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:1"}
    conf = _conf(env)
    assert conf.endswith(",dirty_decay_ms:1")
    assert ALLOCATOR not in conf
