"""What the CLI tests share: the argument path of every leaf command, the one-line error check."""

from __future__ import annotations

import typer
from click.testing import Result

from pipeline.cli import app


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
