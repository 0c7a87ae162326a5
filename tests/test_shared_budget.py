"""One budget per token across processes and machines, counted by the server.

The protocol server runs in its own process and counts every call when it arrives, on a sliding
60-second window at the same limit neo is configured with: a window neo let go over the limit
shows as a rate-limit reply. These are the measurements the README and BENCHMARKS.md quote.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

import pytest
from conftest import (
    END_DATE,
    assert_rows_once,
    calls_per_minute,
    kill_tree_for,
    tushare_home,
    worst_window,
)
from tushare_server import ServerProcess

from neo_cli.providers.market import Market

pytestmark = pytest.mark.slow

TOKEN = "shared-budget-token"
SYMBOLS = 80


def listed(n: int) -> list[str]:
    market = Market(20240101, SYMBOLS, datetime.strptime(END_DATE, "%Y%m%d").date())
    return market.ts_codes("L")[:n]


def serve(tmp_path, limits: str) -> ServerProcess:
    return ServerProcess(tmp_path, "--symbols", str(SYMBOLS), "--token", TOKEN, "--limits", limits)


def test_two_inline_runs_at_once_share_one_budget(tmp_path) -> None:
    """Two `neo enqueue --inline` on one data directory, 15 symbols' income statements each,
    at 24 calls/min: 30 calls that would fit one window if each run paced itself alone."""
    limit = 24
    server = serve(tmp_path, f"income={limit},trade_cal=60")
    try:
        home = tushare_home(
            tmp_path / "home", server.url, TOKEN, rate_limits={"income": limit, "trade_cal": 60}
        )
        codes = listed(30)
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "neo_cli",
                    "enqueue",
                    "--inline",
                    "-t",
                    "income",
                    "--symbols",
                    ",".join(part),
                    "--config",
                    str(home.config),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=home.subprocess_env(),
                cwd=home.root,
            )
            for part in (codes[:15], codes[15:])
        ]
        outs = [run.communicate(timeout=300) for run in runs]
    finally:
        stats = server.stop()
    for run, (out, err) in zip(runs, outs, strict=True):
        assert run.returncode == 0, (out, err)
        assert "15 task(s) saved" in out, out
    assert stats is not None
    income = stats["apis"]["income"]
    arrivals = stats["arrivals"]["income"]
    assert income["rejected"] == 0 and stats["apis"]["trade_cal"]["rejected"] == 0
    assert len(arrivals) == 30
    assert worst_window(arrivals) <= limit
    assert calls_per_minute(arrivals) >= 0.98 * limit
    rows = assert_rows_once(home, "income", codes, SYMBOLS)
    assert rows > 0
    print(
        f"two inline runs: {len(arrivals)} calls, worst window {worst_window(arrivals)}/{limit},"
        f" {calls_per_minute(arrivals):.2f}/min, {income['rejected']} refused, {rows} rows once"
    )


def test_three_instances_on_one_redis_hold_one_limit_through_a_redis_restart(
    tmp_path, own_redis
) -> None:
    """Three data directories (three machines), each with its own consumers, one token and
    one Redis: one limit between them; then Redis restarts mid-run (losing every key)."""
    limit = 60
    server = serve(tmp_path, f"income={limit},trade_cal=60")
    homes = []
    try:
        for i in range(3):
            homes.append(
                tushare_home(
                    tmp_path / f"machine{i}",
                    server.url,
                    TOKEN,
                    limiter={"backend": "redis"},
                    queue={"redis_url": own_redis.url},
                    rate_limits={"income": limit, "trade_cal": 60},
                    fast={"workers": 8},
                )
            )
        for h in homes:
            h.run("start", check=True)
        codes = listed(60)
        started = time.monotonic()
        for i, h in enumerate(homes):
            h.run("enqueue", "-t", "income", "--symbols", ",".join(codes[i::3]), check=True)
        time.sleep(max(0.0, started + 30 - time.monotonic()))  # about half the calls made
        restarted = time.monotonic()
        own_redis.restart()
        for h in homes:
            h.wait_idle(timeout=300)
        for h in homes:
            h.run("stop", check=True)
    finally:
        stats = server.stop()
        for h in homes:
            kill_tree_for(h.data)
    assert stats is not None
    income = stats["apis"]["income"]
    arrivals = sorted(stats["arrivals"]["income"])
    assert income["rejected"] == 0 and stats["apis"]["trade_cal"]["rejected"] == 0
    assert len(arrivals) == 60
    assert worst_window(arrivals) <= limit
    before = [t for t in arrivals if t < restarted]
    after = [t for t in arrivals if t >= restarted]
    assert len(before) >= 20, len(before)
    # While all three had work, before the restart: at least 98% of the limit between them.
    assert calls_per_minute(before) >= 0.98 * limit, calls_per_minute(before)
    # After the restart nobody called for one window (calls already on their way excepted):
    # the history of calls was gone.
    assert after, "calls resumed"
    assert not [t - restarted for t in after if restarted + 2 < t < restarted + 59]
    rows = [assert_rows_once(h, "income", codes[i::3], SYMBOLS) for i, h in enumerate(homes)]
    assert all(rows)
    print(
        f"three instances: {len(arrivals)} calls, worst window {worst_window(arrivals)}/{limit},"
        f" {calls_per_minute(before):.2f}/min before the restart ({len(before)} calls),"
        f" calls resumed {min(t for t in after if t > restarted + 2) - restarted:.1f}s after it"
        f" ({sum(1 for t in after if t <= restarted + 2)} already on their way),"
        f" {income['rejected']} refused,"
        f" rows {rows} once each"
    )
