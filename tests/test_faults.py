"""Errors classified: with the simulated API failing 5% of calls transiently (timeouts, 502s,
malformed replies) and some symbols permanently, everything transient ends saved, everything
permanent ends dead-lettered with the API's message, and retries stay proportionate."""

from __future__ import annotations

import json

import pytest
from conftest import assert_saved_exactly

from neo_cli.ledger import Ledger
from neo_cli.metrics import MetricsStore

pytestmark = pytest.mark.slow

SYMBOLS = 120
DENIED = ("000002.SZ", "600000.SH", "300001.SZ")
LIMITS = {
    "stock_basic": 120,
    "daily": 2400,
    "adj_factor": 2400,
    "income": 1200,
    "balancesheet": 1200,
    "cashflow": 1200,
}


def test_transient_faults_end_saved_and_permanent_ones_dead_lettered(home):
    home.configure(
        provider__simulated={
            "symbols": SYMBOLS,
            "latency_ms": 5.0,
            "jitter_ms": 5.0,
            "timeout_rate": 0.01,
            "error_rate": 0.03,
            "malformed_rate": 0.01,
            "deny_symbols": ",".join(DENIED),
        },
        fast={"call_timeout": 0.3},
        retry={"max_attempts": 10, "base_delay": 0.2, "max_delay": 2.0},
        rate_limits=LIMITS,
    )
    home.run("start", check=True)
    home.run("enqueue", "--task-type", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    for kind in ("daily_qfq", "income", "balancesheet", "cashflow"):
        home.run("enqueue", "--task-type", kind, check=True)
    data = home.wait_idle(timeout=300)
    assert data["healthy"]
    dead_shown = {api: v["dead_lettered"] for api, v in data["task_types"].items()}

    listed = [d for d in DENIED]  # the denied symbols are listed ones in this market
    ledger = Ledger(home.data / "ledger.db")
    try:
        dead = ledger.dead()
        counts = ledger.state_counts()
        # A packed daily call holding a denied symbol is split into one unit per symbol.
        units = sum(n for s in counts.values() for state, n in s.items() if state != "split")
    finally:
        ledger.close()
    # Permanent: exactly the denied symbols' units, each once, with the API's message.
    assert {code for r in dead for code in r.unit.codes} == set(listed)
    assert all("参数错误" in r.error and r.error_class == "permanent" for r in dead)
    assert all(r.attempts >= 1 for r in dead)  # a transient failure may come first
    assert sum(dead_shown.values()) == len(dead)
    # Transient: everything else saved, every row once.
    assert sum(s.get("saved", 0) for s in counts.values()) == units - len(dead)
    assert_saved_exactly(home, SYMBOLS, skip=frozenset(DENIED))

    store = MetricsStore(home.data / "metrics.db")
    totals = store.totals()
    store.close()
    calls = sum(v for (s, n), v in totals.items() if n == "calls")
    retries = sum(v for (s, n), v in totals.items() if n == "retried")
    # 5% of calls fail; each failure is retried once more on average: no retry storm.
    assert 0.02 * calls < retries < 0.10 * calls, (calls, retries)
    assert calls < units * 1.12, (calls, units)
    print(f"units {units}, calls {calls}, retries {retries}, dead {len(dead)}")

    listing = home.run("dlq", "list")
    assert listing.returncode == 0
    for r in dead:
        assert r.unit.id[:12] in listing.stdout
    assert "参数错误" in listing.stdout
    by_type = home.run("dlq", "list", "--task-type", "income")
    assert by_type.stdout.count("income ") == sum(r.unit.api == "income" for r in dead)

    # Retrying sends them back with a fresh count; they fail again, the same way.
    again = home.run("dlq", "retry", "--all")
    assert f"re-enqueued {len(dead)} dead letter(s)" in again.stdout
    home.wait_idle(timeout=60)
    ledger = Ledger(home.data / "ledger.db")
    try:
        assert len(ledger.dead()) == len(dead)
        assert all(r.attempts >= 1 for r in ledger.dead())
    finally:
        ledger.close()

    one = dead[0].unit.id[:8]
    purged = home.run("dlq", "purge", one)
    assert purged.stdout.strip() == "purged 1 dead letter(s)"
    rest = home.run("dlq", "purge", "--all")
    assert rest.stdout.strip() == f"purged {len(dead) - 1} dead letter(s)"
    assert home.run("dlq", "list").stdout.strip() == "no dead letters"
    assert (
        json.loads(home.run("status", "--json").stdout)["task_types"]["daily"]["dead_lettered"] == 0
    )
