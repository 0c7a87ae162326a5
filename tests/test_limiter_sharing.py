"""One budget shared between processes: the local file and a real Redis, with real processes.

The window arithmetic of every backend is in test_limiter.py (fake clock); here are the things a
fake clock cannot show: slots taken by separate processes never bunch, a holder killed with
SIGKILL blocks nobody, pauses and stops reach every process and outlive them, two tokens never
share a budget, an unreachable Redis fails closed, a restarted Redis pauses a whole window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_server import free_port

from neo_cli.errors import LimiterUnavailable, SlotTooFar
from neo_cli.limits import Limiter, budget_id
from neo_cli.limits.local import LocalBackend

SPACING_SLACK = 0.012  # seconds: wake-up jitter of a sleeping process on a busy 2-core machine

TAKER = r"""
import json, sys, time
from neo_cli.errors import SlotTooFar
from neo_cli.limits import Limiter
kind, where, budget, limit, n, start = sys.argv[1:7]
if kind == "local":
    from pathlib import Path
    from neo_cli.limits.local import LocalBackend
    backend = LocalBackend(Path(where), budget)
else:
    from neo_cli.limits.redis import RedisBackend
    backend = RedisBackend(where, budget, ["daily"])
limiter = Limiter("daily", int(limit), backend, margin=0.0)
while time.time() < float(start):
    time.sleep(0.001)
grants = []
while len(grants) < int(n):
    try:
        limiter.acquire(claimed=False)
    except SlotTooFar as exc:
        time.sleep(min(exc.delay, 0.05))
        continue
    grants.append(time.time())
print(json.dumps(grants))
"""


def take_in_processes(kind: str, where: str, budget: str, limit: int, each: int, procs: int):
    start = time.time() + 1.5  # every process is up and waiting when the race begins
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, kind, where, budget, str(limit), str(each), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    grants = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        grants += json.loads(out)
    return sorted(grants)


def where_for(kind: str, tmp_path: Path, request) -> str:
    if kind == "local":
        return str(tmp_path / "limiter.db")
    return request.getfixturevalue("redis_server").url


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_processes_take_turns_on_one_budget(kind, tmp_path, request) -> None:
    """Three processes, 15 slots each at 600/min (0.1 s apart): 45 slots, none closer than
    one spacing to another, so no 60 s window can hold more than the limit."""
    where = where_for(kind, tmp_path, request)
    grants = take_in_processes(kind, where, os.urandom(4).hex(), 600, 15, 3)
    assert len(grants) == 45
    gaps = [b - a for a, b in zip(grants, grants[1:], strict=False)]
    assert min(gaps) >= 0.1 - SPACING_SLACK, min(gaps)
    # And nobody starved: 45 slots take about 44 spacings.
    assert grants[-1] - grants[0] < 44 * 0.1 + 1.5


HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("begin immediate")
conn.execute("update budget set next = next where 1")
print("holding", flush=True)
time.sleep(600)
"""


def test_a_holder_killed_mid_transaction_blocks_nobody(tmp_path) -> None:
    path = tmp_path / "limiter.db"
    backend = LocalBackend(path, "b")
    limiter = Limiter("daily", 600, backend, margin=0.0)
    limiter.acquire()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    started = time.monotonic()
    limiter.acquire()  # the kernel dropped the dead holder's lock: no wait for a timeout
    assert time.monotonic() - started < 1.0
    backend.close()


def backends_for(kind: str, tmp_path: Path, request, budget: str):
    """Two backends on one store, as two processes would open it."""
    if kind == "local":
        return [LocalBackend(tmp_path / "limiter.db", budget) for _ in range(2)]
    from neo_cli.limits.redis import RedisBackend

    url = request.getfixturevalue("redis_server").url
    return [RedisBackend(url, budget, ["daily", "income"]) for _ in range(2)]


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_pauses_and_stops_reach_every_process_and_outlive_it(kind, tmp_path, request) -> None:
    budget = os.urandom(4).hex()
    a, b = backends_for(kind, tmp_path, request, budget)
    first = Limiter("daily", 60, a)
    first.pause_until(time.time() + 3600, "API refused a call (hour limit)")
    a.close()  # the process that saw the cap is gone; the cap stays
    second = Limiter("daily", 60, b)
    until, reason = second.paused()
    assert until == pytest.approx(time.time() + 3600, abs=5)
    assert reason == "API refused a call (hour limit)"
    with pytest.raises(SlotTooFar) as info:
        second.acquire()
    assert info.value.reason == "API refused a call (hour limit)"

    Limiter("income", 60, b).pause_until(float("inf"), "stopped: bad token")
    assert Limiter("income", 60, b).paused() == (float("inf"), "stopped: bad token")
    b.clear_stops()  # what `neo start` does: a new run tries again
    assert Limiter("income", 60, b).paused()[0] <= time.time()
    assert Limiter("income", 60, b).acquire() < 1.0
    # ... but a cap is not a stop: it stays until it resets.
    assert Limiter("daily", 60, b).paused()[1] == "API refused a call (hour limit)"
    b.close()


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_two_tokens_never_share_a_budget(kind, tmp_path, request) -> None:
    one, two = budget_id("tushare", "token-one"), budget_id("tushare", "token-two")
    assert one != two and one == budget_id("tushare", "token-one")
    (a, _), (b, _) = (backends_for(kind, tmp_path, request, x) for x in (one, two))
    Limiter("daily", 60, a).pause_until(time.time() + 600, "refused")
    assert Limiter("daily", 60, b).paused()[0] <= time.time()
    assert Limiter("daily", 60, b).acquire() < 1.0


