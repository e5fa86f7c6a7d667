"""``pipeline run``: replay a run's sessions and report per-session figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli._common import (
    Format,
    FormatOption,
    RootOption,
    boundary,
    progress,
    render,
    resolve_root,
)

DEFAULT_CONFIG = Path("configs/sample.toml")


@boundary
def run_command(
    config: Annotated[
        Path, typer.Argument(help="Run config (TOML or JSON).", show_default=True)
    ] = DEFAULT_CONFIG,
    root: RootOption = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Pace the stream at X times market time [default: as fast as possible]."
        ),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Run the session flow of CONFIG: history, quality, derived bars, indicators, stream.

    Prints one row of figures per session; -v shows the [SESSION_FLOW] log lines.

    Example: pipeline -v run configs/sample.toml
    """
    from pipeline.config import load_config
    from pipeline.errors import ConfigError
    from pipeline.runner import Coordinator
    from pipeline.store import Store

    if speed is not None and speed <= 0:
        raise ConfigError(f"--speed {speed} is not valid: pass a number above 0, e.g. --speed 60.")
    settings = load_config(config)
    data_root = resolve_root(root if root is not None else _config_root(settings.data_root))
    coordinator = Coordinator(settings, Store(data_root))
    with progress(f"Run {settings.name}") as advance:
        report = coordinator.run(speed=speed, progress=advance)
    render(report.sessions, fmt, title=f"Run {report.run_id}: {report.seconds:.2f} s")


def _config_root(value: str | None) -> Path | None:
    return Path(value) if value else None
