"""pipeline: a columnar backtest pipeline for intraday market bars."""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"

#: How long Polars' allocator (jemalloc) keeps freed pages before handing them back to
#: the kernel. Polars' own setting (0.5 s dirty, 1 s muzzy) suits interactive use; a run
#: frees and allocates a chunk's worth of memory (~1 GB at 100 symbols) every 20
#: sessions, and with it the pages went back and were faulted in again: ~8 s of kernel
#: time in a year at 100 symbols, ~3 s with this (the peak grows ~20%). jemalloc reads
#: it once, when Polars loads, so it applies when `pipeline` is imported first (the CLI
#: does); a `_RJEM_MALLOC_CONF` already in the environment is left as it is.
ALLOCATOR = "dirty_decay_ms:30000,muzzy_decay_ms:30000"
if "polars" not in sys.modules:
    os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR)
