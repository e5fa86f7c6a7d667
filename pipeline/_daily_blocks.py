"""Daily historical indicators (phase 2.2) for blocks of a run's sessions, sliced per session.

Per session, `pipeline.hist_indicators.compute` costs a few milliseconds of Polars
planning whatever the data; the daily kinds (avg/max/min over sessions, weeks or
years, prev, ATR) of a block of sessions are computed in one plan instead
(`hist_indicators.daily_values`, the same values), each session's history window being
the one phase 2.1 loads for it: the `sessions` daily sessions before it.

Much of a block's cost does not grow with its length (planning, and waiting for Polars'
threads while the next chunk loads beside it: ~0.13 s a block of 20 at 100 symbols), so
blocks are as long as memory allows (`block_sessions`): a block's plan holds each daily
bar once per session whose window holds it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from pipeline import hist_indicators, schema
from pipeline.config import HistoricalIndicator
from pipeline.loader import BarCache

#: Sessions computed together, at least (memory: BLOCK x (window + BLOCK) daily bars per symbol).
BLOCK = 20
#: Longer blocks while their window copies stay within this many daily bars (~100 B each;
#: at 100 symbols 1M rows measured no faster than 500k, with more variance).
BLOCK_ROWS = 500_000


def block_sessions(window: int, symbols: int) -> int:
    """Return the sessions a block computes: `BLOCK`, or more within `BLOCK_ROWS`.

    A block of ``n`` sessions with `window`-session histories holds up to
    ``n * (window + n)`` daily bars per symbol.
    """
    per_symbol = BLOCK_ROWS / max(1, symbols)
    most = int((math.sqrt(window * window + 4 * per_symbol) - window) / 2)
    return max(BLOCK, most)


class DailyBlocks:
    """The daily historical indicators of a run, computed a block of sessions at a time.

    `cache` serves the 1d history; `sessions` and `names` are the merged 1d history
    entry (window length; symbols, None for all). `days` are the run's calendar rows
    (``session``, ``open``) and `all_days` every calendar session from the first
    history session on, in order.
    """

    def __init__(
        self,
        cache: BarCache,
        specs: Sequence[HistoricalIndicator],
        sessions: int,
        names: set[str] | None,
        *,
        days: pl.DataFrame,
        all_days: Sequence[dt.date],
    ) -> None:
        self._cache, self._specs = cache, tuple(specs)
        self._sessions, self._names = sessions, names
        self._run = days.select("session", pl.col("open").cast(schema.TS))
        self._run_index = {d: i for i, d in enumerate(self._run.get_column("session").to_list())}
        self._all = list(all_days)
        self._index = {d: i for i, d in enumerate(self._all)}
        self._block: tuple[int, int] = (0, -1)  # run positions held: [first, last]
        self._values = pl.DataFrame()
        self._offsets = np.zeros(1, dtype=np.int64)
        width = len(names) if names is not None else len(cache.spec.symbols)
        self._length = block_sessions(sessions, width)

    def of(self, day: dt.date) -> pl.DataFrame:
        """Return `day`'s rows (`schema.INDICATORS`, sorted by symbol and name)."""
        k = self._run_index[day]
        first, last = self._block
        if not first <= k <= last:
            self._compute(k, min(k + self._length, self._run.height) - 1)
            first = k
        lo, hi = int(self._offsets[k - first]), int(self._offsets[k - first + 1])
        return self._values.slice(lo, hi - lo)

    def _compute(self, first: int, last: int) -> None:
        block = self._run.slice(first, last - first + 1)
        days = block.get_column("session").to_list()
        firsts = [self._all[max(0, self._index[d] - self._sessions)] for d in days]
        reach = self._index[days[-1]] - self._index[days[0]] + self._sessions
        history = self._cache.window(days[-1], reach, include_day=False, symbols=self._names)
        targets = block.with_columns(first=pl.Series(firsts, dtype=pl.Date))
        values = hist_indicators.daily_values(history.lazy(), self._specs, targets)
        self._values = values.collect(engine="in-memory")
        midnights = pl.Series([dt.datetime.combine(d, dt.time(), dt.UTC) for d in days])
        starts = self._values.get_column("ts").search_sorted(midnights.cast(schema.TS))
        self._offsets = np.append(starts.to_numpy(), self._values.height).astype(np.int64)
        self._block = (first, last)
