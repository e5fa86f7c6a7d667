"""Example strategies shipped with the package (used by the sample configs and the tests).

- `MovingAverageCross`: SMA crossover on any interval, positions carried across sessions
  (``configs/sample.toml``);
- `OpeningRangeBreakout`: trade breakouts of each session's opening range, flat at the
  close (``configs/orb.toml``);
- `VwapReversion`: buy a dip below the session VWAP, sell at VWAP, flat at the close;
  entries go through the broker's quality gate (``configs/vwap.toml``).

Each keeps O(1) state per symbol and does O(1) work per bar. The intraday ones take the
session's regular hours from ``ctx.session_open`` / ``ctx.session_close``, trade on regular-hours
bars only, and send their closing orders one base bar before the close, so they fill on
the session's last bar (next-open fills).

Examples
--------
>>> MovingAverageCross(fast=5, slow=20, interval="5m").params
{'fast': 5, 'slow': 20, 'interval': '5m', 'symbol': None, 'percent': 1.0}
>>> OpeningRangeBreakout(minutes=30, stop_pct=1.0).minutes
30
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline import schema
from pipeline._crossover import MovingAverageCross, is_whole
from pipeline.errors import ConfigError
from pipeline.intervals import Interval
from pipeline.strategy import BarsView, Context, Strategy

__all__ = ["MovingAverageCross", "OpeningRangeBreakout", "VwapReversion"]


class _Intraday(Strategy):
    """What the intraday examples share: the session's hours, their rows, flat at the close.

    `on_session_start` reads the session's regular open and close from
    ``ctx.session_open`` / ``ctx.session_close`` (the run's exchange calendar: public
    knowledge, not look-ahead). From the clock reaching the
    close minus one base bar, every position of the strategy is closed (its working
    orders cancelled first) and nothing new is placed, so the closing orders fill at the
    open of the session's last bar. Subclasses implement `_reset` and `_step`.
    """

    def __init__(
        self,
        *,
        interval: str,
        symbol: str | None,
        percent: float,
        calendar: str | None,
        **params: Any,
    ) -> None:
        name = type(self).__name__
        if not (isinstance(percent, int | float) and not isinstance(percent, bool)):
            raise ConfigError(f"{name} percent must be a number in (0, 1], found {percent!r}.")
        if not 0 < percent <= 1:
            raise ConfigError(
                f"{name} percent must be in (0, 1], found {percent!r}; 1.0 is all-in."
            )
        Interval.parse(interval)
        if calendar is not None:
            _warn_calendar(name)
            params["calendar"] = calendar
        super().__init__(**params, interval=interval, percent=percent, symbol=symbol)
        self.interval, self.symbol = str(Interval.parse(interval)), symbol
        self.percent = float(percent)
        self._open = self._close = 0  # regular hours, microseconds since the epoch (UTC)
        self._flat_at: dt.datetime | None = None
        self._closing = True
        self._placed: dict[str, list[int]] = {}  # order ids that may still be working

    def on_session_start(self, ctx: Context) -> None:
        """Read the session's regular hours; reset the per-symbol state."""
        opens, closes = ctx.session_open, ctx.session_close
        if opens is None or closes is None:
            return
        self._open, self._close = schema.moment_micros(opens), schema.moment_micros(closes)
        self._flat_at = closes - dt.timedelta(seconds=Interval.parse(ctx.base).seconds)
        self._closing = False
        self._placed = {}
        self._reset()

    def on_bars(self, ctx: Context, bars: BarsView) -> None:
        """Close everything once the clock reaches the close minus a base bar, else `_step`."""
        clock = ctx.clock
        if self._closing or self._flat_at is None or clock is None:
            return
        if clock >= self._flat_at:
            self._closing = True
            for name in ctx.universe:
                self._exit(ctx, name)
            return
        if self.interval not in bars.intervals:
            return
        rows = (bars.interval == bars.intervals.index(self.interval)).nonzero()[0]
        if rows.size:
            self._step(ctx, bars, rows)

    def _reset(self) -> None:
        """Forget the previous session's per-symbol state."""

    def _step(self, ctx: Context, bars: BarsView, rows: npt.NDArray[np.intp]) -> None:
        """React to the new `interval` bars `rows` (any hours) before the closing time."""

    def _regular(self, ts: int) -> bool:
        return self._open <= ts < self._close

    def _enter(self, ctx: Context, name: str, percent: float) -> None:
        """Cancel the symbol's working orders; target `percent` of equity."""
        self._cancel(ctx, name)
        order = ctx.target_percent(name, percent)
        if order is not None:
            self._placed[name] = [order]

    def _exit(self, ctx: Context, name: str) -> None:
        """Cancel the symbol's working orders; go flat."""
        self._cancel(ctx, name)
        if ctx.position(name):
            ctx.target_quantity(name, 0)

    def _cancel(self, ctx: Context, name: str) -> None:
        for order in self._placed.pop(name, ()):
            ctx.cancel(order)  # an order already filled or refused is left as it is


