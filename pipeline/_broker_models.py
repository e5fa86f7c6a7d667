"""Private models of `pipeline.broker`: commission, config, order records, table schemas.

`BrokerConfig.from_mapping` validates a run config's ``[broker]`` table with the same
problem collection as `pipeline.config` (every problem reported at once).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline import _config_rules as rules
from pipeline import schema
from pipeline._config_rules import Problem, Table
from pipeline.errors import ConfigError, PipelineError

Fill = Literal["next_open", "close"]
OnCap = Literal["keep", "cancel"]
Side = Literal["buy", "sell"]
Kind = Literal["market", "limit", "stop"]


class BrokerError(PipelineError):
    """A broker call is malformed.

    A zero or non-finite quantity, a bad price, an unknown order id, an order before the
    first bar, or a clock that does not advance.

    A well-formed order that breaks a trading limit is not an error: it is recorded as
    refused with its reason.
    """


# --- commission models ---------------------------------------------------------------


@dataclass(frozen=True)
class PerShare:
    """Pay `rate` per share, at least `minimum` per fill."""

    model: ClassVar[str] = "per_share"  # its name in a config
    rate: float
    minimum: float = 0.0

    def cost(self, quantity: float, price: float) -> float:  # noqa: ARG002 (one signature)
        """Return the commission of one fill of `quantity` shares (absolute) at `price`."""
        return max(self.rate * quantity, self.minimum)


@dataclass(frozen=True)
class Percent:
    """Pay `rate` (0.001 = 0.1%) of each fill's notional."""

    model: ClassVar[str] = "percent"  # its name in a config
    rate: float

    def cost(self, quantity: float, price: float) -> float:
        """Return the commission of one fill of `quantity` shares (absolute) at `price`."""
        return self.rate * quantity * price


@dataclass(frozen=True)
class Fixed:
    """Pay `amount` per fill."""

    model: ClassVar[str] = "fixed"  # its name in a config
    amount: float

    def cost(self, quantity: float, price: float) -> float:  # noqa: ARG002 (one signature)
        """Return the commission of one fill (`quantity` and `price` do not matter)."""
        return self.amount


@dataclass(frozen=True)
class NoCommission:
    """Pay nothing."""

    model: ClassVar[str] = "none"  # its name in a config

    def cost(self, quantity: float, price: float) -> float:  # noqa: ARG002 (one signature)
        """Return 0."""
        return 0.0


Commission = PerShare | Percent | Fixed | NoCommission


# --- config --------------------------------------------------------------------------

_KEYS = (
    "cash", "fill", "commission", "slippage_bps", "volume_cap", "on_cap", "allow_short",
    "max_buying_power", "max_per_trade", "max_per_symbol", "max_open_positions",
)  # fmt: skip
_MODELS = ("per_share", "percent", "fixed", "none")
_MODEL_KEYS: Mapping[str, tuple[str, ...]] = {
    "per_share": ("model", "rate", "minimum"),
    "percent": ("model", "rate"),
    "fixed": ("model", "amount"),
    "none": ("model",),
}


@dataclass(frozen=True)
class BrokerConfig:
    """How the simulated broker fills orders and which trading limits it enforces.

    Currency limits are notionals at the last known close; None means no limit, and
    ``max_buying_power = None`` means cash-only: buys are limited by cash.
    `min_quality` is the minimum data quality (%) of a symbol for an order that opens
    or increases a position; orders that only reduce a position are never gated.
    """

    cash: float = 100_000.0
    fill: Fill = "next_open"
    commission: Commission = field(default_factory=NoCommission)
    slippage_bps: float = 0.0
    volume_cap: float | None = None
    on_cap: OnCap = "keep"
    allow_short: bool = False
    max_buying_power: float | None = None
    max_per_trade: float | None = None
    max_per_symbol: float | None = None
    max_open_positions: int | None = None
    min_quality: float = 95.0

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, min_quality: float = 95.0, source: str = "<config>"
    ) -> BrokerConfig:
        """Validate a ``[broker]`` table and return the config.

        `min_quality` comes from the run config's ``quality.min_for_entry``. Every
        problem is reported in one `ConfigError`, each naming the key, the value found
        and the fix.

        Examples
        --------
        >>> BrokerConfig.from_mapping({"cash": 5000, "commission": {"model": "fixed",
        ...                            "amount": 1}}).commission
        Fixed(amount=1.0)
        """
        problems: list[Problem] = []
        if not isinstance(data, Mapping):
            problems.append(Problem("broker", f"must be a table, found {rules.describe(data)}"))
            raise ConfigError("; ".join(p.render(source) for p in problems))
        table = Table(data, "broker", problems, _KEYS)
        config = cls(
            cash=_amount(table, "cash", 100_000.0) or 100_000.0,
            fill=_choice(table, "fill", "next_open", ("next_open", "close")),  # type: ignore[arg-type]
            commission=_commission(table),
            slippage_bps=_number(
                table, "slippage_bps", 0.0, 0.0, 10_000.0, example="e.g. 5 for 0.05%"
            ),
            volume_cap=_cap(table),
            on_cap=_choice(table, "on_cap", "keep", ("keep", "cancel")),  # type: ignore[arg-type]
            allow_short=table.flag("allow_short", False),
            max_buying_power=_amount(table, "max_buying_power", None),
            max_per_trade=_amount(table, "max_per_trade", None),
            max_per_symbol=_amount(table, "max_per_symbol", None),
            max_open_positions=_count(table, "max_open_positions"),
            min_quality=min_quality,
        )
        if problems:
            raise ConfigError("; ".join(p.render(source) for p in problems))
        return config


