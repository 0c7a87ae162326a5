"""The whole pipeline with real consumer subprocesses (50 fast workers, 4 slow) on the simulated
provider: several hundred symbols' daily bars, factors and statements saved exactly once, with
zero rate-limit rejections from an API that enforces its limits over a sliding window."""

from __future__ import annotations

import json
import re
from datetime import date

import duckdb
import pytest
from conftest import assert_saved_exactly

from neo_cli.ledger import Ledger
from neo_cli.metrics import MetricsStore
from neo_cli.providers.market import Market
from neo_cli.tasktypes import VIP

pytestmark = [pytest.mark.slow, pytest.mark.limits]

SYMBOLS = 330  # about 300 listed
LIMITS = {
    "stock_basic": 120,
    "daily": 2400,
    "adj_factor": 2400,
    "income": 900,
    "balancesheet": 900,
    "cashflow": 900,
}


def test_two_queues_save_every_row_once_at_the_limit(home):
    home.configure(
        provider__simulated={"symbols": SYMBOLS, "latency_ms": 5.0, "jitter_ms": 5.0},
        rate_limits=LIMITS,
        fast={"workers": 50},
        slow={"workers": 4, "batch_size": 20000, "batch_timeout": 1.0},
    )
    started = home.run("start", "--fast-workers", "50", "--slow-workers", "4", check=True)
    assert "fast" in started.stdout and "slow" in started.stdout

    home.run("enqueue", "--task-type", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    for task_type in ("daily_qfq", "income", "balancesheet", "cashflow"):
        out = home.run("enqueue", "--task-type", task_type, check=True).stdout
        assert "enqueued" in out
    status = home.wait_idle(timeout=600)
    assert status["running"] and status["healthy"]

    # A second run finds the bars up to date: every symbol's span is covered. Statements are
    # asked again for the days not over yet (an announcement may still come): one
    # whole-market call each. Neither may double a row.
    again = home.run("enqueue", "--task-type", "daily_qfq", check=True).stdout
    match = re.search(r"enqueued (\d+) daily_qfq .* (\d+) up to date", again)
    assert match, again
    assert int(match.group(1)) < 0.05 * int(match.group(2)), again
    home.run("enqueue", "--task-type", "income", check=True)
    home.wait_idle(timeout=120)
    stopped = home.run("stop", check=True)
    assert "neo stopped" in stopped.stdout

    saved = assert_saved_exactly(home, SYMBOLS)
    conn = duckdb.connect(str(home.data / "neo.duckdb"), read_only=True)
    try:
        market = Market(20240101, SYMBOLS, date(2026, 11, 20))
        assert len(market.ts_codes("L")) >= 280
        stock_basic = sum(len(market.rows("stock_basic", {"list_status": s})) for s in "LDP")
        assert conn.execute("SELECT count(*) FROM stock_basic").fetchone()[0] == stock_basic
        qfq = conn.execute("SELECT count(*) FROM daily_qfq").fetchone()[0]
        assert qfq == conn.execute("SELECT count(*) FROM daily").fetchone()[0]
    finally:
        conn.close()

    ledger = Ledger(home.data / "ledger.db")
    counts = ledger.state_counts()
    ledger.close()
    assert all(set(states) == {"saved"} for states in counts.values()), counts

    store = MetricsStore(home.data / "metrics.db")
    totals = store.totals()
    store.close()
    assert set(counts) == {"stock_basic", "daily", "adj_factor", *VIP}  # whole-market statements
    for api in counts:
        assert totals.get((api, "calls_rate_limited"), 0) == 0, f"{api} was rate-limited"
        units = sum(counts[api].values())
        if api in VIP:  # a window of the whole market's statements pages by design
            rows = saved[VIP[api]]
            assert units <= totals[(api, "calls")] <= units + rows // 5000, (api, rows)
        else:  # one call per unit: the planner sized every range under the row cap
            assert totals[(api, "calls")] == units, api
    print(json.dumps({f"{s}.{n}": v for (s, n), v in sorted(totals.items())}, indent=1))
