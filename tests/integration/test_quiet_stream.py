"""The stream hands quiet steps over at once only when every subscriber takes them.

`QuietSubscriber`s name the steps they must see on their own; the stream reveals the
steps between those together (the catalog's cursor at the last one's end) and calls
``on_quiet`` on each. One plain subscriber, pacing or DEBUG step lines bring back one
call per step for all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pipeline.catalog import Catalog
from pipeline.config import parse_config
from pipeline.runner import Coordinator
from pipeline.store import Store
from pipeline.stream import QuietSubscriber, Step, Subscriber

SAMPLE = Store(Path(__file__).resolve().parents[2] / "data")
CONFIG = parse_config(
    {
        "name": "quiet",
        "start": "2024-07-02",
        "end": "2024-07-02",
        "symbols": ["ACME", "BOLT"],
        "streams": ["1m", "5m"],
    }
)


class Quiet:
    """Sees steps `needs` (indices within the session) on its own; records what it got."""

    def __init__(self, catalog: Catalog, needs: Sequence[int]) -> None:
        self.catalog, self.needs = catalog, sorted(needs)
        self.alone: list[dt.datetime] = []
        self.spans: list[tuple[dt.datetime, dt.datetime]] = []
        self.all: list[dt.datetime] = []

    def __call__(self, step: Step) -> None:
        self.alone.append(step.clock)
        self.all.append(step.clock)

    def takes_quiet_steps(self) -> bool:
        return True

    def quiet_until(self, clocks: Sequence[dt.datetime], ends: Sequence[int], k: int) -> int:  # noqa: ARG002
        return next((i for i in self.needs if i >= k), len(clocks))

    def on_quiet(
        self, clocks: Sequence[dt.datetime], ends: Sequence[int], k: int, j: int, start: int
    ) -> None:
        seen = self.catalog.table("session_bars").height
        assert seen == ends[j - 1]  # the catalog already shows the span's rows
        assert start == (ends[k - 1] if k else 0)
        self.spans.append((clocks[k], clocks[j - 1]))
        self.all.extend(clocks[k:j])


def _run(*factories: Callable[[Catalog], Subscriber]) -> tuple[Catalog, list[Subscriber]]:
    catalog = Catalog()
    subscribers = [make(catalog) for make in factories]
    Coordinator(CONFIG, SAMPLE, catalog).run(subscribers)
    return catalog, subscribers


def _clocks(catalog: Catalog) -> list[dt.datetime]:
    times = catalog.table("session_bars").get_column("available_at").unique(maintain_order=True)
    return times.to_list()


def test_steps_between_the_ones_asked_for_come_at_once() -> None:
    catalog, (first, second) = _run(lambda c: Quiet(c, [5, 9]), lambda c: Quiet(c, [7]))
    assert isinstance(first, Quiet)
    assert isinstance(second, Quiet)
    assert isinstance(first, QuietSubscriber)
    clocks = _clocks(catalog)
    assert first.alone == second.alone == [clocks[5], clocks[7], clocks[9]]
    assert (
        first.spans
        == second.spans
        == [
            (clocks[0], clocks[4]),
            (clocks[6], clocks[6]),
            (clocks[8], clocks[8]),
            (clocks[10], clocks[-1]),
        ]
    )
    assert first.all == second.all == clocks  # every step once, in order
    catalog.close()


def test_a_plain_subscriber_brings_back_every_step() -> None:
    seen: list[Step] = []
    catalog, (quiet, _) = _run(lambda c: Quiet(c, [5]), lambda _: seen.append)
    assert isinstance(quiet, Quiet)
    assert quiet.spans == []
    assert quiet.alone == [s.clock for s in seen] == _clocks(catalog)
    catalog.close()


def test_debug_step_lines_bring_back_every_step(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipeline.flow"):
        catalog, (quiet,) = _run(lambda c: Quiet(c, [5]))
    assert isinstance(quiet, Quiet)
    assert quiet.spans == []
    assert quiet.alone == _clocks(catalog)
    catalog.close()
