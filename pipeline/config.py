"""The run configuration: frozen, validated at load, with a stable hash.

A run is described by one TOML (or JSON) file::

    name = "demo"
    calendar = "XNYS"
    start = "2024-07-01"
    end = "2024-07-10"
    symbols = ["ACME", "BOLT"]
    streams = ["1m", "5m", "15m"]

    [[history]]
    interval = "1m"
    sessions = 5

    [[indicators]]
    name = "sma"
    interval = "5m"
    period = 10

The dataclasses below are the validated form; `load_config` (a file) and
`parse_config` (a mapping) build them, reporting every problem at once. A parsed
config is deeply immutable (tables are `MappingProxyType`, lists are tuples).
`config_hash` is a stable id of its `canonical` form: it ignores key order, file
format, `data_root` (the same run on a copied store is the same run) and `load_ahead`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pipeline import _config_rules as rules
from pipeline._config_rules import Problem, Table
from pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from pipeline._broker_models import BrokerConfig

#: Session indicator functions (`indicators`).
INDICATOR_NAMES = ("sma", "ema", "wma", "rsi", "macd", "bbands", "atr", "stddev", "obv", "vwap")
#: Historical indicator functions (`historical_indicators`).
HISTORICAL_NAMES = ("avg", "max", "min", "atr", "prev")
#: Bar fields an indicator can read.
FIELDS = ("open", "high", "low", "close", "volume")
#: Indicators that need a `period`; ``obv`` and ``vwap`` take none, ``macd`` ignores it.
PERIOD_REQUIRED = ("sma", "ema", "wma", "rsi", "bbands", "atr", "stddev")
#: MACD's TA-Lib defaults, used to check ``fast < slow`` when only one is given.
MACD_DEFAULTS: Mapping[str, int] = MappingProxyType({"fast": 12, "slow": 26, "signal": 9})


@dataclass(frozen=True)
class HistoryEntry:
    """Trailing history to load before each session: `sessions` sessions of `interval` bars."""

    interval: str
    sessions: int
    symbols: tuple[str, ...] | Literal["all"] = "all"


@dataclass(frozen=True)
class HistoricalIndicator:
    """An indicator computed from history only, once per session (phase 2.2).

    - ``avg``: trailing average of `field` over `period`; with ``granularity =
      "minute"`` a per-minute-of-day profile (one value per minute of the session).
    - ``max`` / ``min``: trailing extreme of `field` over `period`.
    - ``atr``: average true range over `period` daily bars.
    - ``prev``: `field` of the previous session (close, high, low ...).

    `period` is ``Nd`` (N sessions), ``Nw`` (N calendar weeks) or ``Ny`` (N calendar
    years). The stored name is `label`, by default ``{name}_{field}_{period}``.
    """

    name: str
    field: str = "close"
    period: str = "1d"
    granularity: Literal["daily", "minute"] = "daily"
    label: str = ""

    @property
    def output(self) -> str:
        """The name its values carry in the `indicators` table."""
        if self.label:
            return self.label
        if self.name == "prev":
            return f"prev_{self.field}"
        if self.name == "atr":
            return f"atr_{self.period}"
        suffix = "_profile" if self.granularity == "minute" else ""
        return f"{self.name}_{self.field}_{self.period}{suffix}"


@dataclass(frozen=True)
class Indicator:
    """A session indicator on one interval, warmed up from history (phase 3).

    `params` holds what the function needs beyond `period`: ``field`` (default
    ``close``), ``fast``/``slow``/``signal`` for MACD, ``k`` for Bollinger bands.
    Multi-valued indicators store one row per part, named ``{output}.{part}``
    (``macd``, ``signal``, ``hist``; ``upper``, ``middle``, ``lower``).
    """

    name: str
    interval: str
    period: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def output(self) -> str:
        """The name its values carry in the `indicators` table."""
        if self.label:
            return self.label
        return self.name if self.period is None else f"{self.name}_{self.period}"

    def param(self, key: str, default: Any) -> Any:
        """Return a parameter, or `default` when it is not set."""
        return self.params.get(key, default)


@dataclass(frozen=True)
class QualityConfig:
    """Data-quality switches."""

    enabled: bool = True
    emit_incomplete: bool = False
    min_for_entry: float = 95.0


@dataclass(frozen=True)
class ScannerConfig:
    """A pre-session scanner (phase 1.4): a saved query that picks the session's symbols.

    `query` names a file in ``queries/``; it gets `params` (named parameters) and
    ``session``, the session date, and returns a ``symbol`` column, best first.
    `symbols` are the candidates: ``"all"`` (every symbol of the run) or a list taken
    from the run's `symbols`. See `pipeline.scanner`.
    """

    query: str
    params: Mapping[str, Any] = field(default_factory=dict)
    symbols: tuple[str, ...] | Literal["all"] = "all"


@dataclass(frozen=True)
class RunConfig:
    """A validated, frozen run configuration."""

    name: str
    start: dt.date
    end: dt.date
    symbols: tuple[str, ...]
    streams: tuple[str, ...] = ("1m",)
    calendar: str = "XNYS"
    extended_hours: bool = False
    history: tuple[HistoryEntry, ...] = ()
    historical_indicators: tuple[HistoricalIndicator, ...] = ()
    indicators: tuple[Indicator, ...] = ()
    quality: QualityConfig = QualityConfig()
    strategy: Mapping[str, Any] = field(default_factory=dict)
    broker: Mapping[str, Any] = field(default_factory=dict)
    scanner: ScannerConfig | None = None
    data_root: str | None = None
    load_ahead: bool = True  # build the next chunk while one streams (memory: two chunks)

    def broker_config(self, source: str = "[broker]") -> BrokerConfig:
        """Return the simulated broker's settings: `broker` checked, with the quality gate.

        `source` names where a problem is (the config file when it is loaded).
        """
        from pipeline._broker_models import BrokerConfig

        return BrokerConfig.from_mapping(
            self.broker, min_quality=self.quality.min_for_entry, source=source
        )


# The keys a config file may hold are the fields of the dataclasses above.
_TOP_KEYS = tuple(f.name for f in fields(RunConfig))
_TOP_REQUIRED = {
    "name": '"demo"',
    "start": "2024-07-02",
    "end": "2024-07-10",
    "symbols": '["ACME"]',
}
_HISTORY_KEYS = tuple(f.name for f in fields(HistoryEntry))
_HISTORICAL_KEYS = tuple(f.name for f in fields(HistoricalIndicator))
_INDICATOR_KEYS = tuple(f.name for f in fields(Indicator))
_QUALITY_KEYS = tuple(f.name for f in fields(QualityConfig))
_SCANNER_KEYS = tuple(f.name for f in fields(ScannerConfig))
_PARAMS = {"macd": ("field", "fast", "slow", "signal"), "bbands": ("field", "k")}
_ALL_PARAMS = ("field", "fast", "slow", "signal", "k")
_IND_REQUIRED = {"name": '"sma"', "interval": '"5m"'}
_PERIOD = re.compile(r"^[1-9][0-9]*[dwy]$")
_Output = TypeVar("_Output", HistoricalIndicator, Indicator)


def load_config(path: str | Path) -> RunConfig:
    """Read, validate and freeze the run config in a ``.toml`` or ``.json`` file.

    Raise `ConfigError` naming the file, with the line and column of a syntax error, or
    listing every problem in its values (see `parse_config`).

    Examples
    --------
    >>> load_config("configs/sample.toml").symbols
    ('ACME', 'BOLT', 'TINY')
    """
    source = str(path)
    data = rules.read(Path(path), source)
    if isinstance(data, Mapping) and data.get("strategy") == {}:  # a bare [strategy] header
        raise ConfigError(_no_class().render(source))
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a config mapping (as read from TOML or JSON) and return it frozen.

    Non-session `start` / `end` dates are rolled inward to the first and last session
    of the range. Every problem is collected; one `ConfigError` lists them all, joined
    with ``"; "``, each as ``config '<source>': <field path> <problem>; <fix>``.

    Examples
    --------
    >>> cfg = parse_config({"name": "x", "start": "2024-07-04", "end": "2024-07-08",
    ...                     "symbols": ["ACME"]})
    >>> str(cfg.start), cfg.streams
    ('2024-07-05', ('1m',))
    """
    problems: list[Problem] = []
    config = _build(data, problems) if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping):
        found = rules.describe(data)
        problems.append(Problem("", f"must hold a table of settings, found {found}"))
    if problems or config is None:
        raise ConfigError("; ".join(p.render(source) for p in problems))
    # Checked here, not first when the run starts, and kept with its defaults filled in.
    filled = _plain_broker(config.broker_config(source))
    return replace(config, broker=rules.freeze(filled, "broker", problems))


