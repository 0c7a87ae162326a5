"""What `neo` imports, seen from the process a user runs (`-X importtime`): `neo status` keeps to
the queues, the ledger and the metrics store, and registering the commands, which every `neo`
command does first, imports no command's library."""

from __future__ import annotations

import subprocess
import sys


def imported(home, *args: str) -> set[str]:
    """Every module `python -m neo_cli ARGS` imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "neo_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=home.subprocess_env(),
        cwd=home.root,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_status_json_imports_no_database_http_or_table_library(home):
    result = home.cli("enqueue", "--task-type", "adj_factor", "--symbols", "000001.SZ,600000.SH")
    assert result.exit_code == 0, result.output
    modules = imported(home, "status", "--json", "--config", str(home.config))
    assert {"neo_cli.status", "neo_cli.pipeline"} <= modules  # it did read the queues
    heavy = {"duckdb", "pandas", "numpy", "httpx", "rich.table", "rich.live"}
    other_commands = {"neo_cli.planner", "neo_cli.enqueue", "neo_cli.db.database"}
    assert modules & (heavy | other_commands) == set()


def test_registering_the_commands_imports_no_queue_or_database(home):
    modules = imported(home, "--version")
    queues = {"neo_cli.pipeline", "neo_cli.status", "huey", "redis"}
    heavy = {"duckdb", "pandas", "httpx", "rich.table", "importlib.metadata"}
    assert modules & (queues | heavy) == set()
