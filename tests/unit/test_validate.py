from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import InputError
from pipeline.importing import ImportOptions, read_bars
from pipeline.intervals import Interval
from pipeline.validate import RULES, VIOLATIONS, describe, invalid_rows

HEADER = "ts,open,high,low,close,volume\n"
GOOD = "2024-01-02 14:30,10,11,9,10.5,100\n"
OPTIONS = ImportOptions(interval="1m", symbol="ACME", tz="UTC", stamp="open")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def bars(**overrides: list[object]) -> pl.LazyFrame:
    base: dict[str, list[object]] = {
        "_row": [0],
        "symbol": ["ACME"],
        "ts": [utc(2024, 1, 2, 14, 30)],
        "open": [10.0],
        "high": [11.0],
        "low": [9.0],
        "close": [10.5],
        "volume": [100.0],
    }
    base.update(overrides)
    n = len(base["_row"])
    frame = {k: (v * n if len(v) == 1 else v) for k, v in base.items()}
    return pl.LazyFrame(
        frame, schema_overrides={"ts": pl.Datetime("us", "UTC"), "volume": pl.Float64}
    )


def violations(frame: pl.LazyFrame, interval: str = "1m") -> list[tuple[int, str, str, str]]:
    result = invalid_rows(frame, Interval.parse(interval)).collect()
    return result.select("_row", "column", "rule", "detail").rows()


# ------------------------------------------------------------------ through a file
@pytest.mark.parametrize(
    ("row", "rule", "detail"),
    [
        ("soon,10,11,9,10.5,100", "timestamp", "'soon' does not match the file's stamp format"),
        ("2024-01-02 14:31,ten,11,9,10.5,100", "numeric", "open 'ten' is not a finite number"),
        ("2024-01-02 14:31,10,11,9,NaN,100", "numeric", "close 'NaN' is not a finite number"),
        ("2024-01-02 14:31,10,inf,9,10.5,100", "numeric", "high 'inf' is not a finite number"),
        ("2024-01-02 14:31,10,11,,10.5,100", "numeric", "low is missing"),
        ("2024-01-02 14:31,10,11,-9,10.5,100", "positive_price", "low -9.0 is not positive"),
        ("2024-01-02 14:31,101.4,101.2,101.5,101.3,100", "ohlc_order", "high 101.2 < low 101.5"),
        ("2024-01-02 14:31,10,9,8,9,100", "ohlc_order", "open 10.0 > high 9.0"),
        ("2024-01-02 14:31,10,11,9,8.5,100", "ohlc_order", "close 8.5 < low 9.0"),
        ("2024-01-02 14:31,10,11,9,10.5,-1", "volume", "volume -1.0 < 0"),
        ("2024-01-02 14:31,10,11,9,10.5,", "volume", "volume is missing"),
        ("2024-01-02 14:31:30,10,11,9,10.5,100", "grid", "is off the 1m grid"),
        (
            "2024-01-02 14:30,10,11,9,10.6,100",
            "duplicate",
            "repeats on other rows with different values",
        ),
    ],
)
def test_every_rule_is_refused_with_its_name_and_line(
    tmp_path: Path, row: str, rule: str, detail: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + GOOD + row + "\n")
    with pytest.raises(InputError) as caught:
        read_bars(path, OPTIONS)
    message = str(caught.value)
    assert "line 3: " in message
    assert ("x.csv' line 2: " if rule == "duplicate" else "x.csv' line 3: ") in message
    assert "\n" not in message
    assert f"(rule {rule})" in message
    assert detail in message
    assert message.endswith("Fix the rows or pass --skip-invalid to import the rest.")


def test_high_below_low_message_names_file_line_and_values(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        HEADER
        + GOOD * 1
        + "".join(f"2024-01-02 14:{31 + i},10,11,9,10,1\n" for i in range(14))
        + "2024-01-02 15:00,101.4,101.2,101.5,101.3,100\n"
    )
    with pytest.raises(
        InputError,
        match=r"Bar file '.*x\.csv' line 17: high 101\.2 < low 101\.5 \(rule ohlc_order\)",
    ):
        read_bars(path, OPTIONS)


def test_message_names_at_most_five_problems(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + "".join(f"2024-01-02 14:{30 + i},10,11,9,10,-1\n" for i in range(8)))
    with pytest.raises(InputError) as caught:
        read_bars(path, OPTIONS)
    message = str(caught.value)
    assert message.count("(rule volume)") == 5
    assert "and 3 more problem(s) in 8 invalid row(s)" in message


def test_skip_invalid_returns_rejected_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        HEADER + GOOD + "2024-01-02 14:31,10,9,8,9,100\n" + "2024-01-02 14:32,10,11,9,10.5,100\n"
    )
    parsed = read_bars(
        path, ImportOptions(interval="1m", symbol="ACME", tz="UTC", stamp="open", skip_invalid=True)
    )
    assert parsed.bars["ts"].to_list() == [utc(2024, 1, 2, 14, 30), utc(2024, 1, 2, 14, 32)]
    assert parsed.rejected.columns == ["file", "row", "column", "value", "rule", "detail"]
    assert parsed.rejected.select("row", "column", "value", "rule").rows() == [
        (3, "open", "10.0", "ohlc_order")
    ]
    assert parsed.rejected["file"][0] == str(path)