def canonical(config: RunConfig) -> dict[str, Any]:
    """Return the config as plain JSON-ready data: the form that `config_hash` hashes.

    Dates become ISO strings, tuples lists and mappings dicts with sorted keys; the
    dates are the rolled session dates; every section has its defaults filled in (the
    broker's too), but a strategy's parameters are as written: its class is not imported
    here. `data_root` and `load_ahead` are left out: where the store lives and when a
    chunk is loaded do not change what a run computes.
    """
    plain: dict[str, Any] = rules.plain(config)
    plain.pop("data_root", None)
    plain.pop("load_ahead", None)
    plain["broker"] = _plain_broker(config.broker_config())  # as `parse_config` keeps it
    return plain


def _plain_broker(settings: BrokerConfig) -> dict[str, Any]:
    """Return the ``[broker]`` table of `settings`: every default filled in.

    So a default written out, an integer for a float (``cash = 10000``) or a key order
    does not change the hash. The quality gate stays in ``quality``, where it is set.
    """
    plain: dict[str, Any] = rules.plain(settings)
    plain.pop("min_quality")
    plain["commission"] = {"model": settings.commission.model, **plain["commission"]}
    return plain


def config_hash(config: RunConfig) -> str:
    """Return a stable 16-hex-digit id of the config's `canonical` form.

    It does not depend on key order, TOML versus JSON, `data_root`, `load_ahead`, the process or the
    Python hash seed; any change of a value changes it.
    """
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _build(data: Mapping[Any, Any], problems: list[Problem]) -> RunConfig | None:
    """Check every section of `data`; return the config, or None when a problem was found."""
    top = Table(data, "", problems, _TOP_KEYS, _TOP_REQUIRED)
    name = top.string("name", blank_ok=False)
    mic = _calendar(top)
    dates = _dates(top, mic)
    symbols = rules.names(top, "symbols", rules.check_symbol, "symbol", example='["ACME"]')
    streams = rules.names(
        top, "streams", rules.check_interval, "interval", default=("1m",), example='["1m"]'
    )
    extended_hours = top.flag("extended_hours", False)
    data_root = top.string("data_root", blank_ok=False) or None
    load_ahead = top.flag("load_ahead", True)
    history = tuple(_history(path, item, problems, symbols) for path, item in top.tables("history"))
    historical = _historical(top)
    indicators = _indicators(top, streams)
    quality = _quality(top)
    strategy = rules.freeze(top.sub("strategy"), "strategy", problems)
    if strategy and "class" not in strategy:  # empty: the canonical form of "no strategy"
        problems.append(_no_class())
    broker = rules.freeze(top.sub("broker"), "broker", problems)
    scanner = _scanner(top, symbols) if "scanner" in data else None
    if problems or mic is None or dates is None or symbols is None or streams is None:
        return None
    return RunConfig(
        name=name,
        start=dates[0],
        end=dates[1],
        symbols=symbols,
        streams=streams,
        calendar=mic,
        extended_hours=extended_hours,
        history=history,
        historical_indicators=historical,
        indicators=indicators,
        quality=quality,
        strategy=strategy,
        broker=broker,
        scanner=scanner,
        data_root=data_root,
        load_ahead=load_ahead,
    )


