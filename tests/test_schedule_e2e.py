"""neo started with a schedule a minute ahead runs the daily update by itself — real supervisor,
consumers, ledger and DuckDB file on the simulated provider — and ends complete (`neo verify`
exits 0). A restart afterwards does not run the same time again.

The scheduled time is today's, so whether it is a trading day depends on the day the test runs
(the simulated market closes on weekends and its holidays): on a trading day the update must
run; on any other day it must be skipped, saying why, and enqueue nothing.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import status_of, wait_for

from neo_cli.providers.market import Market

pytestmark = pytest.mark.slow

CHINA = ZoneInfo("Asia/Shanghai")
TYPES = ["stock_basic", "daily_qfq", "income", "balancesheet", "cashflow"]


def a_minute_ahead() -> tuple[str, float]:
    """A cron expression for the next whole minute at least 15 s away (neo starts in about
    three), and that time."""
    at = (datetime.now(CHINA) + timedelta(seconds=75)).replace(second=0, microsecond=0)
    return f"{at.minute} {at.hour} * * *", at.timestamp()


def schedule_runs(home) -> list[tuple]:
    with sqlite3.connect(home.data / "ledger.db") as conn:
        return conn.execute("select slot, owner, state from schedule_runs").fetchall()


def test_the_update_runs_by_itself_once_and_the_database_is_complete(home):
    cron, slot = a_minute_ahead()
    home.configure(
        schedule={"update": cron, "timezone": "Asia/Shanghai", "task_types": TYPES},
        provider__simulated={"symbols": 20, "end_date": ""},  # today: the scheduled day
        rate_limits={
            "stock_basic": 600,
            "daily": 3000,
            "adj_factor": 3000,
            "income": 3000,
            "balancesheet": 3000,
            "cashflow": 3000,
        },  # fmt: skip
    )
    day = datetime.fromtimestamp(slot, CHINA).date()
    trading = bool(Market(20240101, 20, day).trade_dates(day, day))

    started = home.run("start", check=True).stdout
    expected = datetime.fromtimestamp(slot, CHINA).strftime("%Y-%m-%d %H:%M CST")
    assert f"schedule    update '{cron}' (Asia/Shanghai), next {expected}: " in started
    _, before = status_of(home)
    assert before["schedule"]["active"] and before["schedule"]["next"] == slot
    assert before["schedule"]["last"] is None
    assert time.time() < slot  # nothing ran before its time

    def finished():
        run = status_of(home)[1]["schedule"]["last"]
        return run if run and run["state"] in ("done", "skipped", "failed") else None

    last = wait_for(finished, slot - time.time() + 120, "the scheduled update to finish")
    assert last["slot"] == slot and last["slot_local"] == expected
    log = (home.data / "logs" / "supervisor.log").read_text()
    if not trading:
        assert last["state"] == "skipped", last
        assert last["reason"] == f"{day:%Y%m%d} is not a trading day"
        assert f"scheduled update for {expected}: skipped — skipped: {day:%Y%m%d}" in log
        assert home.wait_idle(timeout=30)["units_in_progress"] == 0
        return

    assert last["state"] == "done", last
    assert list(last["task_types"]) == TYPES
    assert all(last["task_types"][t]["enqueued"] > 0 for t in TYPES), last
    assert f"scheduled update for {expected}: done — enqueued " in log
    status_after = home.wait_idle(timeout=300)
    assert status_after["healthy"], status_after

    # stock_basic's rows were saved before the types that plan from the symbol list were
    # planned: the daily_qfq batch is younger than every stock_basic unit's last change.
    with sqlite3.connect(home.data / "ledger.db") as conn:
        basic_saved = conn.execute(
            "select max(updated) from units where api = 'stock_basic' and state = 'saved'"
        ).fetchone()[0]
        qfq_planned = conn.execute(
            "select created from batches where id = ?",
            (last["task_types"]["daily_qfq"]["batch"],),
        ).fetchone()[0]
    assert basic_saved is not None and basic_saved < qfq_planned

    # A restart the same evening finds the time run: nothing again.
    home.run("stop", check=True)
    home.run("start", check=True)
    time.sleep(3)
    assert schedule_runs(home) == [(slot, last["owner"], "done")]
    home.run("stop", check=True)

    verify = home.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "daily: complete (" in verify.stdout and "cashflow: complete (" in verify.stdout