def test_conflicting_duplicate_rows_are_both_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        HEADER + GOOD + "2024-01-02 14:30,10,11,9,10.6,100\n2024-01-02 14:31,10,11,9,10.6,100\n"
    )
    parsed = read_bars(
        path, ImportOptions(interval="1m", symbol="ACME", tz="UTC", stamp="open", skip_invalid=True)
    )
    assert parsed.rejected.select("row", "rule").rows() == [(2, "duplicate"), (3, "duplicate")]
    assert parsed.bars.height == 1


def test_identical_duplicate_rows_are_dropped_silently(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + GOOD + GOOD + "2024-01-02 14:31,10,11,9,10.5,100\n")
    parsed = read_bars(path, OPTIONS)
    assert parsed.bars.height == 2
    assert parsed.rejected.is_empty()
    assert parsed.rows_read == 3


# ------------------------------------------------------------------ invalid_rows directly
def test_valid_bars_have_no_violations() -> None:
    result = invalid_rows(bars(), Interval.parse("1m")).collect()
    assert result.is_empty()
    assert result.schema == VIOLATIONS


def test_one_violation_row_per_broken_rule() -> None:
    frame = bars(open=[0.0], volume=[-5.0])
    assert violations(frame) == [
        (0, "open", "positive_price", "open 0.0 is not positive"),
        (0, "open", "ohlc_order", "open 0.0 < low 9.0"),
        (0, "volume", "volume", "volume -5.0 < 0"),
    ]


def test_nan_price_is_numeric_not_ohlc_order() -> None:
    assert violations(bars(high=[float("nan")])) == [
        (0, "high", "numeric", "high 'NaN' is not a finite number")
    ]


def test_null_ts_is_a_timestamp_violation_with_the_raw_text() -> None:
    frame = bars(ts=[None], _raw_ts=["yesterday"])
    result = invalid_rows(frame, Interval.parse("1m")).collect()
    assert result.select("column", "value", "rule").rows() == [("ts", "yesterday", "timestamp")]


@pytest.mark.parametrize(
    ("interval", "ts", "bad"),
    [
        ("1m", utc(2024, 1, 2, 14, 30, 0), False),
        ("1m", dt.datetime(2024, 1, 2, 14, 30, 0, 500, tzinfo=dt.UTC), True),
        ("5m", utc(2024, 1, 2, 14, 31), True),
        ("1h", utc(2024, 1, 2, 14, 30), False),
        ("1h", utc(2024, 1, 2, 14, 40), True),
        ("1s", utc(2024, 1, 2, 14, 30, 7), False),
        ("1d", utc(2024, 1, 2), False),
        ("1d", utc(2024, 1, 2, 5), True),
    ],
)
def test_grid_rule_follows_the_interval(interval: str, ts: dt.datetime, bad: bool) -> None:
    rules = [rule for _, _, rule, _ in violations(bars(ts=[ts]), interval)]
    assert rules == (["grid"] if bad else [])


def test_duplicate_rule_ignores_identical_repeats_and_other_symbols() -> None:
    frame = bars(_row=[0, 1, 2], symbol=["A", "A", "B"], close=[10.5, 10.5, 10.0])
    assert violations(frame) == []
    clash = bars(_row=[0, 1], close=[10.5, 10.0])
    assert [r[2] for r in violations(clash)] == ["duplicate", "duplicate"]


def test_rules_are_documented_in_the_module_docstring() -> None:
    import pipeline.validate as module

    assert module.__doc__ is not None
    assert all(f"\n{rule}\n" in module.__doc__ for rule in RULES)


def test_describe_reports_rows_with_the_unit_and_offset() -> None:
    found = pl.DataFrame(
        {
            "_row": [4],
            "column": ["volume"],
            "value": ["-1.0"],
            "rule": ["volume"],
            "detail": ["volume -1.0 < 0"],
        }
    )
    text = describe(found, "x.parquet", header_lines=0, unit="row")
    assert "file 'x.parquet' row 5: volume -1.0 < 0 (rule volume)" in text


def test_sql_audit_finds_the_same_stored_rows_as_the_polars_rules() -> None:
    import duckdb

    frame = bars(
        _row=[0, 1, 2, 3, 4],
        ts=[utc(2024, 1, 2, 14, 30 + i) for i in range(5)],
        open=[10.0, 12.0, 10.0, -1.0, 10.0],
        volume=[1.0, 1.0, -3.0, 1.0, 1.0],
    ).collect()
    stored = frame.drop("_row").with_columns(interval=pl.lit("1m"))
    sql = (Path(__file__).resolve().parents[2] / "queries" / "audit_bars.sql").read_text()
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("bars", stored.to_arrow())
    audit = con.execute(sql, {"interval": "1m", "symbol": None}).fetchall()
    sql_side = sorted((row[2].minute - 30, row[8]) for row in audit)
    polars_side = invalid_rows(frame.lazy(), Interval.parse("1m")).collect()
    assert sql_side == sorted(polars_side.select("_row", "rule").unique().rows())
    assert sql_side == [(1, "ohlc_order"), (2, "volume"), (3, "ohlc_order"), (3, "positive_price")]
    only = con.execute(sql, {"interval": "1m", "symbol": "OTHER"}).fetchall()
    assert only == []
