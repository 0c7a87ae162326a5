"""Bounded: while the database cannot be written, saves are retried and never dropped, the slow
queue stops taking work, and once its backlog passes the bound the downloads pause. When the
database comes back everything drains, every row saved once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import assert_saved_exactly, wait_for
from conftest import status_of as status

pytestmark = pytest.mark.slow

SYMBOLS = 80
HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
"""


def test_locked_database_pauses_saves_then_downloads_and_loses_nothing(home):
    home.configure(
        provider__simulated={"symbols": SYMBOLS},
        rate_limits={
            "daily": 3000,
            "adj_factor": 3000,
            "income": 1200,
            "balancesheet": 1200,
            "cashflow": 1200,
        },
        fast={"max_save_backlog": 12},
        slow={"batch_size": 1000, "batch_timeout": 0.5},
    )
    home.run("start", check=True)
    home.run("enqueue", "--task-type", "stock_basic", check=True)
    home.wait_idle(timeout=60)

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home.data / "neo.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        home.run("enqueue", "--task-type", "daily_qfq", check=True)

        def throttled():
            code, d = status(home)
            return (code, d) if d["queues"]["fast"]["throttled"] else None

        code, data = wait_for(throttled, 60, "downloads to pause")
        assert code == 5 and not data["healthy"]
        assert "locked by another program" in data["database_error"]
        assert f"pid {holder.pid}" in data["database_error"]
        assert "save backlog" in data["queues"]["fast"]["throttled"]
        assert "max_save_backlog 12" in data["queues"]["fast"]["throttled"]
        assert data["queues"]["slow"]["throttled"].startswith("database unavailable")
        # Downloads stopped: the save backlog holds still (past the bound by at most what the
        # limiters had already let through) and the download backlog waits.
        time.sleep(2)
        _, before = status(home)
        time.sleep(3)
        _, later = status(home)
        assert later["queues"]["fast"]["pending"] > 0
        assert later["queues"]["slow"]["pending"] == before["queues"]["slow"]["pending"]
        assert later["queues"]["fast"]["pending"] == before["queues"]["fast"]["pending"]
        table = home.run("status")
        assert "locked by another program" in table.stdout
        assert "save backlog" in table.stdout
        assert later["task_types"]["daily"]["save_success_rate"] < 1
    finally:
        holder.communicate("\n", timeout=10)

    final = home.wait_idle(timeout=240)
    assert final["healthy"] and final["database_error"] == ""
    home.run("stop", check=True)
    assert_saved_exactly(home, SYMBOLS, apis=("daily", "adj_factor"))
