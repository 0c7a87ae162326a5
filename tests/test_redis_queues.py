"""The queues on a real Redis with real consumers: a fast consumer SIGKILLed while its workers
hold tasks loses none — its leases run out and the tasks go back on the queue — and every row
is saved exactly once."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime

import pytest
from conftest import assert_saved_exactly, status_of, wait_for

pytestmark = pytest.mark.slow

SYMBOLS = 60


def test_a_killed_consumers_leased_tasks_come_back_and_rows_stay_exactly_once(home, own_redis):
    home.configure(
        queue={"storage": "redis", "redis_url": own_redis.url, "lease_seconds": 3.0},
        provider__simulated={"symbols": SYMBOLS, "latency_ms": 40.0, "jitter_ms": 20.0},
        rate_limits={
            "stock_basic": 600,
            "daily": 900,
            "adj_factor": 900,
            "income": 900,
            "balancesheet": 900,
            "cashflow": 900,
        },  # fmt: skip
        plan={"multi_symbol": False, "whole_market": False, "statements_vip": "false"},
        supervisor={"restart_base_delay": 0.2, "restart_max_delay": 1.0, "min_uptime": 1.0},
    )
    home.run("start", check=True)
    home.run("enqueue", "-t", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    for kind in ("daily_qfq", "income"):
        home.run("enqueue", "-t", kind, check=True)

    def busy():
        _, data = status_of(home)
        return data if data["queues"]["fast"]["in_flight"] >= 3 else None

    data = wait_for(busy, 30, "fast workers holding tasks")
    victim = data["processes"]["fast"]["pid"]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()

    data = home.wait_idle(timeout=300)
    assert data["processes"]["fast"]["restarts"] == 1
    log = (home.data / "logs" / "fast.log").read_text()
    back = re.findall(r"^(\S+ \S+) WARNING .* (\d+) task\(s\) whose consumer stopped renewing", log,
                      re.M)  # fmt: skip
    assert back, "no leased task came back"
    assert sum(int(n) for _, n in back) >= 3
    first = datetime.strptime(back[0][0], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
    print(f"leased tasks back {first - killed_at:.1f}s after the SIGKILL (lease 3 s)")
    assert first - killed_at < 3.0 + 5.0, "a lease plus a few beats and a restart"
    home.run("stop", check=True)
    assert_saved_exactly(home, SYMBOLS, apis=("daily", "adj_factor", "income"))
    verify = home.run("verify", "-t", "daily_qfq")
    assert verify.returncode == 0, verify.stdout
