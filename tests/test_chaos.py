"""Nothing lost, nothing doubled: consumers (and the supervisor) killed with SIGKILL at random
moments while several hundred symbols' bars and statements flow. After neo runs again, every row
is saved exactly once and every task is saved or dead-lettered with a reason."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import psutil
import pytest
from conftest import assert_saved_exactly

from neo_cli.ledger import Ledger

pytestmark = pytest.mark.slow

SYMBOLS = 300
LIMITS = {
    "stock_basic": 120,
    "daily": 1800,
    "adj_factor": 1800,
    "income": 900,
    "balancesheet": 900,
    "cashflow": 900,
}


def status(home) -> dict:
    return json.loads(home.run("status", "--json").stdout)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(home):
    rng = random.Random(20261123)  # a failure replays with the same kills
    home.configure(
        provider__simulated={"symbols": SYMBOLS, "latency_ms": 10.0, "jitter_ms": 10.0},
        rate_limits=LIMITS,
        slow={"batch_size": 8000, "batch_timeout": 1.0},
        supervisor={
            "restart_base_delay": 0.2,
            "restart_max_delay": 1.0,
            "min_uptime": 0.5,
            "max_quick_failures": 20,
        },
    )
    home.run("start", check=True)
    home.run("enqueue", "--task-type", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    for kind in ("daily_qfq", "income", "balancesheet", "cashflow"):
        home.run("enqueue", "--task-type", kind, check=True)

    kills = []
    deadline = time.monotonic() + 90  # bounded in time as well as in count
    for round_ in range(8):
        if time.monotonic() > deadline:
            break
        time.sleep(rng.uniform(1.0, 4.0))
        data = status(home)
        if data["units_in_progress"] == 0:
            break
        victim = "supervisor" if round_ == 5 else rng.choice(["fast", "slow"])
        pid = data["processes"][victim]["pid"]
        if pid is None:  # between restarts
            continue
        os.kill(pid, signal.SIGKILL)
        kills.append(victim)
        if victim == "supervisor":
            # Its consumers notice and stop themselves; neo is then started again, which
            # finds what they were holding.
            for q in ("fast", "slow"):
                child = data["processes"][q]["pid"]
                end = time.monotonic() + 30
                while child and psutil.pid_exists(child) and time.monotonic() < end:
                    time.sleep(0.2)
            restarted = home.run("start")
            assert restarted.returncode == 0, restarted.stderr
            assert "removed a stale pid file" in restarted.stdout
    assert kills.count("fast") >= 2 and kills.count("slow") >= 2 and "supervisor" in kills, kills

    final = home.wait_idle(timeout=400)
    assert final["healthy"], final
    restarts = {q: final["processes"][q]["restarts"] for q in ("fast", "slow")}
    home.run("stop", check=True)

    assert_saved_exactly(home, SYMBOLS)
    ledger = Ledger(home.data / "ledger.db")
    try:
        counts = ledger.state_counts()
    finally:
        ledger.close()
    assert all(set(states) == {"saved"} for states in counts.values()), counts
    recovered = (home.data / "logs" / "supervisor.log").read_text().count("re-enqueued")
    print(f"kills {kills}; restarts after the last start {restarts}; recoveries logged {recovered}")
    assert recovered >= 1