def test_redis_keys_hold_a_fingerprint_never_the_token(redis_server) -> None:
    from neo_cli.limits.redis import RedisBackend

    token = "a-secret-token-1234567890"
    backend = RedisBackend(redis_server.url, budget_id("tushare", token), ["daily"])
    Limiter("daily", 60, backend).acquire()
    Limiter("daily", 60, backend).pause_until(time.time() + 5, "refused")
    client = redis_server.client()
    for key in client.scan_iter("*"):
        assert token.encode() not in key
        if client.type(key) == b"hash":
            assert all(token.encode() not in v for v in client.hgetall(key).values())
    assert any(budget_id("tushare", token).encode() in k for k in client.scan_iter("neo:*"))
    backend.close()


def test_an_unreachable_redis_fails_closed_and_says_where() -> None:
    from neo_cli.limits.redis import RedisBackend

    port = free_port()  # nothing listens there
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    backend = RedisBackend(url, "b", ["daily"], timeout=0.5)
    limiter = Limiter("daily", 60, backend)
    assert not limiter.ready()
    with pytest.raises(SlotTooFar) as info:
        limiter.acquire()
    assert info.value.reason.startswith(
        f"limiter: Redis unreachable at redis://:***@127.0.0.1:{port}"
    )
    assert "hunter2" not in str(info.value)
    with pytest.raises(LimiterUnavailable) as down:
        backend.check()
    assert "hunter2" not in str(down.value)
    backend.close()


@pytest.mark.parametrize("snapshot", [False, True], ids=["history-lost", "history-restored"])
def test_a_redis_restart_pauses_every_interface_for_one_window(own_redis, snapshot) -> None:
    """Lost (no persistence) or brought back from an older snapshot, the history after a
    restart does not hold the last calls: every interface waits one window."""
    from neo_cli.limits.redis import RESTART_REASON, RedisBackend

    backends = [RedisBackend(own_redis.url, "b", ["daily", "income"]) for _ in range(2)]
    limiters = [Limiter("daily", 600, b) for b in backends]
    if snapshot:
        limiters[0].acquire()
        own_redis.client().save()  # the snapshot the restart will load: it lacks what follows
    for limiter in limiters:
        limiter.acquire()
    own_redis.restart()
    if snapshot:
        # Even a process that never saw the old run finds history written under it.
        fresh = RedisBackend(own_redis.url, "b", ["daily", "income"])
        with pytest.raises(SlotTooFar) as info:
            Limiter("income", 600, fresh).acquire()
        assert info.value.reason == RESTART_REASON
        fresh.close()
    # No slot is granted on the lost history: the call after the restart fails closed (its
    # connection died) or meets the restart's pause; within a back-off it is the pause.
    reasons = []
    deadline = time.monotonic() + 5
    while RESTART_REASON not in reasons and time.monotonic() < deadline:
        with pytest.raises(SlotTooFar) as info:
            limiters[0].acquire()
        reasons.append(info.value.reason)
        if info.value.reason == RESTART_REASON:
            assert 55 < info.value.delay <= 60
        else:
            assert info.value.reason.startswith("limiter: Redis unreachable"), reasons
            time.sleep(0.6)
    assert RESTART_REASON in reasons
    # Every process on the budget, and every interface, waits out the same window.
    for backend in backends:
        for api in ("daily", "income"):
            until, reason = Limiter(api, 60, backend).paused()
            assert reason == RESTART_REASON and until > time.time() + 55
    with pytest.raises(SlotTooFar):
        limiters[1].acquire()
    for b in backends:
        b.close()
