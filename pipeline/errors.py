"""The exception hierarchy: every error a user can cause is a `PipelineError`.

Each message states what was expected, what was found, and what to do. Long
messages are built by the named constructors below so call sites stay short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose.

    The CLI turns it into a one-line message and exit code 1.
    """


class ConfigError(PipelineError):
    """A configuration value or command-line option is missing or wrong."""


class IntervalError(ConfigError):
    """An interval string cannot be parsed or an interval cannot be derived."""


class InputError(PipelineError):
    """An input file is malformed or holds invalid bars."""


class ConflictError(InputError):
    """Bars to write disagree with stored bars, or with each other, at the same time.

    Carries the interval, the symbol and the stamps, so that a caller that knows where
    the bars came from (the importer: which file) can say so.
    """

    def __init__(
        self, message: str, *, interval: str, symbol: str, stamps: Sequence[dt.datetime]
    ) -> None:
        super().__init__(message)
        self.interval = interval
        self.symbol = symbol
        self.stamps = tuple(stamps)


class DataNotFoundError(PipelineError):
    """Requested data (a symbol, an interval, a date range) is not in the store."""


class StoreError(PipelineError):
    """The bar store cannot be read or written (permissions, disk full, a lock)."""


class CalendarError(PipelineError):
    """The exchange calendar cannot answer (unknown MIC, range outside the calendar)."""


class QueryError(PipelineError):
    """A SQL statement or a saved query failed or was refused."""


class StrategyError(PipelineError):
    """A strategy's own code raised an exception: importing it, building it, or in a hook."""

    @classmethod
    def raised(cls, spec: str, where: str, exc: BaseException) -> StrategyError:
        """Build the error for `exc`, raised by strategy `spec` `where` ("in on_bars")."""
        detail = " ".join(str(exc).split()) or "(no message)"
        return cls(
            f"strategy {spec!r} raised {type(exc).__name__} {where}: {detail} "
            "(run with --debug for the traceback)"
        )


def closest(word: str, choices: Sequence[str]) -> str:
    """Return a hint naming the closest choice to `word`, or all choices when none is close.

    Examples
    --------
    >>> closest("clsoe", ["open", "close"])
    "did you mean 'close'?"
    """
    import difflib

    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if match:
        return f"did you mean {match[0]!r}?"
    return "expected one of: " + ", ".join(repr(c) for c in choices)
