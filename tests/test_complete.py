"""A complete database: a failure leaves holes that `neo verify` names and that the next plain
incremental run fills, exactly — against the protocol server in its own process."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from conftest import END_DATE, assert_rows_once, kill_tree_for, tushare_home
from tushare_server import ServerProcess

from neo_cli.errors import EXIT_INCOMPLETE
from neo_cli.providers.market import Market

pytestmark = pytest.mark.slow

TOKEN = "complete-token"
SYMBOLS = 40
BAD_DAY = "20150615"


def serve(tmp_path, *extra: str) -> ServerProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        tmp_path, "--symbols", str(SYMBOLS), "--token", TOKEN, "--limits", "daily=600", *extra
    )


def test_a_failed_old_day_is_a_hole_that_the_next_run_fills(tmp_path) -> None:
    failing = serve(tmp_path / "one", "--fail-dates", BAD_DAY)
    sections = {
        "rate_limits": {"daily": 600},
        "retry": {"max_attempts": 2, "base_delay": 0.1, "max_delay": 0.2},
    }
    home = tushare_home(tmp_path / "home", failing.url, TOKEN, **sections)
    market = Market(20240101, SYMBOLS, datetime.strptime(END_DATE, "%Y%m%d").date())
    listed = market.ts_codes()  # every listing status
    try:
        home.run("start", check=True)
        home.run("enqueue", "-t", "stock_basic", check=True)
        home.wait_idle(timeout=60)
        home.run("enqueue", "-t", "daily", "--end-date", END_DATE, check=True)
        home.wait_idle(timeout=300)
        holed = home.run("verify", "-t", "daily", "--end-date", END_DATE, "--json")
        assert holed.returncode == EXIT_INCOMPLETE, holed.stderr
        report = json.loads(holed.stdout)
        assert not report["complete"]
        [daily] = report["apis"]
        # Every symbol trading that day has a hole covering it.
        trading = {c for c in listed if market.rows("daily", {"ts_code": c, "trade_date": BAD_DAY})}
        assert trading and set(daily["holes"]) >= trading
        for code in trading:
            assert any(lo <= BAD_DAY <= hi for lo, hi in daily["holes"][code]), code
        home.run("stop", check=True)
    finally:
        failing.stop()
        kill_tree_for(home.data)

    fixed = serve(tmp_path / "two")
    try:
        home.configure(
            provider={"name": "tushare"}, provider__tushare={"url": fixed.url}, **sections
        )
        home.run("start", check=True)
        again = home.run("enqueue", "-t", "daily", "--end-date", END_DATE, check=True).stdout
        assert "enqueued" in again
        home.wait_idle(timeout=300)
        complete = home.run("verify", "-t", "daily", "--end-date", END_DATE)
        assert complete.returncode == 0, complete.stdout
        assert "daily: complete" in complete.stdout
        # Nothing more to ask: an up-to-date database costs no call.
        idle = home.run("enqueue", "-t", "daily", "--end-date", END_DATE, check=True).stdout
        assert idle.startswith("enqueued 0 daily task(s)"), idle
        home.run("stop", check=True)
    finally:
        stats = fixed.stop()
        kill_tree_for(home.data)
    assert stats is not None and stats["apis"]["daily"]["rejected"] == 0
    assert_rows_once(home, "daily", listed, SYMBOLS)
