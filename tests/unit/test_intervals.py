from __future__ import annotations

import pytest

from pipeline.errors import IntervalError
from pipeline.intervals import Interval, base_interval


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("30s", 30, "30s"),
        ("1m", 60, "1m"),
        ("5m", 300, "5m"),
        ("15m", 900, "15m"),
        ("1h", 3600, "1h"),
        ("60m", 3600, "1h"),
        ("120s", 120, "2m"),
        ("1d", 86400, "1d"),
        ("1w", 604800, "1w"),
    ],
)
def test_parse_valid_intervals(text: str, seconds: int, shown: str) -> None:
    iv = Interval.parse(text)
    assert iv.seconds == seconds
    assert str(iv) == shown


@pytest.mark.parametrize(
    "text", ["", "m", "0m", "-1m", "1.5m", "1y", "5 minutes", "2d", "3w", "25h"]
)
def test_parse_rejects_bad_interval_with_hint(text: str) -> None:
    with pytest.raises(IntervalError, match="'1m'|use '1|longer than a day"):
        Interval.parse(text)


def test_intervals_order_by_length() -> None:
    assert sorted(Interval.parse(t) for t in ["1d", "1s", "1h", "5m"]) == [
        Interval.parse(t) for t in ["1s", "5m", "1h", "1d"]
    ]


@pytest.mark.parametrize(
    ("target", "base", "ok"),
    [
        ("5m", "1m", True),
        ("15m", "5m", True),
        ("1h", "15m", True),
        ("1h", "7m", False),
        ("1m", "5m", False),
        ("1d", "1m", True),
        ("1d", "1s", True),
        ("1w", "1d", True),
        ("1d", "1w", False),
        ("1m", "1d", False),
        ("1m", "30s", True),
        ("1m", "1m", True),
    ],
)
def test_derives_from(target: str, base: str, ok: bool) -> None:
    assert Interval.parse(target).derives_from(Interval.parse(base)) is ok


def test_base_is_finest_stored_interval_that_serves_all_requests() -> None:
    assert str(base_interval(["5m", "15m"], ["1m", "1d"])) == "1m"
    assert str(base_interval(["15m"], ["1m", "15m"])) == "1m"
    assert str(base_interval(["15m", "1h"], ["5m", "15m", "1d"])) == "5m"
    assert str(base_interval(["1m", "5m"], ["1s", "1m"])) == "1s"


def test_base_interval_names_what_cannot_be_derived() -> None:
    with pytest.raises(
        IntervalError, match=r"No stored interval can produce 1m \(stored: 5m, 1d\)"
    ):
        base_interval(["1m", "15m"], ["5m", "1d"])


def test_grid_of_intraday_intervals() -> None:
    assert Interval.parse("1m").grid_seconds == 60
    assert Interval.parse("1h").grid_seconds == 900
    assert Interval.parse("30s").grid_seconds == 30