def _choice(table: Table, key: str, default: str, choices: tuple[str, ...]) -> str:
    """Return one of `choices` (`default` when absent or invalid)."""
    return table.string(key, default, choices) or default


def _number(
    table: Table, key: str, default: float, low: float, high: float, *, example: str
) -> float:
    """Return a number in [low, high], else report it with an example and return `default`."""
    value = table.data.get(key, default)
    if rules.is_number(value) and low <= value <= high:
        return float(value)
    found = rules.describe(value)
    table.fail(key, f"must be a number from {low:g} to {high:g}, found {found}", example)
    return default


def _amount(table: Table, key: str, default: float | None) -> float | None:
    """Return a currency amount > 0 (absent: `default`; an explicit null: None)."""
    if key not in table.data:
        return default
    value = table.data[key]
    if value is None:
        return None
    if rules.is_number(value) and value > 0:
        return float(value)
    unset = "for no limit" if default is None else f"for the default {default:,.0f}"
    fix = f"write an amount in currency, e.g. {key} = 10000, or leave it out {unset}"
    table.fail(key, f"must be a number > 0, found {rules.describe(value)}", fix)
    return default


def _count(table: Table, key: str) -> int | None:
    """Return a whole number >= 1, or None when absent."""
    value = table.data.get(key)
    if value is None:
        return None
    if rules.is_whole(value) and value >= 1:
        return int(value)
    fix = f"write e.g. {key} = 5, or leave it out for no limit"
    table.fail(key, f"must be a whole number >= 1, found {rules.describe(value)}", fix)
    return None


def _cap(table: Table) -> float | None:
    """Return the volume cap: a share of a bar's volume in (0, 1], or None."""
    value = table.data.get("volume_cap")
    if value is None:
        return None
    if rules.is_number(value) and 0 < value <= 1:
        return float(value)
    fix = "write a share of the bar's volume, e.g. volume_cap = 0.1 for 10%"
    table.fail("volume_cap", f"must be a number in (0, 1], found {rules.describe(value)}", fix)
    return None


def _commission(table: Table) -> Commission:
    """Return the commission model of the ``commission`` table."""
    if "commission" not in table.data:
        return NoCommission()
    data = table.sub("commission")
    path = table.at("commission")
    example = '{model = "per_share", rate = 0.005, minimum = 1.0}'
    if not data:
        table.fail("commission", "must name a model", f"write e.g. commission = {example}")
        return NoCommission()
    model = check_model(data.get("model"), path, table.problems)
    if model is None:
        return NoCommission()
    inner = Table(data, path, table.problems, _MODEL_KEYS[model], _required(model))
    if model == "per_share":
        rate = _number(inner, "rate", 0.0, 0.0, math.inf, example="e.g. rate = 0.005 per share")
        minimum = _number(
            inner, "minimum", 0.0, 0.0, math.inf, example="e.g. minimum = 1.0 per fill"
        )
        return PerShare(rate, minimum)
    if model == "percent":
        return Percent(_number(inner, "rate", 0.0, 0.0, 0.5, example="e.g. rate = 0.001 for 0.1%"))
    if model == "fixed":
        return Fixed(
            _number(inner, "amount", 0.0, 0.0, math.inf, example="e.g. amount = 1.0 per fill")
        )
    return NoCommission()


