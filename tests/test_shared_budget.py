"""One budget per token across processes and machines, counted by the server.

The protocol server runs in its own process and counts every call when it arrives, on a sliding
60-second window at the same limit neo is configured with: a window neo let go over the limit
shows as a rate-limit reply. These are the measurements the README and BENCHMARKS.md quote.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest
from conftest import (
    END_DATE,
    assert_rows_once,
    calls_per_minute,
    tushare_home,
    worst_window,
)
from tushare_server import ServerProcess

from neo_cli.providers.market import Market

pytestmark = [pytest.mark.slow, pytest.mark.limits]

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