class OpeningRangeBreakout(_Intraday):
    """Trade breakouts of each session's opening range; flat at the session's last bar.

    Per symbol and session, the opening range is the high and low of the `interval` bars
    of the first `minutes` of regular hours. After it, a close above the range high goes
    long `percent` of equity (``target_percent``); a close below the range low goes flat
    (short `percent` when `short`; the run's ``[broker]`` must allow shorts). A signal
    acts when it changes, so a breakout re-enters only after a close below the range.
    With `stop_pct`, a protective stop order is placed once the entry has filled,
    `stop_pct` % beyond the entry estimate (the signal bar's close). Closing orders go
    out one base bar before the close. The range, the signal and the orders reset each
    session; O(1) per bar.

    Parameters
    ----------
    minutes
        Length of the opening range, a whole number of `interval` bars.
    interval
        The bars that make the range and the signals (``"1m"``, ``"5m"`` ...).
    percent
        Share of equity per position, in (0, 1].
    stop_pct
        Protective stop distance in % of the entry estimate (None: no stop).
    short
        Go short on a close below the range (default: long only).
    symbol
        Trade only this symbol (None: every symbol of the run).
    calendar
        Deprecated and ignored (a `DeprecationWarning`): the session's hours come from
        ``ctx.session_open`` / ``ctx.session_close``, i.e. the run's ``calendar``.
    """

    def __init__(
        self,
        minutes: int = 15,
        interval: str = "1m",
        percent: float = 0.5,
        stop_pct: float | None = None,
        *,
        short: bool = False,
        symbol: str | None = None,
        calendar: str | None = None,
    ) -> None:
        step = Interval.parse(interval).seconds
        if not (is_whole(minutes) and minutes >= 1 and minutes * 60 % step == 0):
            raise ConfigError(
                f"OpeningRangeBreakout minutes must be a whole number of {interval} bars, "
                f"found {minutes!r}; e.g. params = {{minutes = 15, interval = '1m'}}."
            )
        if stop_pct is not None and not (_number(stop_pct) and 0 < stop_pct < 100):
            raise ConfigError(
                f"OpeningRangeBreakout stop_pct must be in (0, 100) or left out, "
                f"found {stop_pct!r}."
            )
        super().__init__(
            minutes=minutes,
            stop_pct=stop_pct,
            short=short,
            interval=interval,
            symbol=symbol,
            percent=percent,
            calendar=calendar,
        )
        self.minutes, self.short = int(minutes), bool(short)
        self.stop_pct = None if stop_pct is None else float(stop_pct)
        self._ranges: dict[str, _Range] = {}
        self._unprotected: dict[str, tuple[int, float]] = {}  # entries waiting for a stop

    def _reset(self) -> None:
        self._ranges, self._unprotected = {}, {}
        self._range_end = self._open + self.minutes * 60_000_000

    def _step(self, ctx: Context, bars: BarsView, rows: npt.NDArray[np.intp]) -> None:
        if self._unprotected:
            self._protect(ctx)
        ts, codes, universe = _micros_of(bars), bars.symbol, bars.universe
        highs, lows, closes = bars.high, bars.low, bars.close
        for i in rows.tolist():
            name = universe[codes[i]]
            t = int(ts[i])
            if (self.symbol is not None and name != self.symbol) or not self._regular(t):
                continue
            rng = self._ranges.get(name)
            if rng is None:
                rng = self._ranges[name] = _Range()
            if t < self._range_end:
                rng.high, rng.low = max(rng.high, float(highs[i])), min(rng.low, float(lows[i]))
                continue
            close = float(closes[i])
            signal = rng.signal_of(close)
            if signal != rng.signal:
                rng.signal = signal
                self._act(ctx, name, signal, close)

    def _act(self, ctx: Context, name: str, signal: int, close: float) -> None:
        self._unprotected.pop(name, None)
        if signal < 0 and not self.short:
            self._exit(ctx, name)
            return
        self._enter(ctx, name, signal * self.percent)
        if self.stop_pct is not None:
            self._unprotected[name] = (signal, close)

    def _protect(self, ctx: Context) -> None:
        """Place the protective stop of each entry that has filled since it was sent."""
        assert self.stop_pct is not None
        for name, (sign, estimate) in list(self._unprotected.items()):
            held = ctx.position(name)
            if held * sign <= 0:
                continue  # not filled yet (or refused: it waits for the next signal)
            del self._unprotected[name]
            price = estimate * (1 - sign * self.stop_pct / 100)
            self._placed.setdefault(name, []).append(ctx.stop(name, -held, price))


class _Range:
    """One symbol's opening range and the last breakout signal (+1 above, -1 below)."""

    __slots__ = ("high", "low", "signal")

    def __init__(self) -> None:
        self.high, self.low, self.signal = -math.inf, math.inf, 0

    def signal_of(self, close: float) -> int:
        if self.high < self.low:  # no bar in the opening range: no signal
            return self.signal
        return 1 if close > self.high else (-1 if close < self.low else self.signal)