def _required(model: str) -> Mapping[str, str]:
    """Return the keys a commission model needs, with example values."""
    examples = {"per_share": {"rate": "0.005"}, "percent": {"rate": "0.001"}}
    return examples.get(model, {"amount": "1.0"} if model == "fixed" else {})


def check_model(value: Any, path: str, problems: list[Problem]) -> str | None:
    """Return a commission model name, or None after reporting why it is not one."""
    where = rules.join(path, "model")
    if value is None:
        fix = "add model = " + " | ".join(f'"{m}"' for m in _MODELS)
        problems.append(Problem(where, "is missing", fix))
        return None
    return rules.check_string(value, where, problems, _MODELS) or None


# --- records -------------------------------------------------------------------------


@dataclass(slots=True)
class Order:
    """One order and its current state (mutable while it is working)."""

    order_id: int
    symbol: str
    ts: dt.datetime
    side: Side
    kind: Kind
    quantity: float
    limit_price: float | None = None
    stop_price: float | None = None
    status: str = "working"
    reason: str = ""
    filled: float = 0.0
    triggered: bool = False

    @property
    def sign(self) -> float:
        """+1 for a buy, -1 for a sell."""
        return 1.0 if self.side == "buy" else -1.0

    @property
    def remaining(self) -> float:
        """Shares still to fill (absolute)."""
        return self.quantity - self.filled

    def row(self) -> tuple[Any, ...]:
        """Return the order as a row of `ORDERS` (without ``run_id``)."""
        return (
            self.order_id, self.symbol, self.ts, self.side, self.kind, self.quantity,
            self.limit_price, self.stop_price, self.status, self.reason, self.filled,
        )  # fmt: skip


@dataclass(slots=True)
class Lot:
    """An open FIFO lot: signed `quantity` entered at `price` (commission per share kept)."""

    quantity: float
    price: float
    ts: dt.datetime
    bar: int
    fee_per_share: float


# --- pure helpers --------------------------------------------------------------------

EPS = 1e-9