def _no_class() -> Problem:
    """Return the problem of a ``[strategy]`` table without its ``class``."""
    fix = 'add class = "pipeline.strategies:MovingAverageCross" (your own "module:Class")'
    return Problem("strategy.class", "is missing", f"{fix}, or remove [strategy] to only replay")


def _calendar(top: Table) -> str | None:
    """Return the calendar's MIC once `pipeline.calendar` knows it, else None."""
    mic = top.string("calendar", "XNYS", blank_ok=False)
    if not mic:
        return None
    from pipeline import calendar  # exchange_calendars is heavy: only when a config is read

    try:
        calendar.timezone(mic)
    except PipelineError as exc:
        top.fail("calendar", f"is not usable: {rules.reason(exc)}")
        return None
    return mic


def _dates(top: Table, mic: str | None) -> tuple[dt.date, dt.date] | None:
    """Return (first session on or after start, last session on or before end), or None."""
    start, end = (top.date(key) for key in ("start", "end"))
    if start is None or end is None:
        return None
    if end < start:
        top.fail("end", f"{end} is before start {start}", "swap the dates")
        return None
    if mic is None:
        return None
    from pipeline import calendar

    try:
        first = calendar.session_on_or_after(mic, start)
        days = calendar.sessions(mic, first, end)["session"] if first <= end else None
    except PipelineError as exc:
        top.fail("start..end", f"is not usable: {rules.reason(exc)}")
        return None
    if days is None or days.is_empty():
        fix = "widen the range to include a trading day"
        top.fail("start..end", f"{start}..{end} holds no {mic} session", fix)
        return None
    return first, days[-1]


