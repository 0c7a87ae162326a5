"""The whole market's statements in a few calls (`income_vip` & co.), and the fall-back to one
call per symbol when the account may not use them — counted by the protocol server in its own
process."""

from __future__ import annotations

import json

import pytest
from conftest import assert_rows_once, kill_tree_for, tushare_home
from tushare_server import ServerProcess

from neo_cli.providers.market import Market
from neo_cli.tasktypes import STATEMENTS

pytestmark = pytest.mark.slow

TOKEN = "vip-token"
SYMBOLS = 40
HISTORY_END = "20261030"  # the full history first, through this day
UPDATE_END = "20261031"  # then a one-day update: four companies announce on this day
VIPS = [f"{api}_vip" for api in STATEMENTS]
CAP = 1000  # below the market's ~2,400 rows a statement: the history pages by offset


def serve(tmp_path, end: str, *extra: str) -> ServerProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    caps = ",".join(f"{api}={CAP}" for api in VIPS)
    return ServerProcess(
        tmp_path,
        *("--symbols", str(SYMBOLS), "--token", TOKEN, "--end-date", end),
        *("--row-caps", caps),
        *extra,
    )


def statements_home(tmp_path, url: str):
    return tushare_home(
        tmp_path / "home",
        url,
        TOKEN,
        row_caps={api: CAP for api in VIPS},
        retry={"max_attempts": 3, "base_delay": 0.1, "max_delay": 0.2},
    )


def start_with_symbols(home) -> None:
    home.run("start", check=True)
    home.run("enqueue", "-t", "stock_basic", check=True)
    home.wait_idle(timeout=60)


def run_statements(home, end: str) -> None:
    for api in STATEMENTS:
        home.run("enqueue", "-t", api, "--end-date", end, check=True)
    home.wait_idle(timeout=240)


def every_code(end: str) -> list[str]:
    from datetime import datetime

    return Market(20240101, SYMBOLS, datetime.strptime(end, "%Y%m%d").date()).ts_codes()


def test_whole_market_statements_cost_a_few_calls_and_save_every_row(tmp_path) -> None:
    history = serve(tmp_path / "s1", HISTORY_END)
    home = statements_home(tmp_path, history.url)
    try:
        start_with_symbols(home)
        run_statements(home, HISTORY_END)
        home.run("stop", check=True)
    finally:
        first = history.stop()
        kill_tree_for(home.data)
    assert first is not None
    for api, vip in zip(STATEMENTS, VIPS, strict=True):
        rows = first["apis"][vip]["rows"]
        # Paged by offset: about rows / cap calls (one window here), none per symbol.
        assert first["apis"][vip]["accepted"] <= rows // CAP + 2, first["apis"][vip]
        assert first["apis"][api]["accepted"] == 0
        assert_rows_once(home, api, every_code(HISTORY_END), SYMBOLS, HISTORY_END)

    update = serve(tmp_path / "s2", UPDATE_END)
    try:
        home.configure(
            provider={"name": "tushare"},
            provider__tushare={"url": update.url},
            row_caps={api: CAP for api in VIPS},
        )
        home.run("start", check=True)
        run_statements(home, UPDATE_END)
        home.run("stop", check=True)
    finally:
        second = update.stop()
        kill_tree_for(home.data)
    assert second is not None
    for api, vip in zip(STATEMENTS, VIPS, strict=True):
        assert 1 <= second["apis"][vip]["accepted"] <= 3, second["apis"][vip]
        assert second["apis"][api]["accepted"] == 0
        assert second["apis"][vip]["rejected"] == 0
        assert_rows_once(home, api, every_code(UPDATE_END), SYMBOLS, UPDATE_END)
    done = home.run("verify", "--end-date", UPDATE_END, "-t", "income")
    assert done.returncode == 0, done.stdout


def test_without_the_points_one_refused_call_then_per_symbol_and_every_row(tmp_path) -> None:
    denied = serve(tmp_path / "s", HISTORY_END, "--deny", ",".join(VIPS))
    home = statements_home(tmp_path, denied.url)
    try:
        start_with_symbols(home)
        run_statements(home, HISTORY_END)
        status = json.loads(home.run("status", "--json", check=True).stdout)
        # Said once, remembered: a second run plans per symbol from the start.
        again = home.run("enqueue", "-t", "income", "--end-date", HISTORY_END, "--dry-run")
        home.run("stop", check=True)
    finally:
        stats = denied.stop()
        kill_tree_for(home.data)
    assert stats is not None
    codes = every_code(HISTORY_END)
    for api, vip in zip(STATEMENTS, VIPS, strict=True):
        assert stats["apis"][vip]["errors"] == {"no_permission": 1}, stats["apis"][vip]
        assert stats["apis"][vip]["accepted"] == 0
        assert stats["apis"][api]["accepted"] == len(codes)  # one call per symbol
        assert "没有访问该接口的权限" in status["task_types"][api]["vip_refused"]
        assert not status["task_types"][api]["paused"]  # not stopped, as a missing
        assert_rows_once(home, api, codes, SYMBOLS, HISTORY_END)  # permission would be
    assert "whole-market" not in again.stdout
    log = (home.data / "logs" / "fast.log").read_text(encoding="utf-8")
    assert log.count("income_vip refused") == 1
    assert TOKEN not in log
