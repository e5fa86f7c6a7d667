"""``pipeline --help`` is instant: the CLI imports no heavy library before a command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "duckdb", "pyarrow", "numpy", "pandas", "exchange_calendars", "matplotlib")

# Prints the heavy top-level packages loaded after the given code ran, as JSON.
LOADED = (
    "import json, sys\n"
    "{code}\n"
    f"heavy = {HEAVY!r}\n"
    "print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))))\n"
)

# Renders the help of the app and of every command, as `pipeline CMD --help` does.
EVERY_HELP = """
import typer
from pipeline.cli import app

def paths(command, prefix=()):
    subs = getattr(command, "commands", {})
    yield prefix
    for name, sub in subs.items():
        yield from paths(sub, (*prefix, name))

for args in list(paths(typer.main.get_command(app))):
    try:
        app([*args, "--help"], prog_name="pipeline")
    except SystemExit as exc:
        assert exc.code == 0, (args, exc.code)
"""


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, *args, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )


def test_importing_the_cli_loads_no_heavy_library() -> None:
    out = python(LOADED.format(code="import pipeline.cli"))
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_importing_the_package_loads_no_heavy_library() -> None:
    out = python(LOADED.format(code="import pipeline, pipeline.errors, pipeline.cli._common"))
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_help_of_every_command_loads_no_heavy_library() -> None:
    out = python(LOADED.format(code=EVERY_HELP))
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_import_time_of_the_cli_is_small() -> None:
    # -X importtime lists every module imported with its cumulative microseconds.
    out = python("import pipeline.cli", "-X", "importtime")
    modules = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_help_runs_in_under_half_a_second() -> None:
    command = [sys.executable, "-m", "pipeline", "--help"]
    times = []
    for _ in range(3):  # best of three: the machine is shared
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, cwd=REPO)
        times.append(time.perf_counter() - started)
    assert min(times) < 0.5, times