class Bar(NamedTuple):
    """One base bar of one symbol, as the broker fills against it."""

    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarRows:
    """Base bars in stream order, column by column, for the broker to read by position.

    The engine builds one per session from its session table (`of`), so a step hands
    the broker a range of positions rather than a frame: ``symbols``, ``close`` and
    ``volume`` are Python lists (sliced per step), the rest NumPy arrays read only for
    the symbols with working orders. ``ts`` is in microseconds since the epoch (UTC).
    """

    __slots__ = ("_moment", "close", "high", "low", "open", "symbols", "ts", "volume")

    def __init__(self, frame: pl.DataFrame) -> None:
        self.symbols: list[str] = frame.get_column("symbol").cast(pl.String).to_list()
        self.ts = schema.micros(frame.get_column("ts"))
        self.open = frame.get_column("open").cast(pl.Float64).to_numpy()
        self.high = frame.get_column("high").cast(pl.Float64).to_numpy()
        self.low = frame.get_column("low").cast(pl.Float64).to_numpy()
        self.close: list[float] = frame.get_column("close").cast(pl.Float64).to_list()
        self.volume: list[float] = frame.get_column("volume").cast(pl.Float64).to_list()
        self._moment: tuple[int, dt.datetime | None] = (0, None)  # the last `ts` converted

    @classmethod
    def of_columns(
        cls,
        column: Callable[[str], npt.NDArray[Any]],
        universe: Sequence[str],
        codes: npt.NDArray[np.integer[Any]],
        rows: npt.NDArray[np.intp] | None = None,
    ) -> BarRows:
        """Build from whole-table NumPy columns (`column(name)`), keeping `rows` (None: all).

        `codes` index the symbols into `universe`.
        """
        out = cls.__new__(cls)
        out._moment = (0, None)

        def pick(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values if rows is None else values[rows]

        out.symbols = np.asarray(universe, dtype=object)[pick(codes)].tolist()
        out.ts = pick(column("ts")).astype("datetime64[us]").view(np.int64)
        out.open, out.high, out.low = (
            pick(column("open")),
            pick(column("high")),
            pick(column("low")),
        )
        out.close = pick(column("close")).tolist()
        out.volume = pick(column("volume")).tolist()
        return out

    def __len__(self) -> int:
        return len(self.symbols)

    def bar(self, i: int) -> Bar:
        """Return row `i` as a `Bar`."""
        micros, ts = int(self.ts[i]), self._moment[1]
        if ts is None or micros != self._moment[0]:  # a step's bars share their time
            ts = schema.moment_of(micros)
            self._moment = (micros, ts)
        return Bar(
            ts,
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            self.close[i],
            self.volume[i],
        )


def reference_price(order: Order, bar: Bar, fill: Fill) -> float | None:
    """Return the price `order` fills at on `bar` before slippage, None if it does not.

    A stop that triggers is marked ``triggered``: its remainder fills like a market order.
    """
    buy = order.side == "buy"
    if order.kind == "market" or order.triggered:
        return bar.close if fill == "close" and order.kind == "market" else bar.open
    if order.kind == "limit":
        level = order.limit_price or 0.0
        if buy:
            return min(bar.open, level) if bar.low <= level else None
        return max(bar.open, level) if bar.high >= level else None
    level = order.stop_price or 0.0
    if buy and bar.high >= level:
        order.triggered = True
        return max(bar.open, level)
    if not buy and bar.low <= level:
        order.triggered = True
        return min(bar.open, level)
    return None


def is_market(order: Order) -> bool:
    """True for a market order."""
    return order.kind == "market"


def over(name: str, limit: float | None, value: float, what: str) -> str:
    """Return a refusal when `value` exceeds `limit` (None: no limit), else ``""``."""
    if limit is None or value <= limit + EPS:
        return ""
    return f"{name} {_limit_text(limit)} exceeded: {what} {value:.2f}"


def _limit_text(value: float) -> str:
    """Return a limit as written in a config: 10000, 2500.5."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def affordable(cash: float, price: float, commission: Commission, whole: bool) -> float:
    """Return the shares `cash` pays for at `price`, commission included (whole when asked)."""
    if cash <= 0:
        return 0.0
    shares = max((cash - commission.cost(cash / price, price)) / price, 0.0)
    if whole:
        shares = math.floor(shares + EPS)
        while shares > 0 and shares * price + commission.cost(shares, price) > cash + EPS:
            shares -= 1
    return float(shares)


def check_number(value: float, what: str) -> None:
    """Raise `BrokerError` unless `value` is finite."""
    if not math.isfinite(value):
        raise BrokerError(f"The {what} is {value}; pass a finite number.")


def check_quantity(quantity: float) -> None:
    """Raise `BrokerError` unless `quantity` is finite and not zero."""
    check_number(quantity, "order quantity")
    if quantity == 0:
        raise BrokerError("The order quantity is 0; pass > 0 to buy or < 0 to sell.")


def check_price(price: float, what: str) -> float:
    """Return `price` as a float; raise `BrokerError` unless it is finite and > 0."""
    if not (math.isfinite(price) and price > 0):
        raise BrokerError(f"The {what} price is {price}; pass a finite price > 0.")
    return float(price)


def frame(rows: list[tuple[Any, ...]], shape: pl.Schema) -> pl.DataFrame:
    """Return `rows` as a frame of `shape` (empty when there are none).

    Built column by column; times go in as microseconds (Python arithmetic is several
    times cheaper than Polars converting each datetime object), then cast.
    """
    if not rows:
        return pl.DataFrame(schema=shape)
    if any(len(row) != len(shape) for row in rows):
        raise ValueError(f"every row must hold {len(shape)} values: {shape.names()}")
    columns = {}
    epoch, micro = schema.EPOCH, dt.timedelta(microseconds=1)
    for i, (name, dtype) in enumerate(shape.items()):
        values = list(map(itemgetter(i), rows))
        if isinstance(dtype, pl.Datetime):
            micros = [None if v is None else (v - epoch) // micro for v in values]
            columns[name] = pl.Series(name, micros, dtype=pl.Int64).cast(dtype)
        else:
            columns[name] = pl.Series(name, values, dtype=dtype)
    return pl.DataFrame(columns)


# --- schemas -------------------------------------------------------------------------
# The broker's frames are the catalog's tables (`pipeline.schema`), extra columns included.

ORDERS = schema.ORDERS
FILLS = schema.FILLS
TRADES = schema.TRADES
POSITIONS = schema.POSITIONS
EQUITY = schema.EQUITY
