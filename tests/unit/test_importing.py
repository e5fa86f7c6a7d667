from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import polars as pl
import pytest

from pipeline import presets
from pipeline.errors import ConfigError, InputError
from pipeline.importing import ImportOptions, bar_files, import_files, read_bars
from pipeline.store import Store

HEADER = "ts,open,high,low,close,volume\n"
UTC_OPEN = ImportOptions(interval="1m", symbol="ACME", tz="UTC", stamp="open")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def write(tmp_path: Path, text: str | bytes, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def zipped(tmp_path: Path, relative: str, member: str, text: str) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, text)
    return path


def stamps(path: Path, options: ImportOptions) -> list[dt.datetime]:
    return read_bars(path, options).bars["ts"].to_list()


# ------------------------------------------------------------------ shape
def test_read_bars_returns_bars_schema_sorted_by_symbol_and_ts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "symbol,ts,open,high,low,close,volume\n"
        "BBB,2024-01-02 14:31,1,2,1,2,10\n"
        "AAA,2024-01-02 14:31,1,2,1,2,10\n"
        "AAA,2024-01-02 14:30,1,2,1,2,10\n",
    )
    parsed = read_bars(path, ImportOptions(interval="1m", tz="UTC", stamp="open"))
    assert dict(parsed.bars.schema) == {
        "symbol": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64),
    }
    assert parsed.bars.select("symbol", "ts").rows() == [
        ("AAA", utc(2024, 1, 2, 14, 30)),
        ("AAA", utc(2024, 1, 2, 14, 31)),
        ("BBB", utc(2024, 1, 2, 14, 31)),
    ]
    assert parsed.rejected.is_empty()
    assert str(parsed.interval) == "1m"


def test_newest_first_file_comes_out_sorted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2024-01-02 14:32,1,1,1,1,1\n2024-01-02 14:31,1,1,1,1,1\n2024-01-02 14:30,1,1,1,1,1\n",
    )
    assert stamps(path, UTC_OPEN) == [utc(2024, 1, 2, 14, m) for m in (30, 31, 32)]


# ------------------------------------------------------------------ time
@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-02T14:30:00Z",
        "2024-01-02T14:30:00+00:00",
        "2024-01-02 09:30:00-05:00",
        "2024-01-02T09:30-0500",
    ],
)
def test_stamps_with_an_offset_need_no_time_zone(tmp_path: Path, stamp: str) -> None:
    path = write(tmp_path, HEADER + f"{stamp},1,1,1,1,1\n")
    assert stamps(path, ImportOptions(interval="1m", symbol="ACME", stamp="open")) == [
        utc(2024, 1, 2, 14, 30)
    ]


def test_naive_stamps_without_a_time_zone_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 09:30,1,1,1,1,1\n")
    with pytest.raises(
        InputError, match=r"have no time zone; pass --tz America/New_York .* or --tz UTC"
    ):
        read_bars(path, ImportOptions(interval="1m", symbol="ACME", stamp="open"))


