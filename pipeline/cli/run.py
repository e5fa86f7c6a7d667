"""``pipeline run``: backtest a config, write its run folder, print the summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli._common import (
    Format,
    FormatOption,
    RootOption,
    boundary,
    note,
    progress,
    render,
    run_root,
)

if TYPE_CHECKING:
    import datetime as dt

    from pipeline.stream import Step, Subscriber

DEFAULT_CONFIG = Path("configs/sample.toml")
DEFAULT_RUNS = Path("runs")

RunsOption = Annotated[
    Path,
    typer.Option("--runs", help="Folder of run folders (runs/<run_id>/).", show_default=True),
]


@boundary
def run_command(
    config: Annotated[
        Path, typer.Argument(help="Run config (TOML or JSON).", show_default=True)
    ] = DEFAULT_CONFIG,
    root: RootOption = None,
    runs: RunsOption = DEFAULT_RUNS,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Pace the stream at X times market time (default: full speed)."
        ),
    ] = None,
    per_session: Annotated[
        bool,
        typer.Option("--sessions", help="Print one row of figures per session, not the summary."),
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Backtest CONFIG: replay its sessions, trade its strategy, save the run.

    Prints the summary figures (total return, Sharpe, max drawdown, ...) and
    writes runs/<run_id>/: the config, the Parquet tables, summary.json, a
    chart and an HTML report. --sessions prints one row per session instead.
    A config without a strategy only replays the session flow and prints one
    row of figures per session. -v shows the SESSION_FLOW log lines.

    Example: pipeline -v run configs/sample.toml --runs runs
    """
    from pipeline.config import load_config
    from pipeline.errors import ConfigError
    from pipeline.store import Store

    if speed is not None and not speed > 0:  # NaN too
        raise ConfigError(f"--speed {speed} is not valid: pass a number above 0, e.g. --speed 60.")
    settings = load_config(config)
    store = Store(run_root(root, settings.data_root, config))
    if not settings.strategy:
        _flow_only(settings, store, speed, fmt)
        return
    from pipeline import results
    from pipeline.catalog import get_catalog
    from pipeline.engine import backtest

    _check_runs_folder(runs)
    rid = results.run_id(settings, store)
    catalog = get_catalog()
    before = catalog.table("sessions").height
    with progress(f"Run {settings.name}") as advance:
        watchers: tuple[Subscriber, ...] = (_SessionProgress(settings, advance),)
        if speed is not None:
            watchers = (_Pacer(speed), *watchers)
        report, frames = backtest(settings, store, catalog, subscribers=watchers)
        advance(report.sessions.height, report.sessions.height)
    sessions = catalog.table("sessions").slice(before)  # the rows this run appended
    figures = results.summary(frames, report, settings, run_id=rid, sessions=sessions)
    folder = results.write_run(runs, settings, frames, figures, sessions)
    note(f"Wrote {folder}")
    if per_session:
        render(report.sessions, fmt, title=f"Run {rid}: {report.seconds:.2f} s")
    else:
        render_summary(figures, fmt)


def _check_runs_folder(runs: Path) -> None:
    """Raise `ConfigError` unless run folders can be written under `runs` (made if missing)."""
    import tempfile

    from pipeline.errors import ConfigError

    if runs.exists() and not runs.is_dir():
        raise ConfigError(
            f"--runs {runs} is a file, not a folder: pass the folder that holds the run "
            "folders, e.g. --runs runs."
        )
    try:
        runs.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(dir=runs, prefix=".check-").cleanup()  # made, then removed
    except OSError as exc:
        raise ConfigError(
            f"--runs {runs} cannot hold run folders ({exc.strerror or exc}): pass a folder "
            "you can write to, e.g. --runs runs."
        ) from exc


def render_summary(figures: dict[str, Any], fmt: Format) -> None:
    """Print a summary dict: a JSON object, or two columns (figure, value) as a table or CSV.

    The table rounds values for reading; CSV keeps them exact (nested ones as JSON).
    """
    import json
    import sys

    import polars as pl

    if fmt is Format.json:
        sys.stdout.write(json.dumps(figures, sort_keys=True) + "\n")
        return
    if fmt is Format.csv:
        values = [_exact(v) for v in figures.values()]
    else:
        from pipeline.report import format_value

        values = [format_value(v) for v in figures.values()]
    rows = pl.DataFrame(
        {"figure": list(figures), "value": values}, schema={"figure": pl.String, "value": pl.String}
    )
    render(rows, fmt, title=f"Run {figures.get('run_id', '')}")


def _exact(value: object) -> str:
    """Return a summary value as exact text: JSON for numbers, booleans and nesting."""
    import json

    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _flow_only(settings: Any, store: Any, speed: float | None, fmt: Format) -> None:
    from pipeline.runner import Coordinator

    coordinator = Coordinator(settings, store)
    with progress(f"Run {settings.name}") as advance:
        report = coordinator.run(speed=speed, progress=advance)
    render(report.sessions, fmt, title=f"Run {report.run_id}: {report.seconds:.2f} s")


class _SessionProgress:
    """A stream subscriber that advances a progress bar when a new session starts streaming."""

    def __init__(self, settings: Any, advance: Callable[[int, int], None]) -> None:
        from pipeline import calendar

        days = calendar.sessions(settings.calendar, settings.start, settings.end)
        self._closes: list[dt.datetime] = days.get_column("close").to_list()
        self._advance = advance
        self._done = 0
        self._close: dt.datetime | None = None

    def __call__(self, step: Step) -> None:
        self._seen(step.clock)

    def _seen(self, clock: dt.datetime) -> None:
        if self._close is not None and clock <= self._close:
            return
        while self._done < len(self._closes) and clock > self._closes[self._done]:
            self._done += 1
        if self._done < len(self._closes):
            self._close = self._closes[self._done]
        self._advance(self._done, len(self._closes))

    # It needs no step on its own: the stream may hand steps over at once (`QuietSubscriber`).

    def takes_quiet_steps(self) -> bool:
        return True

    def quiet_until(
        self,
        clocks: Sequence[dt.datetime],
        ends: Sequence[int],  # noqa: ARG002 (the protocol's)
        k: int,  # noqa: ARG002
    ) -> int:
        return len(clocks)

    def on_quiet(
        self,
        clocks: Sequence[dt.datetime],
        ends: Sequence[int],  # noqa: ARG002 (the protocol's)
        k: int,  # noqa: ARG002
        j: int,
        start: int,  # noqa: ARG002
    ) -> None:
        self._seen(clocks[j - 1])


class _Pacer:
    """A stream subscriber that sleeps between timestamps: `speed` times market time."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._last: dt.datetime | None = None

    def __call__(self, step: Step) -> None:
        import time

        gap = (step.clock - self._last).total_seconds() if self._last is not None else 0.0
        self._last = step.clock
        if 0.0 < gap < 6 * 3600:  # not across the night
            time.sleep(gap / self._speed)