def _history(
    path: str, data: Mapping[Any, Any], problems: list[Problem], symbols: tuple[str, ...] | None
) -> HistoryEntry:
    """Return one `history` entry; report its problems."""
    table = Table(data, path, problems, _HISTORY_KEYS, {"interval": '"1m"', "sessions": "5"})
    interval = table.interval("interval")
    sessions = table.whole("sessions")
    value = data.get("symbols", "all")
    if isinstance(value, str) and value == "all":
        return HistoryEntry(interval, sessions, "all")
    if isinstance(value, list | tuple) and value:
        chosen = rules.subset(value, table.at("symbols"), symbols, problems)
        return HistoryEntry(interval, sessions, chosen)
    found = rules.describe(value)
    table.fail("symbols", f'must be "all" or a non-empty list of symbols, found {found}')
    return HistoryEntry(interval, sessions, "all")


def _historical(top: Table) -> tuple[HistoricalIndicator, ...]:
    """Return the `historical_indicators`, checking that their outputs are unique."""
    built: list[tuple[str, HistoricalIndicator, bool]] = []
    for path, data in top.tables("historical_indicators"):
        before = len(top.problems)
        table = Table(data, path, top.problems, _HISTORICAL_KEYS, {"name": '"avg"'})
        name = table.string("name", "", HISTORICAL_NAMES)
        period = table.string("period", "1d")
        if period and not _PERIOD.match(period):
            fix = "write N sessions, weeks or years, e.g. '20d', '52w', '1y'"
            table.fail("period", f"{period!r} is not a period", fix)
        minute = table.string("granularity", "daily", ("daily", "minute")) == "minute"
        if minute and name not in ("avg", ""):
            table.fail("granularity", f"'minute' is for avg only, not {name!r}", "remove it")
        source = table.string("field", "close", FIELDS)
        item = HistoricalIndicator(
            name, source, period, "minute" if minute else "daily", table.label()
        )
        built.append((path, item, len(top.problems) == before))
    return _unique_outputs(built, top.problems)


def _indicators(top: Table, streams: tuple[str, ...] | None) -> tuple[Indicator, ...]:
    """Return the session `indicators`, checking that their outputs are unique."""
    built: list[tuple[str, Indicator, bool]] = []
    for path, data in top.tables("indicators"):
        before = len(top.problems)
        item = _indicator(Table(data, path, top.problems, _INDICATOR_KEYS, _IND_REQUIRED), streams)
        built.append((path, item, len(top.problems) == before))
    return _unique_outputs(built, top.problems)