def test_intraday_stamps_need_the_open_or_close_convention(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02T14:30:00Z,1,1,1,1,1\n")
    with pytest.raises(InputError, match="pass --stamp open or --stamp close"):
        read_bars(path, ImportOptions(interval="1m", symbol="ACME"))


def test_close_stamps_are_shifted_back_one_interval(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 09:35,1,1,1,1,1\n")
    options = ImportOptions(interval="5m", symbol="ACME", tz="America/New_York", stamp="close")
    assert stamps(path, options) == [utc(2024, 1, 2, 14, 30)]


@pytest.mark.parametrize(
    ("day", "expected"),
    [("2024-03-08", utc(2024, 3, 8, 14, 30)), ("2024-03-11", utc(2024, 3, 11, 13, 30))],
)
def test_naive_new_york_stamps_follow_daylight_saving(
    tmp_path: Path, day: str, expected: dt.datetime
) -> None:
    path = write(tmp_path, HEADER + f"{day} 09:30,1,1,1,1,1\n")
    options = ImportOptions(interval="1m", symbol="ACME", tz="America/New_York", stamp="open")
    assert stamps(path, options) == [expected]


def test_nonexistent_local_time_is_an_invalid_timestamp_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-03-10 01:59,1,1,1,1,1\n2024-03-10 02:30,1,1,1,1,1\n")
    options = ImportOptions(
        interval="1m", symbol="ACME", tz="America/New_York", stamp="open", skip_invalid=True
    )
    parsed = read_bars(path, options)
    assert parsed.bars["ts"].to_list() == [utc(2024, 3, 10, 6, 59)]
    assert parsed.rejected.select("row", "rule").rows() == [(3, "timestamp")]
    assert "does not exist in America/New_York" in parsed.rejected["detail"][0]


def test_ambiguous_local_time_is_an_invalid_timestamp_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-11-03 01:30,1,1,1,1,1\n")
    options = ImportOptions(interval="1m", symbol="ACME", tz="America/New_York", stamp="open")
    with pytest.raises(InputError, match=r"line 2: local time 2024-11-03 01:30:00 occurs twice"):
        read_bars(path, options)


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-02",
        "20240102",
        "2024-01-02 16:00:00",
        "2024-01-02T16:00:00-05:00",
        "2024-01-02T23:30:00-05:00",
    ],
)
def test_daily_bars_are_labelled_by_the_written_date_at_midnight_utc(
    tmp_path: Path, stamp: str
) -> None:
    path = write(tmp_path, HEADER + f"{stamp},1,1,1,1,1\n")
    assert stamps(path, ImportOptions(interval="1d", symbol="ACME")) == [utc(2024, 1, 2)]


def test_weekly_bars_are_labelled_by_their_monday(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-05,1,1,1,1,1\n2024-01-08,1,1,1,1,1\n")
    assert stamps(path, ImportOptions(interval="1w", symbol="ACME")) == [
        utc(2024, 1, 1),
        utc(2024, 1, 8),
    ]


def test_date_only_stamps_for_an_intraday_interval_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02,1,1,1,1,1\n")
    with pytest.raises(InputError, match="dates without a time"):
        read_bars(path, UTC_OPEN)


@pytest.mark.parametrize(
    "stamp",
    [
        "20240102 143000",
        "20240102 14:30",
        "2024-01-02 14:30:00",
        "2024-01-02T14:30",
        "2024/01/02 14:30",
    ],
)
def test_common_stamp_formats_are_recognised(tmp_path: Path, stamp: str) -> None:
    path = write(tmp_path, HEADER + f"{stamp},1,1,1,1,1\n")
    assert stamps(path, UTC_OPEN) == [utc(2024, 1, 2, 14, 30)]


def test_rows_in_another_stamp_format_are_invalid_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2024-01-02 14:30,1,1,1,1,1\n2024-01-02 14:31,1,1,1,1,1\n02/01/2024 14:32,1,1,1,1,1\n",
    )
    with pytest.raises(
        InputError, match=r"line 4: '02/01/2024 14:32' does not match the file's stamp format"
    ):
        read_bars(path, UTC_OPEN)


def test_integer_epoch_stamps_are_not_guessed(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1704205800,1,1,1,1,1\n")
    with pytest.raises(InputError, match="epoch or counter stamps are not guessed"):
        read_bars(path, UTC_OPEN)


# ------------------------------------------------------------------ columns
def test_short_and_mixed_case_headers_are_recognised(tmp_path: Path) -> None:
    path = write(tmp_path, " Timestamp ;O;H;L;C;V;Adj Close\n2024-01-02 14:30;1;2;0.5;1.5;10;9\n")
    bar = read_bars(path, UTC_OPEN).bars.row(0, named=True)
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == (
        1.0,
        2.0,
        0.5,
        1.5,
        10.0,
    )


def test_separate_date_and_time_columns_are_combined(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,09:30,1,1,1,1,1\n20240102,0931,1,1,1,1,1\n",
    )
    options = ImportOptions(
        interval="1m", symbol="ACME", tz="America/New_York", stamp="open", skip_invalid=True
    )
    parsed = read_bars(path, options)
    assert parsed.bars["ts"].to_list() == [utc(2024, 1, 2, 14, 30)]
    assert parsed.rejected.select("row", "rule").rows() == [(3, "timestamp")]


def test_user_column_mapping_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "Time,Open,High,Low,Last,Close,Vol\n2024-01-02T14:30:00Z,1,3,1,2,9,5\n")
    options = ImportOptions(interval="1m", symbol="ACME", stamp="open", columns={"close": "last"})
    assert read_bars(path, options).bars["close"].to_list() == [2.0]


