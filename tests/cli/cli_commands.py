"""What the CLI tests share: command paths, the one-line error check, a sample sweep's arguments."""

from __future__ import annotations

from pathlib import Path

import typer
from click.testing import Result

from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]


def command_paths(command: object = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the argument path of every leaf command: ("data", "list"), ("run",), ..."""
    command = typer.main.get_command(app) if command is None else command
    subs = getattr(command, "commands", None)
    if not subs:
        return [prefix]
    return [p for name, sub in subs.items() for p in command_paths(sub, (*prefix, name))]


def one_line_error(result: Result, *parts: str) -> str:
    """Assert `result` failed with one ``error:`` line holding each of `parts`; return it."""
    assert result.exit_code == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0]
    return lines[0]


def sweep_args(*args: str) -> list[str]:
    """Return the arguments of an in-process sweep of the sample config over the sample store."""
    config, store = REPO / "configs" / "sample.toml", REPO / "data"
    return ["sweep", str(config), "--root", str(store), "--workers", "1", *args]