def _unique_outputs(
    built: list[tuple[str, _Output, bool]], problems: list[Problem]
) -> tuple[_Output, ...]:
    """Report outputs that repeat within a list (valid entries only); return the items."""
    outputs = [(path, item.output if ok else None) for path, item, ok in built]
    rules.unique(outputs, problems, "output name", "give one of them a distinct label")
    return tuple(item for _, item, _ in built)


def _indicator(table: Table, streams: tuple[str, ...] | None) -> Indicator:
    """Return one session indicator; report its problems."""
    name = table.string("name", "", INDICATOR_NAMES)
    interval = table.interval("interval")
    if interval and streams is not None and interval not in streams:
        fix = f"add {interval!r} to streams or use one of them"
        table.fail("interval", f"{interval!r} is not one of the streams {list(streams)}", fix)
    period = _period(table, name)
    return Indicator(name, interval, period, _params(table, name), table.label())


def _period(table: Table, name: str) -> int | None:
    """Return an indicator's period: required, forbidden, or (MACD) checked and dropped."""
    if "period" not in table.data:
        if name in PERIOD_REQUIRED:
            table.fail("period", f"is missing ({name} needs one)", "add e.g. period = 14")
        return None
    if name in ("obv", "vwap"):
        table.fail("period", f"is not used by {name}", "remove it")
        return None
    period = table.whole("period")
    return None if name == "macd" else period


def _params(table: Table, name: str) -> Mapping[str, Any]:
    """Return an indicator's checked `params`, frozen; only the keys its function reads."""
    data = table.sub("params")
    allowed = _PARAMS.get(name, ("field",)) if name else _ALL_PARAMS
    before = len(table.problems)
    params = Table(data, table.at("params"), table.problems, allowed)
    found: dict[str, Any] = {}
    if "field" in data:
        found["field"] = params.string("field", "close", FIELDS)
    for key in ("fast", "slow", "signal"):
        if key in data and key in allowed:
            found[key] = params.whole(key)
    if "k" in data and "k" in allowed:
        found["k"] = params.positive("k")
    fast = found.get("fast", MACD_DEFAULTS["fast"])
    slow = found.get("slow", MACD_DEFAULTS["slow"])
    if name == "macd" and fast >= slow and len(table.problems) == before:
        params.fail("fast", f"{fast} must be less than slow {slow}", "swap them")
    return MappingProxyType(found)


def _quality(top: Table) -> QualityConfig:
    """Return the `quality` switches."""
    table = Table(top.sub("quality"), "quality", top.problems, _QUALITY_KEYS)
    default = QualityConfig()
    return QualityConfig(
        table.flag("enabled", default.enabled),
        table.flag("emit_incomplete", default.emit_incomplete),
        table.number("min_for_entry", default.min_for_entry, 0.0, 100.0),
    )


def _scanner(top: Table, symbols: tuple[str, ...] | None) -> ScannerConfig:
    """Return the `scanner` section: a query name, its params, the candidate symbols."""
    data = top.sub("scanner")
    table = Table(data, "scanner", top.problems, _SCANNER_KEYS, {"query": '"most_active"'})
    query = table.string("query", blank_ok=False)
    params = rules.freeze(table.sub("params"), table.at("params"), top.problems)
    for key, value in params.items():
        if key == "session":
            fix = "remove it: the scanner passes the session date itself"
            table.fail("params.session", "is always given by the scanner", fix)
        elif isinstance(value, Mapping | tuple) or value is None:
            found = rules.describe(value)
            table.fail(f"params.{key}", f"must be a single value, found {found}")
    value = data.get("symbols", "all")
    if isinstance(value, str) and value == "all":
        return ScannerConfig(query, params, "all")
    if isinstance(value, list | tuple) and value:
        return ScannerConfig(
            query, params, rules.subset(value, table.at("symbols"), symbols, top.problems)
        )
    found = rules.describe(value)
    table.fail("symbols", f'must be "all" or a non-empty list of symbols, found {found}')
    return ScannerConfig(query, params, "all")