def test_headerless_columns_can_be_mapped_by_number(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-01-02T14:30:00Z|1|2|1|2|7\n")
    mapping = {"ts": "1", "open": "2", "high": "3", "low": "4", "close": "5", "volume": "6"}
    options = ImportOptions(interval="1m", symbol="ACME", stamp="open", columns=mapping)
    assert read_bars(path, options).bars["volume"].to_list() == [7.0]


def test_missing_column_error_names_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "When,Open,High,Low,Close,Volume\n2024-01-02 14:30,1,1,1,1,1\n")
    with pytest.raises(
        InputError, match=r"no column for ts .*found 'When', 'Open'.*--column ts=NAME"
    ):
        read_bars(path, UTC_OPEN)


def test_mapping_an_unknown_field_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 14:30,1,1,1,1,1\n")
    with pytest.raises(ConfigError, match="did you mean 'close'"):
        read_bars(path, ImportOptions(interval="1m", columns={"clsoe": "x"}))


def test_options_are_hashable_and_keep_the_mapping() -> None:
    options = ImportOptions(columns={"ts": "Time"})
    assert hash(options) == hash(ImportOptions(columns=(("ts", "Time"),)))
    assert options.column_map == {"ts": "Time"}


# ------------------------------------------------------------------ files
def test_non_utf8_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode() + b"2024-01-02 14:30,1,1,1,1,1\nCaf\xe9,1,1,1,1,1\n")
    with pytest.raises(
        InputError, match=r"not UTF-8 text: line 3 holds byte 0xE9.*Save it as UTF-8"
    ):
        read_bars(path, UTC_OPEN)


@pytest.mark.parametrize("text", ["", HEADER, HEADER + "\n\n"])
def test_empty_or_header_only_file_holds_no_bars(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputError, match="holds no bars"):
        read_bars(write(tmp_path, text), UTC_OPEN)


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 14:30,1,1,1,1,1\n\n2024-01-02 14:31,1,0.5,1,1,1\n")
    with pytest.raises(InputError, match="line 4: high 0.5 < low 1.0"):
        read_bars(path, UTC_OPEN)


def test_zip_member_is_named_in_messages(tmp_path: Path) -> None:
    path = zipped(tmp_path, "bars.zip", "inner.csv", HEADER + "2024-01-02 14:30,1,2,1,3,1\n")
    with pytest.raises(InputError, match=r"bars\.zip:inner\.csv' line 2: close 3.0 > high 2.0"):
        read_bars(path, UTC_OPEN)


def test_zip_with_two_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", HEADER)
        archive.writestr("b.csv", HEADER)
    with pytest.raises(InputError, match="exactly one CSV"):
        read_bars(path, UTC_OPEN)


def test_parquet_rows_are_reported_by_row_number(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "ts": [utc(2024, 1, 2, 14, 30), utc(2024, 1, 2, 14, 31)],
            "open": [1.0, 1.0],
            "high": [2.0, 2.0],
            "low": [1.0, 1.0],
            "close": [1.5, 1.5],
            "volume": [1.0, -1.0],
        }
    )
    path = tmp_path / "acme.parquet"
    frame.write_parquet(path)
    with pytest.raises(InputError, match=r"acme\.parquet' row 2: volume -1.0 < 0 \(rule volume\)"):
        read_bars(path, ImportOptions(interval="1m", stamp="open"))


