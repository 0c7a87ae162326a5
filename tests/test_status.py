"""What `neo` imports, seen from the process a user runs (`-X importtime`): `neo status` keeps to
the queues, the ledger and the metrics store, and registering the commands, which every `neo`
command does first, imports no command's library."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from neo_cli.pipeline import Pipeline
from neo_cli.queues.counts import sqlite_counts


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
    assert {"neo_cli.status", "neo_cli.queues.counts"} <= modules  # it did read the queues
    # The SQLite queues are counted from their files: Huey's storage would import redis too.
    heavy = {"duckdb", "pandas", "numpy", "httpx", "rich.table", "rich.live", "huey", "redis"}
    other_commands = {"neo_cli.planner", "neo_cli.enqueue", "neo_cli.db.database"}
    assert modules & (heavy | other_commands) == set()
    # Read from the file, the counts are the storage's own.
    shown = json.loads(home.cli("status", "--json").output)
    own = Pipeline(home.settings()).fast.storage.counts_by_kind()
    assert own["adj_factor"][0] >= 2
    assert shown["task_types"]["adj_factor"]["pending"] == own["adj_factor"][0]
    assert shown["queues"]["fast"]["pending"] == sum(p for p, _ in own.values())


def test_registering_the_commands_imports_no_queue_or_database(home):
    modules = imported(home, "--version")
    queues = {"neo_cli.pipeline", "neo_cli.status", "huey", "redis"}
    heavy = {"duckdb", "pandas", "httpx", "rich.table", "importlib.metadata"}
    assert modules & (queues | heavy) == set()


def test_a_queue_file_not_there_yet_counts_nothing_and_is_not_made(tmp_path):
    path = tmp_path / "fast.db"
    assert sqlite_counts(path, "fast") == {}
    assert not path.exists()
    sqlite3.connect(path).close()  # a file without the tables: nothing queued either
    assert sqlite_counts(path, "fast") == {}