class VwapReversion(_Intraday):
    """Buy when the close is `band_pct` % below the session VWAP; sell when it is back at VWAP.

    The VWAP is the session's running sum of typical price ``(high + low + close) / 3``
    times volume over the volume of the `interval` bars, restarted each session, kept
    here incrementally (O(1) per bar). When the run configures the ``vwap`` session
    indicator on `interval`, a signal is confirmed with its value (the same formula,
    read from the catalog only at a candidate signal, as a catalog read costs about a
    millisecond). Long only; entries and exits act on signal changes, so a dip makes one
    entry order.

    Entries rely on the broker's quality gate (``quality.min_for_entry`` of the run): on
    a symbol whose session quality is below it (an illiquid one with missing minutes)
    the entry is refused and recorded in ``orders`` with the quality in its reason. With
    `min_quality` the strategy also skips entries itself when ``ctx.quality`` is below
    it (no order is sent then). Flat at the session's last bar.

    Parameters
    ----------
    band_pct
        How far below VWAP (in %) a close must be to enter.
    interval
        The bars that make the VWAP and the signals.
    percent
        Share of equity per position, in (0, 1].
    min_quality
        Skip entries when the symbol's quality (0-100) is below this (None: leave the
        decision to the broker's gate).
    symbol
        Trade only this symbol (None: every symbol of the run).
    calendar
        Deprecated and ignored (a `DeprecationWarning`): the session's hours come from
        ``ctx.session_open`` / ``ctx.session_close``, i.e. the run's ``calendar``.
    """

    def __init__(
        self,
        band_pct: float = 0.5,
        interval: str = "1m",
        percent: float = 0.5,
        min_quality: float | None = None,
        *,
        symbol: str | None = None,
        calendar: str | None = None,
    ) -> None:
        if not (_number(band_pct) and 0 < band_pct < 100):
            raise ConfigError(f"VwapReversion band_pct must be in (0, 100), found {band_pct!r}.")
        if min_quality is not None and not (_number(min_quality) and 0 <= min_quality <= 100):
            raise ConfigError(
                f"VwapReversion min_quality must be in [0, 100] or left out, found {min_quality!r}."
            )
        super().__init__(
            band_pct=band_pct,
            min_quality=min_quality,
            interval=interval,
            symbol=symbol,
            percent=percent,
            calendar=calendar,
        )
        self.band = float(band_pct) / 100
        self.min_quality = None if min_quality is None else float(min_quality)
        self._vwaps: dict[str, _Vwap] = {}

    def _reset(self) -> None:
        self._vwaps = {}

    def _step(self, ctx: Context, bars: BarsView, rows: npt.NDArray[np.intp]) -> None:
        ts, codes, universe = _micros_of(bars), bars.symbol, bars.universe
        highs, lows, closes, volumes = bars.high, bars.low, bars.close, bars.volume
        for i in rows.tolist():
            name = universe[codes[i]]
            if self.symbol is not None and name != self.symbol:
                continue
            state = self._vwaps.get(name)
            if state is None:
                state = self._vwaps[name] = _Vwap()
            close = float(closes[i])
            state.add(float(highs[i]), float(lows[i]), close, float(volumes[i]))
            if state.volume > 0 and self._regular(int(ts[i])):
                self._signal(ctx, name, state, close)

    def _signal(self, ctx: Context, name: str, state: _Vwap, close: float) -> None:
        own = state.value / state.volume
        if not state.long:
            if close <= own * (1 - self.band) and close <= self._vwap(ctx, name, own) * (
                1 - self.band
            ):
                state.long = True
                if self._quality_ok(ctx, name):
                    self._enter(ctx, name, self.percent)
        elif close >= own and close >= self._vwap(ctx, name, own):
            state.long = False
            self._exit(ctx, name)

    def _vwap(self, ctx: Context, name: str, own: float) -> float:
        """Return the configured ``vwap`` indicator's latest value, else `own`."""
        value = ctx.indicator(name, "vwap", self.interval)
        return own if value is None else float(value)

    def _quality_ok(self, ctx: Context, name: str) -> bool:
        if self.min_quality is None:
            return True
        quality = ctx.quality(name)
        return quality is None or quality >= self.min_quality


class _Vwap:
    """One symbol's running session sums and whether a dip has been bought."""

    __slots__ = ("long", "value", "volume")

    def __init__(self) -> None:
        self.value = self.volume = 0.0
        self.long = False

    def add(self, high: float, low: float, close: float, volume: float) -> None:
        self.value += (high + low + close) * (1.0 / 3.0) * volume
        self.volume += volume


def _warn_calendar(name: str) -> None:
    warnings.warn(
        f"{name}: the 'calendar' parameter is deprecated and ignored; the session's hours "
        "come from the run's calendar (ctx.session_open / ctx.session_close). Remove "
        "calendar from the strategy's params.",
        DeprecationWarning,
        stacklevel=4,
    )


def _micros_of(bars: BarsView) -> npt.NDArray[np.int64]:
    """Return the bars' ``ts`` as microseconds since the epoch (no copy for µs columns)."""
    return bars.column("ts").astype("datetime64[us]", copy=False).view(np.int64)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
