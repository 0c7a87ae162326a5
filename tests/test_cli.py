"""The CLI in-process (typer's CliRunner): exact output, one-line errors, exit codes, and the
`status --json` schema."""

from __future__ import annotations

import json

import pytest

from neo_cli.errors import EXIT_INPUT, EXIT_NOT_RUNNING, EXIT_QUEUE_FULL

COMMANDS = ["start", "stop", "enqueue", "status", "task", "logs", "query"]


def one_line_error(result, code: int = EXIT_INPUT) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    text = result.output.strip()
    assert text.startswith("neo: error: "), text
    assert "\n" not in text, f"not one line: {text!r}"
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(home, command):
    result = home.cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example: neo " in result.output


def test_help_lists_every_command(home):
    result = home.cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_plain_neo_shows_the_help_and_version_says_which(home):
    import subprocess
    import sys

    from neo_cli import __version__

    plain = subprocess.run([sys.executable, "-m", "neo_cli"], capture_output=True, text=True)
    assert plain.returncode == 0 and plain.stderr == ""
    assert plain.stdout.startswith("Usage: neo [OPTIONS] COMMAND [ARGS]...\n")
    assert "  status " in plain.stdout
    version = subprocess.run(
        [sys.executable, "-m", "neo_cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout == f"neo {__version__}\n"


# -- status --json ---------------------------------------------------------------------------

SCHEMA = {
    "schema": int,
    "version": str,
    "time": float,
    "data_dir": str,
    "running": bool,
    "healthy": bool,
    "database_error": str,
    "queues": dict,
    "task_types": dict,
    "processes": dict,
    "eta_seconds": (int, float),
    "units_in_progress": int,
    "coverage": dict,
}
QUEUE_KEYS = {
    "pending",
    "scheduled",
    "in_flight",
    "done_per_min",
    "failed_per_min",
    "failures_per_min",
    "throttled",
    "totals",
}
TYPE_KEYS = {
    "pending",
    "scheduled",
    "calls_per_min",
    "limit_per_min",
    "rejected_per_min",
    "retries_per_min",
    "dead_per_min",
    "calls_total",
    "calls_by_outcome",
    "limiter_wait_seconds_total",
    "rows_saved",
    "table_rows",
    "quarantined",
    "save_success_rate",
    "dead_lettered",
    "paused",
}
PROCESS_KEYS = {"state", "pid", "started", "restarts", "reason", "uptime", "cpu_percent", "rss_mb"}


def check_schema(data: dict) -> None:
    for key, kind in SCHEMA.items():
        assert isinstance(data[key], kind), (key, data[key])
    assert data["schema"] == 2
    assert set(data["queues"]) == {"fast", "slow"}
    for q in data["queues"].values():
        assert set(q) >= QUEUE_KEYS
        assert q["failed_per_min"] == sum(q["failures_per_min"].values())
    assert set(data["queues"]["fast"]["failures_per_min"]) == {"retried", "rate_limited", "dead"}
    assert set(data["queues"]["slow"]["failures_per_min"]) == {"errors", "flush_failures"}
    assert set(data["task_types"]) == {
        "stock_basic",
        "daily",
        "adj_factor",
        "income",
        "balancesheet",
        "cashflow",
    }
    for api, t in data["task_types"].items():
        statement = api in ("income", "balancesheet", "cashflow")
        assert set(t) == TYPE_KEYS | ({"vip_refused"} if statement else set()), api
    assert set(data["processes"]) == {"supervisor", "fast", "slow"}
    for p in data["processes"].values():
        assert set(p) >= PROCESS_KEYS


def test_status_json_when_stopped(home):
    home.cli("enqueue", "--task-type", "stock_basic")
    result = home.cli("status", "--json")
    assert result.exit_code == EXIT_NOT_RUNNING
    data = json.loads(result.output)
    check_schema(data)
    assert data["running"] is False and data["healthy"] is False
    assert data["queues"]["fast"]["pending"] == 3
    assert data["task_types"]["stock_basic"]["pending"] == 3
    assert data["units_in_progress"] == 3
    assert {p["state"] for p in data["processes"].values()} == {"stopped"}
    assert data["eta_seconds"] == pytest.approx(3 / 60 * 60)


def test_status_table_when_stopped(home):
    result = home.cli("status")
    assert result.exit_code == EXIT_NOT_RUNNING
    assert "neo stopped for" in result.output
    for title in ("Queues", "Task types", "Processes"):
        assert title in result.output


# -- enqueue ------------------------------------------------------------------------------------


def test_enqueue_prints_counts_and_a_batch_that_resolves(home):
    result = home.cli("enqueue", "--task-type", "stock_basic")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("enqueued 3 stock_basic task(s) as batch b")
    batch = result.output.split("as batch ")[1].split(";")[0]
    again = home.cli("enqueue", "--task-type", "stock_basic")
    assert "enqueued 0 stock_basic task(s)" in again.output
    assert "skipped 1 already queued" in again.output

    shown = home.cli("task", batch)
    assert shown.exit_code == 0
    assert f"batch {batch}: stock_basic, 3 task(s)" in shown.output
    assert "queued    3" in shown.output


def test_enqueue_by_symbols_and_task_by_id_prefix(home):
    result = home.cli(
        "enqueue",
        "--task-type",
        "daily_qfq",
        "--symbols",
        "000001.SZ, 600000.sh",
        "--start-date",
        "20240101",
        "--end-date",
        "20240131",
    )
    assert result.exit_code == 0, result.output
    # daily packs both codes into one call; adj_factor takes one code a call
    assert "enqueued 3 daily_qfq task(s)" in result.output
    from neo_cli.ledger import Ledger

    ledger = Ledger(home.data / "ledger.db")
    unit = ledger.live_units()[0]
    ledger.close()
    shown = home.cli("task", unit.unit.id[:10])
    assert shown.exit_code == 0, shown.output
    assert "20240101..20240131" in shown.output
    assert "queued, waiting for a download worker" in shown.output


def test_enqueue_without_a_symbol_list_says_how_to_fill_it(home):
    text = one_line_error(home.cli("enqueue", "--task-type", "daily"))
    assert "stock_basic table is empty" in text
    assert "neo enqueue --task-type stock_basic" in text


def test_enqueue_refuses_past_max_pending_and_enqueues_nothing(home):
    home.configure(queue={"max_pending": 4})
    home.cli("enqueue", "--task-type", "stock_basic")
    result = home.cli(
        "enqueue",
        "--task-type",
        "income",
        "--symbols",
        "000001.SZ,000002.SZ",
    )
    text = one_line_error(result, EXIT_QUEUE_FULL)
    assert "3 tasks pending + 2 new > max_pending 4" in text
    status = json.loads(home.cli("status", "--json").output)
    assert status["queues"]["fast"]["pending"] == 3


BAD_ENQUEUE = [
    (["--task-type", "weekly"], "unknown task type 'weekly'; allowed: stock_basic, daily"),
    (["-t", "daily", "--symbols", "000001"], "malformed symbol '000001' in --symbols"),
    (["-t", "daily", "--symbols", ","], "--symbols ',' names no symbol"),
    (
        ["-t", "daily", "--symbols", "000001.SZ", "--start-date", "2024-01-01"],
        "invalid --start-date '2024-01-01'; expected YYYYMMDD",
    ),
    (
        ["-t", "daily", "--symbols", "000001.SZ", "--end-date", "20240230"],
        "invalid --end-date '20240230': no such day",
    ),
    (
        [
            "-t",
            "daily",
            "--symbols",
            "000001.SZ",
            "--start-date",
            "20240301",
            "--end-date",
            "20240101",
        ],
        "--end-date 20240101 is before --start-date 20240301",
    ),
    (
        ["-t", "daily", "--symbols-file", "/nonexistent/list.txt"],
        "symbols file /nonexistent/list.txt does not exist",
    ),
    (["-t", "stock_basic", "--symbols", "000001.SZ"], "stock_basic takes no symbols"),
    (
        ["-t", "daily", "--symbols", "000001.SZ", "--symbols-file", "x"],
        "give --symbols or --symbols-file, not both",
    ),
    (["-t", "daily", "--priority", "abc"], "Invalid value for '--priority'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ENQUEUE)
def test_bad_enqueue_input_is_one_line(home, args, message):
    text = one_line_error(home.cli("enqueue", *args))
    assert message in text


def test_empty_symbols_file(home, tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# nothing yet\n\n")
    text = one_line_error(home.cli("enqueue", "-t", "daily", "--symbols-file", str(path)))
    assert f"symbols file {path} lists no symbols" in text


def test_bad_line_in_symbols_file_names_the_line(home, tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("000001.SZ\n600000.SH  # bank\nAAPL\n")
    text = one_line_error(home.cli("enqueue", "-t", "daily", "--symbols-file", str(path)))
    assert f"malformed symbol 'AAPL' in {path} line 3" in text


def test_bad_flag_value_names_the_flag(home):
    text = one_line_error(home.cli("start", "--fast-workers", "abc"))
    assert "'--fast-workers'" in text
    text = one_line_error(home.cli("start", "--fast-workers", "0"))
    assert (
        "invalid [fast] workers = 0 (from --fast-workers); allowed: a whole number from 1" in text
    )


def test_config_that_is_not_toml(home):
    home.config.write_text("[fast\nworkers = 5\n")
    text = one_line_error(home.cli("status"))
    assert f"config file {home.config} is not valid TOML" in text


def test_unknown_config_key(home):
    home.config.write_text("[fast]\nwrokers = 5\n")
    text = one_line_error(home.cli("status"))
    assert "unknown key 'wrokers' in [fast]" in text
    assert "allowed: workers" in text


def test_task_unknown_and_logs_unknown(home):
    home.cli("enqueue", "--task-type", "stock_basic")
    assert "no task or batch 'zzzz'" in one_line_error(home.cli("task", "zzzz"))
    assert "unknown process 'db'" in one_line_error(home.cli("logs", "db"))


def test_stop_when_not_running(home):
    text = one_line_error(home.cli("stop"), EXIT_NOT_RUNNING)
    assert text == f"neo: error: neo is not running for {home.data}"


def test_inline_enqueue_saves_one_symbol(home):
    args = ("enqueue", "--task-type", "daily", "--symbols", "000001.SZ")
    result = home.cli(*args, "--start-date", "20260101", "--inline")
    assert result.exit_code == 0, result.output
    assert "inline daily: 1 task(s) saved" in result.output
    rows = int(result.output.split("saved, ")[1].split(" rows")[0])
    assert 200 < rows < 240
    again = home.cli(*args, "--start-date", "20260101", "--inline")
    assert "0 task(s) saved" in again.output and "1 up to date" in again.output
    shown = home.cli("query", "select count(*) as n from daily")
    assert shown.exit_code == 0 and str(rows) in shown.output
    csv = home.cli("query", "select ts_code, close from daily order by trade_date", "--csv")
    lines = csv.output.splitlines()
    assert lines[0] == "ts_code,close" and len(lines) == rows + 1


# -- bad input at start: the database and the data directory ------------------------------------


def test_start_refuses_a_corrupt_database_and_leaves_it_alone(home):
    home.data.mkdir(parents=True)
    db = home.data / "neo.duckdb"
    db.write_bytes(b"this is not a database" * 100)
    text = one_line_error(home.cli("start"), 7)
    assert f"database {db} is not a valid DuckDB file" in text
    assert db.read_bytes() == b"this is not a database" * 100


def test_start_refuses_a_database_held_by_another_program(home):
    import subprocess
    import sys

    home.cli("enqueue", "--task-type", "stock_basic", "--inline")
    db = home.data / "neo.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "sys.stdin.readline()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        text = one_line_error(home.cli("start"), 7)
        assert "is locked by another program" in text and f"pid {holder.pid}" in text
    finally:
        holder.communicate("\n", timeout=10)
    shown = home.cli("query", "select count(*) from stock_basic")
    assert "40" in shown.output or "3" in shown.output  # still there, untouched


def test_data_directory_that_cannot_be_written(home, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    home.configure(paths={"data_dir": str(blocker / "data")})
    for args in (["start"], ["enqueue", "-t", "stock_basic"]):
        text = one_line_error(home.cli(*args))
        assert f"data directory {blocker / 'data'} is not writable" in text
    # A health check does not create what it checks: it reports neo stopped.
    assert home.cli("status").exit_code == EXIT_NOT_RUNNING
    assert not (blocker / "data").exists()