def test_parquet_with_a_zoned_datetime_column_needs_no_tz(tmp_path: Path) -> None:
    ts = pl.Series([dt.datetime(2024, 1, 2, 9, 30)]).dt.replace_time_zone("America/New_York")
    frame = pl.DataFrame(
        {"ts": ts, "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]}
    )
    path = tmp_path / "acme.parquet"
    frame.write_parquet(path)
    assert stamps(path, ImportOptions(interval="1m", stamp="open")) == [utc(2024, 1, 2, 14, 30)]
    assert stamps(path, ImportOptions(interval="1d")) == [utc(2024, 1, 2)]


# ------------------------------------------------------------------ symbol / interval
def test_symbol_is_taken_from_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 14:30,1,1,1,1,1\n", name="brk.b.csv")
    options = ImportOptions(interval="1m", tz="UTC", stamp="open")
    assert read_bars(path, options).bars["symbol"].to_list() == ["BRK.B"]


@pytest.mark.parametrize("symbol", ["../x", "a/b", ".", ".hidden", ""])
def test_unsafe_symbol_is_refused(tmp_path: Path, symbol: str) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 14:30,1,1,1,1,1\n")
    with pytest.raises(InputError, match="is not valid"):
        read_bars(path, ImportOptions(interval="1m", symbol=symbol, tz="UTC", stamp="open"))


def test_unsafe_symbol_in_a_symbol_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ticker," + HEADER + "../etc,2024-01-02 14:30,1,1,1,1,1\n")
    with pytest.raises(InputError, match="'../etc' is not valid"):
        read_bars(path, ImportOptions(interval="1m", tz="UTC", stamp="open"))


def test_missing_interval_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-02 14:30,1,1,1,1,1\n")
    with pytest.raises(InputError, match="pass --interval"):
        read_bars(path, ImportOptions(symbol="ACME", tz="UTC", stamp="open"))


# ------------------------------------------------------------------ presets
def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'ninjatrader'"):
        ImportOptions(preset="ninjatrder")


def test_describe_all_names_every_preset() -> None:
    text = presets.describe_all()
    assert all(f"{name}:" in text for name in ("lean", "ninjatrader", "alphavantage"))


def test_ninjatrader_preset_reads_utc_close_stamps(tmp_path: Path) -> None:
    path = write(tmp_path, "20110103 143100;126.35;126.39;126.35;126.39;1579\r\n")
    parsed = read_bars(path, ImportOptions(preset="ninjatrader", symbol="SPY", interval="1m"))
    assert parsed.bars.row(0) == (
        "SPY",
        utc(2011, 1, 3, 14, 30),
        126.35,
        126.39,
        126.35,
        126.39,
        1579.0,
    )


def test_alphavantage_preset_takes_symbol_and_interval_from_the_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "datetime,open,high,low,close,volume\n2019-02-11 09:45:00,1,1,1,1,1\n",
        "QQQ_15min.csv",
    )
    parsed = read_bars(path, ImportOptions(preset="alphavantage"))
    assert (str(parsed.interval), parsed.bars["symbol"][0], parsed.bars["ts"][0]) == (
        "15m",
        "QQQ",
        utc(2019, 2, 11, 14, 30),
    )


def test_lean_preset_reads_ms_since_midnight_and_deci_cents(tmp_path: Path) -> None:
    path = zipped(
        tmp_path,
        "equity/usa/minute/acme/20240102_trade.zip",
        "x.csv",
        "34200000,7495500,7499900,7485400,7485400,11492\n",
    )
    parsed = read_bars(path, ImportOptions(preset="lean"))
    assert parsed.bars.row(0) == (
        "ACME",
        utc(2024, 1, 2, 14, 30),
        749.55,
        749.99,
        748.54,
        748.54,
        11492.0,
    )


def test_lean_index_prices_are_plain_and_stamped_in_chicago(tmp_path: Path) -> None:
    path = zipped(
        tmp_path,
        "index/usa/minute/spx/20230703_trade.zip",
        "x.csv",
        "30600000,4447.33,4447.33,4442.88,4443.79,0\n",
    )
    assert read_bars(path, ImportOptions(preset="lean")).bars.row(0)[1:3] == (
        utc(2023, 7, 3, 13, 30),
        4447.33,
    )


def test_lean_daily_zip_is_labelled_by_date(tmp_path: Path) -> None:
    path = zipped(
        tmp_path,
        "equity/usa/daily/spy.zip",
        "spy.csv",
        "19980102 00:00,973100,975300,965300,973600,2150000\n",
    )
    parsed = read_bars(path, ImportOptions(preset="lean"))
    assert (str(parsed.interval), parsed.bars.row(0)[:3]) == ("1d", ("SPY", utc(1998, 1, 2), 97.31))


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("equity/usa/hour/spy.zip", "top of the hour"),
        ("equity/usa/minute/spy/20240102_quote.zip", "quotes"),
        ("stuff/spy.zip", "not inside a LEAN data tree"),
    ],
)
def test_lean_preset_refuses_what_it_cannot_import(
    tmp_path: Path, relative: str, message: str
) -> None:
    path = zipped(tmp_path, relative, "x.csv", "1,2,3,4,5,6\n")
    with pytest.raises(InputError, match=message):
        read_bars(path, ImportOptions(preset="lean"))


