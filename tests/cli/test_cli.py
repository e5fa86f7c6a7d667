"""The command line, end to end through typer's runner: results, errors, exit codes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import typer
from cli_commands import command_paths
from typer.testing import CliRunner

from pipeline import __version__
from pipeline.catalog import reset_catalog
from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
runner = CliRunner()

GOOD_CSV = """timestamp,open,high,low,close,volume
2024-07-01 09:31:00,10.0,10.5,9.9,10.2,100
2024-07-01 09:32:00,10.2,10.4,10.1,10.3,200
2024-07-01 09:33:00,10.3,10.6,10.2,10.5,150
"""


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    reset_catalog()


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"pipeline {__version__}"


def test_data_list_shows_the_sample() -> None:
    result = runner.invoke(app, ["data", "list", "--root", str(SAMPLE), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["interval"], r["symbol"]) for r in rows} == {
        (i, s) for i in ("1m", "1d") for s in ("ACME", "BOLT", "TINY")
    }


def test_data_check_summary_and_incomplete_sessions() -> None:
    result = runner.invoke(app, ["data", "check", "--root", str(SAMPLE), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    summary = {(r["symbol"], r["interval"]): r for r in json.loads(result.stdout)}
    assert summary[("ACME", "1m")]["quality"] == 100.0
    assert summary[("BOLT", "1m")]["present"] == summary[("BOLT", "1m")]["expected"] - 4
    assert summary[("TINY", "1m")]["quality"] < 40.0
    detail = runner.invoke(
        app, ["data", "check", "--root", str(SAMPLE), "--sessions", "--incomplete", "-f", "json"]
    )
    bolt = [r for r in json.loads(detail.stdout) if r["symbol"] == "BOLT"]
    assert [(r["session"], r["present"], r["expected"]) for r in bolt] == [
        ("2024-07-01", 387, 390),
        ("2024-07-09", 389, 390),
    ]


def test_data_check_shows_the_early_close() -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "check",
            "--root",
            str(SAMPLE),
            "--sessions",
            "-s",
            "ACME",
            "-i",
            "1m",
            "-f",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if ",2024-07-03," in x)
    assert line.split(",")[3:5] == ["210", "210"]
    assert line.endswith(",true")


def test_data_check_gaps_lists_the_missing_run() -> None:
    result = runner.invoke(
        app, ["data", "check", "--root", str(SAMPLE), "--gaps", "-s", "BOLT", "-f", "json"]
    )
    gaps = json.loads(result.stdout)
    assert [(g["session"], g["missing"]) for g in gaps] == [("2024-07-01", 3), ("2024-07-09", 1)]


def test_import_csv_then_list(tmp_path: Path) -> None:
    src = tmp_path / "XYZ.csv"
    src.write_text(GOOD_CSV)
    root = tmp_path / "store"
    args = ["data", "import", str(src), "-i", "1m", "--tz", "America/New_York", "--stamp", "close"]
    result = runner.invoke(app, [*args, "--root", str(root), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    listed = runner.invoke(app, ["data", "list", "--root", str(root), "-f", "json"])
    [row] = json.loads(listed.stdout)
    assert (row["symbol"], row["rows"], row["first"]) == ("XYZ", 3, "2024-07-01T13:30:00+00:00")


def test_bad_file_is_one_line_error_and_nothing_written(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(SAMPLE, root)
    before = snapshot(root)
    bad = tmp_path / "ACME.csv"
    bad.write_text(GOOD_CSV.replace("10.4,10.1", "10.0,10.1"))  # high 10.0 < low 10.1
    result = runner.invoke(
        app,
        [
            "data",
            "import",
            str(bad),
            "-i",
            "1m",
            "--tz",
            "UTC",
            "--stamp",
            "open",
            "--root",
            str(root),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 3" in result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "import", "missing.csv", "-i", "1m"], "missing.csv"),
        (["data", "import", "x.csv", "--preset", "leen"], "did you mean 'lean'"),
        (
            ["data", "import", "x.csv", "-i", "1m", "--stamp", "middle"],
            "--stamp open or --stamp close",
        ),
        (["data", "import", "x.csv", "-i", "7q"], "Interval '7q' is not valid"),
        (["data", "check", "--calendar", "XNYZ"], "XNYS"),
        (["sql", "SELECT nope FROM bars"], "nope"),
        (["sql", "DELETE FROM bars"], "read-only"),
        (["query", "gapz"], "did you mean 'gaps'"),
        (["query", "gaps", "--param", "interval"], "KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_error_exit_1(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(GOOD_CSV)
    args = [a if a != "x.csv" else str(tmp_path / "x.csv") for a in args]
    result = runner.invoke(app, [*args, "--root", str(SAMPLE)])
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_sql_over_store_views_and_catalog_tables() -> None:
    q = "SELECT symbol, count(*) AS n FROM bars_1d GROUP BY symbol ORDER BY symbol"
    result = runner.invoke(app, ["sql", q, "--root", str(SAMPLE), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "symbol,n"
    empty = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM quality", "-f", "json"])
    assert json.loads(empty.stdout) == [{"n": 0}]


def test_query_lists_and_runs_saved_queries() -> None:
    listing = runner.invoke(app, ["query", "-f", "json"])
    assert "gaps" in {q["name"] for q in json.loads(listing.stdout)}
    result = runner.invoke(
        app,
        [
            "query",
            "gaps",
            "-p",
            "interval=1m",
            "-p",
            "symbol=BOLT",
            "--root",
            str(SAMPLE),
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert [g["missing"] for g in json.loads(result.stdout)] == [3, 1]


def test_sql_cannot_write_to_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(SAMPLE, root)
    before = snapshot(root)
    target = root / "bars/interval=1m/symbol=ACME/year=2024/part-0.parquet"
    for statement in [
        f"COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DROP VIEW bars",
        f"ATTACH '{root}/x.db'",
    ]:
        result = runner.invoke(app, ["sql", statement, "--root", str(root)])
        assert result.exit_code == 1, statement
    assert snapshot(root) == before


def test_sql_cannot_read_files_outside_the_store() -> None:
    for statement in [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{REPO / 'pyproject.toml'}')",
        f"SELECT * FROM read_text('{SAMPLE}/../pipeline/__init__.py')",
    ]:
        result = runner.invoke(app, ["sql", statement, "--root", str(SAMPLE)])
        assert result.exit_code == 1, statement
        assert "disabled by configuration" in result.stderr


def test_sql_cannot_read_the_working_directorys_tmp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "s.txt").write_text("secret")
    monkeypatch.chdir(tmp_path)  # DuckDB's default temp folder is ./.tmp
    result = runner.invoke(
        app, ["sql", "SELECT content FROM read_text('.tmp/s.txt')", "--root", str(SAMPLE)]
    )
    assert result.exit_code == 1
    assert "disabled by configuration" in result.stderr


def test_data_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(SAMPLE))
    result = runner.invoke(app, ["data", "list", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 6


COMMANDS = command_paths()
# A rich markup tag: "[default: x]" or "[strategy]" would vanish from the rendered help.
MARKUP = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "pipeline")
def test_flags_show_no_value_placeholder_in_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "<bool>" in line]  # ours and typer's own (--help)
    assert not [line for line in lines if "--verbose" in line and "<int>" in line]  # a count
    assert any("--help" in line for line in lines)


def test_the_command_groups() -> None:
    assert {p[0] for p in COMMANDS} >= {"data", "run", "runs", "sql", "query"}
    assert {p for p in COMMANDS if p[0] in ("data", "runs")} == {
        ("data", "import"),
        ("data", "list"),
        ("data", "check"),
        ("data", "sample"),
        ("runs", "list"),
        ("runs", "show"),
    }


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: pipeline" in result.stdout


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_text_holds_no_markup_that_would_vanish(path: tuple[str, ...]) -> None:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    texts = [command.help or "", *(getattr(p, "help", "") or "" for p in command.params)]
    assert [t for t in texts if MARKUP.search(t)] == []


def test_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


def test_run_reports_one_row_per_session(tmp_path: Path) -> None:
    config = REPO / "configs" / "sample.toml"
    args = ["run", str(config), "--root", str(SAMPLE), "--sessions", "--runs", str(tmp_path)]
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["session"] for r in rows] == [
        "2024-07-02",
        "2024-07-03",
        "2024-07-05",
        "2024-07-08",
        "2024-07-09",
        "2024-07-10",
    ]
    assert rows[1]["timestamps"] == 210


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "x"\nstart = 2024-07-02\nend = 2024-07-03\nsymbls = ["ACME"]\n',
            "did you mean 'symbols'",
        ),
        (
            'name = "x"\nstart = 2024-07-02\nend = 2024-07-03\nsymbols = ["ZZZ"]\n',
            "ZZZ has no 1m bars",
        ),
        (
            'name = "x"\nstart = 2024-07-06\nend = 2024-07-07\nsymbols = ["ACME"]\n',
            "no XNYS session",
        ),
    ],
)
def test_run_with_a_bad_config_is_one_line_error(text: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(config), "--root", str(SAMPLE), "--runs", str(runs)])
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert not runs.exists() or not any(runs.iterdir())  # nothing written


def test_run_refuses_a_non_positive_speed() -> None:
    config = REPO / "configs" / "sample.toml"
    result = runner.invoke(app, ["run", str(config), "--root", str(SAMPLE), "--speed", "0"])
    assert result.exit_code == 1
    assert "--speed 0.0 is not valid" in result.stderr


def test_error_naming_a_path_with_a_line_break_is_still_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "odd\nname.csv"
    bad.write_bytes(b"\xff\xfe not a bar file")
    result = runner.invoke(
        app, ["data", "import", str(bad), "-i", "1m", "--root", str(tmp_path / "s")]
    )
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


# --- output channels: results on stdout, everything else on stderr ------------------------


def import_args(tmp_path: Path, text: str = GOOD_CSV) -> list[str]:
    src = tmp_path / "XYZ.csv"
    src.write_text(text)
    root = tmp_path / "store"
    return [
        "data",
        "import",
        str(src),
        "-i",
        "1m",
        "--tz",
        "America/New_York",  # inside XNYS regular hours: the import logs no warning
        "--stamp",
        "open",
        "--root",
        str(root),
    ]


def cheap_commands(tmp_path: Path) -> list[list[str]]:
    root = ["--root", str(SAMPLE)]
    return [
        ["data", "list", *root],
        ["data", "check", *root],
        ["data", "check", "--sessions", "--incomplete", *root],
        ["data", "check", "--gaps", *root],
        ["data", "sample", "--root", str(tmp_path / "sample")],
        ["sql", "SELECT symbol, count(*) AS n FROM bars GROUP BY ALL ORDER BY 1", *root],
        ["query"],
        ["query", "gaps", "-p", "interval=1m", "-p", "symbol=BOLT", *root],
    ]


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("index", range(8))
def test_json_and_csv_results_parse_and_agree(index: int, tmp_path: Path) -> None:
    args = cheap_commands(tmp_path)[index]
    as_json = runner.invoke(app, ["-v", *args, "-f", "json"])
    assert as_json.exit_code == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    as_csv = runner.invoke(app, ["-v", *args, "-f", "csv"])
    assert as_csv.exit_code == 0, as_csv.stderr
    table = parse_csv(as_csv.stdout)
    assert len(table) == len(rows) > 0
    assert list(table[0]) == list(rows[0])


def test_import_json_is_one_object_with_the_skipped_rows(tmp_path: Path) -> None:
    bad = GOOD_CSV.replace("10.4,10.1", "10.0,10.1")  # row 3: high < low
    args = [*import_args(tmp_path, bad), "--skip-invalid"]
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_written"], report["symbols"]) == (3, 2, "XYZ")
    assert [(r["row"], r["rule"]) for r in report["rejected"]] == [(3, "ohlc_order")]
    again = runner.invoke(app, [*args, "-f", "csv"])
    [row] = parse_csv(again.stdout)
    assert (row["rows_read"], row["rows_skipped"]) == ("3", "1")


def test_quiet_prints_nothing_on_stderr(tmp_path: Path) -> None:
    bad = GOOD_CSV.replace("10.4,10.1", "10.0,10.1")
    for args in [
        *cheap_commands(tmp_path),
        ["sql", "SELECT 1 AS x WHERE false"],  # "(no rows)" without -q
        [*import_args(tmp_path, bad), "--skip-invalid"],  # a warning without -q
    ]:
        result = runner.invoke(app, ["-q", *args])
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stderr == "", args
        assert result.stdout, args


def test_notes_go_to_stderr_not_stdout() -> None:
    result = runner.invoke(app, ["sql", "SELECT 1 AS x WHERE false", "-f", "json"])
    assert json.loads(result.stdout) == []
    assert result.stderr == ""  # JSON says it is empty; the table adds a note
    table = runner.invoke(app, ["sql", "SELECT 1 AS x WHERE false"])
    assert table.stderr.strip()
    assert "x" in table.stdout


def test_progress_is_off_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    result = runner.invoke(app, import_args(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_in_a_terminal_unless_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.cli import _common

    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    _common.setup_logging(0, quiet=True)
    with _common.progress("Importing") as advance:
        advance(1, 2)
    assert screen.getvalue() == ""
    _common.setup_logging(0, quiet=False)
    with _common.progress("Importing [x]") as advance:
        advance(1, 2)
    assert "Importing [x]" in screen.getvalue()  # the label is text, not markup


def test_table_cells_are_text_not_markup() -> None:
    result = runner.invoke(app, ["sql", "SELECT '[bold]x[/bold]' AS a, '[/oops]' AS b"])
    assert result.exit_code == 0, result.stderr
    assert "[bold]x[/bold]" in result.stdout
    assert "[/oops]" in result.stdout


def test_csv_writes_nested_values_as_json() -> None:
    query = "SELECT [1, 2] AS l, {'a': 1} AS s, NULL::INT[] AS e"
    result = runner.invoke(app, ["sql", query, "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    [row] = parse_csv(result.stdout)
    assert (json.loads(row["l"]), json.loads(row["s"]), row["e"]) == ([1, 2], {"a": 1}, "")


def test_data_sample_prints_what_the_store_holds(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "sample", "--root", str(tmp_path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert {(r["interval"], r["symbol"]) for r in json.loads(result.stdout)} == {
        (i, s) for i in ("1m", "1d") for s in ("ACME", "BOLT", "TINY")
    }


def test_a_long_table_stops_after_max_rows_and_says_so() -> None:
    from pipeline.cli._common import MAX_ROWS

    query = f"SELECT range AS n FROM range({MAX_ROWS + 5})"
    table = runner.invoke(app, ["sql", query])
    assert table.exit_code == 0, table.stderr
    assert "+5 more row(s)" in table.stdout
    cells = [line.strip() for line in table.stdout.splitlines()]
    assert str(MAX_ROWS - 1) in cells
    assert str(MAX_ROWS) not in cells
    whole = runner.invoke(app, ["sql", query, "-f", "csv"])
    assert len(parse_csv(whole.stdout)) == MAX_ROWS + 5
