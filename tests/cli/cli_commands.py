"""What the CLI tests share: the argument path of every leaf command."""

from __future__ import annotations

import typer

from pipeline.cli import app


def command_paths(command: object = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the argument path of every leaf command: ("data", "list"), ("run",), ..."""
    command = typer.main.get_command(app) if command is None else command
    subs = getattr(command, "commands", None)
    if not subs:
        return [prefix]
    return [p for name, sub in subs.items() for p in command_paths(sub, (*prefix, name))]