def test_folder_import_with_lean_preset_skips_quote_files(tmp_path: Path) -> None:
    for name in ("20240103_trade.zip", "20240102_trade.zip", "20240102_quote.zip"):
        zipped(tmp_path, f"equity/usa/minute/acme/{name}", "x.csv", "34200000,1,1,1,1,1\n")
    files = bar_files([tmp_path / "equity"], ImportOptions(preset="lean"))
    assert [f.name for f in files] == ["20240102_trade.zip", "20240103_trade.zip"]


# ------------------------------------------------------------------ import_files
def test_import_files_writes_every_interval_once(tmp_path: Path) -> None:
    minute = write(
        tmp_path,
        HEADER + "2024-01-02T14:30:00Z,1,1,1,1,1\n2024-01-02T14:31:00Z,1,1,1,1,1\n",
        "in/acme.csv",
    )
    daily = write(
        tmp_path, "date,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n", "in/daily/acme.csv"
    )
    calls: list[tuple[int, int]] = []
    store = Store(tmp_path / "store")
    options = ImportOptions(stamp="open", interval=None)
    with pytest.raises(InputError, match="pass --interval"):
        import_files(store, [minute], options)
    report = import_files(
        store,
        [minute],
        ImportOptions(interval="1m", stamp="open"),
        progress=lambda d, t: calls.append((d, t)),
    )
    report_1d = import_files(store, [daily.parent], ImportOptions(interval="1d"))
    assert (report.files, report.rows_read, report.rows_written, report.rows_skipped) == (
        1,
        2,
        2,
        0,
    )
    assert dict(report.symbols) == {"1m": ("ACME",)}
    assert calls == [(1, 1)]
    assert report_1d.rows_written == 1
    assert store.read("1m").collect().height == 2


def test_one_bad_file_refuses_the_whole_import(tmp_path: Path) -> None:
    write(tmp_path, HEADER + "2024-01-02T14:30:00Z,1,1,1,1,1\n", "in/a.csv")
    write(tmp_path, HEADER + "2024-01-02T14:30:00Z,1,0,1,1,1\n", "in/b.csv")
    store = Store(tmp_path / "store")
    with pytest.raises(InputError, match=r"b\.csv' line 2"):
        import_files(store, [tmp_path / "in"], ImportOptions(interval="1m", stamp="open"))
    assert store.intervals() == []


def test_skip_invalid_import_reports_the_skipped_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER + "2024-01-02T14:30:00Z,1,1,1,1,1\n2024-01-02T14:31:00Z,1,0,1,1,-1\n"
    )
    options = ImportOptions(interval="1m", symbol="ACME", stamp="open", skip_invalid=True)
    report = import_files(Store(tmp_path / "store"), [path], options)
    assert (report.rows_read, report.rows_written, report.rows_skipped) == (2, 1, 1)
    assert report.rejected.select("row", "rule").rows() == [
        (3, "positive_price"),
        (3, "ohlc_order"),
        (3, "volume"),
    ]


def test_files_that_disagree_on_a_bar_refuse_the_import(tmp_path: Path) -> None:
    write(tmp_path, HEADER + "2024-01-02T14:30:00Z,1,1,1,1,1\n", "in/a/acme.csv")
    write(tmp_path, HEADER + "2024-01-02T14:30:00Z,2,2,2,2,2\n", "in/b/acme.csv")
    store = Store(tmp_path / "store")
    with pytest.raises(InputError, match="differ between the files"):
        import_files(store, [tmp_path / "in"], ImportOptions(interval="1m", stamp="open"))
    assert store.intervals() == []


def test_folder_without_bar_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "notes", "in/README.md")
    with pytest.raises(InputError, match="holds no bar files"):
        bar_files([tmp_path / "in"], ImportOptions())
