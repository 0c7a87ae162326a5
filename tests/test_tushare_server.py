"""The loopback Tushare Pro server answers in every form the real API does, on real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tushare_server import (
    BAD_TOKEN,
    BUSY_MESSAGE,
    LIMIT_MESSAGES,
    REFUSED,
    ServerProcess,
    TushareServer,
    tushare_server,
)

from neo_cli.providers.base import BAD_TOKEN_MESSAGE, NO_PERMISSION_MESSAGE, RATE_LIMIT_MESSAGE
from neo_cli.tasktypes import DATASETS

TOKEN = "t0ken"
CODE = "000001.SZ"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[TushareServer]:
    """One shared server for the checks that change no counters they assert on."""
    with tushare_server(token=TOKEN, denied={"cashflow"}) as s:
        yield s


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def post(
    client: httpx.Client,
    url: str,
    api: str | None,
    params: dict[str, Any] | None = None,
    fields: str = "",
    token: str = TOKEN,
    path: str = "",
    timeout: float = 10,
) -> dict[str, Any]:
    body = {"token": token, "params": params or {}, "fields": fields}
    if api is not None:
        body["api_name"] = api
    response = client.post(url + path, json=body, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------------- replies


@pytest.mark.parametrize("path", ["", "/", "/dataapi/daily", "/dataapi/daily/"])
def test_success_at_both_endpoints(server, client, path):
    params = {"ts_code": CODE, "start_date": "20260101", "end_date": "20261120"}
    reply = post(client, server.url, "daily", params, "close,trade_date", path=path)

    assert reply["code"] == 0 and reply["msg"] == "" and len(reply["request_id"]) == 36
    assert reply["data"]["fields"] == ["close", "trade_date"]
    assert reply["data"]["has_more"] is False
    want = server.market.rows("daily", params)
    assert reply["data"]["items"] == [[r["close"], r["trade_date"]] for r in want]
    assert want and want[0]["trade_date"] > want[-1]["trade_date"]  # newest first


def test_sdk_path_supplies_the_api_name(server, client):
    reply = post(client, server.url, None, {"ts_code": CODE}, "trade_date", path="/dataapi/daily")
    assert reply["code"] == 0 and reply["data"]["fields"] == ["trade_date"]


def test_empty_fields_mean_all_and_unknown_fields_are_dropped(server, client):
    params = {"ts_code": CODE, "trade_date": "20261120"}
    every = post(client, server.url, "adj_factor", params)
    assert every["data"]["fields"] == list(DATASETS["adj_factor"].fields)
    assert len(every["data"]["items"]) == 1

    some = post(client, server.url, "adj_factor", params, " adj_factor , nope,ts_code,ts_code")
    assert some["data"]["fields"] == ["adj_factor", "ts_code"]


def test_statements_and_stock_basic(server, client):
    income = post(client, server.url, "income", {"ts_code": CODE}, "ann_date,n_income")
    assert income["code"] == 0 and income["data"]["items"]
    basic = post(client, server.url, "stock_basic", {"list_status": "L"}, "ts_code")
    assert [r[0] for r in basic["data"]["items"]] == server.market.ts_codes("L")


@pytest.mark.parametrize(
    ("api", "params", "token", "code", "msg"),
    [
        ("daily", {"ts_code": CODE}, "wrong", BAD_TOKEN, BAD_TOKEN_MESSAGE),
        ("daily", {"ts_code": CODE}, "", BAD_TOKEN, BAD_TOKEN_MESSAGE),
        ("cashflow", {"ts_code": CODE}, TOKEN, REFUSED, NO_PERMISSION_MESSAGE),
        ("fina_indicator", {}, TOKEN, 40101, "请求的接口 fina_indicator 不存在"),
    ],
)
def test_refusals(server, client, api, params, token, code, msg):
    reply = post(client, server.url, api, params, token=token)
    assert (reply["code"], reply["msg"], reply["data"]) == (code, msg, None)


@pytest.mark.parametrize(
    "params",
    [{}, {"ts_code": CODE, "start_date": "2026-01-01"}, {"ts_code": CODE, "limit": "-1"}],
)
def test_bad_params(server, client, params):
    reply = post(client, server.url, "daily", params)
    assert reply["code"] == 40001 and reply["msg"].startswith("参数错误") and reply["data"] is None


def test_bad_requests(server, client):
    mismatch = post(client, server.url, "adj_factor", {"ts_code": CODE}, path="/dataapi/daily")
    assert mismatch["code"] == 40100 and "接口名不一致" in mismatch["msg"]
    not_json = client.post(server.url, content=b"{not json")
    assert not_json.status_code == 200 and not_json.json()["code"] == 40100
    assert client.get(server.url).status_code == 405
    assert client.post(server.url + "/elsewhere", json={}).json()["code"] == 40100


# ---------------------------------------------------------------------------- limits


def test_rate_limit_over_a_sliding_window():
    clock = Clock()
    with tushare_server(token=TOKEN, limits={"daily": 3}, clock=clock) as s, httpx.Client() as c:

        def call_at(t: float) -> dict[str, Any]:
            clock.now = 1000.0 + t
            return post(c, s.url, "daily", {"ts_code": CODE, "trade_date": "20261120"})

        assert [call_at(t)["code"] for t in (0, 10, 20)] == [0, 0, 0]
        refused = call_at(59.999)
        assert refused["code"] == REFUSED and refused["data"] is None
        assert refused["msg"] == (
            "抱歉，您每分钟最多访问该接口3次，"
            "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
        )
        assert refused["msg"] == RATE_LIMIT_MESSAGE.format(limit=3)
        assert call_at(60)["code"] == 0  # the call at 0 is exactly 60 s old: it has left
        assert call_at(60)["code"] == REFUSED  # the refused call at 59.999 was not counted
        assert call_at(70)["code"] == 0
        assert [call_at(t)["code"] for t in (200, 200, 200, 200)] == [0, 0, 0, REFUSED]

        daily = s.stats()["apis"]["daily"]
        assert (daily["accepted"], daily["rejected"], daily["max_in_window"]) == (8, 3, 3)
        assert daily["rejected_by"] == {"minute": 3} and daily["limit"] == 3
        assert s.arrivals("daily") == [1000, 1010, 1020, 1060, 1070, 1200, 1200, 1200]
        assert s.stats()["apis"]["adj_factor"]["accepted"] == 0  # limits are per interface


def test_max_in_window_without_a_limit():
    clock = Clock()
    with tushare_server(token=TOKEN, clock=clock) as s, httpx.Client() as c:
        for t in (0, 30, 59, 61, 90, 150, 150.5):
            clock.now = 1000.0 + t
            post(c, s.url, "stock_basic")
        # Windows (t-60, t]: at 61 it holds 30, 59, 61; at 90 it holds 59, 61, 90.
        assert s.stats()["apis"]["stock_basic"]["max_in_window"] == 3
        assert s.stats()["apis"]["stock_basic"]["limit"] is None


@pytest.mark.parametrize(("scope", "seconds"), [("hour", 3600), ("day", 86400)])
def test_hourly_and_daily_caps(scope, seconds):
    clock = Clock()
    option = {"hourly_limits" if scope == "hour" else "daily_limits": {"income": 2}}
    with tushare_server(token=TOKEN, clock=clock, **option) as s, httpx.Client() as c:

        def call_at(t: float) -> dict[str, Any]:
            clock.now = 1000.0 + t
            return post(c, s.url, "income", {"ts_code": CODE})

        assert [call_at(t)["code"] for t in (0, 100)] == [0, 0]
        refused = call_at(seconds - 1)
        assert refused["code"] == REFUSED
        assert refused["msg"] == LIMIT_MESSAGES[scope].format(limit=2)
        assert ("每小时" if scope == "hour" else "每天") + "最多访问该接口2次" in refused["msg"]
        assert call_at(seconds)["code"] == 0
        assert s.stats()["apis"]["income"]["rejected_by"] == {scope: 1}


def test_daily_cap_message_is_the_apis():
    assert LIMIT_MESSAGES["day"].format(limit=100) == (
        "抱歉，您每天最多访问该接口100次，"
        "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
    )


def test_concurrent_calls_never_pass_the_limit():
    with tushare_server(token=TOKEN, limits={"adj_factor": 25}) as s, httpx.Client() as c:
        params = {"ts_code": CODE, "trade_date": "20261120"}
        with ThreadPoolExecutor(16) as pool:
            codes = list(
                pool.map(lambda _: post(c, s.url, "adj_factor", params)["code"], range(60))
            )
        assert codes.count(0) == 25 and codes.count(REFUSED) == 35
        stats = s.stats()["apis"]["adj_factor"]
        assert (stats["accepted"], stats["rejected"], stats["max_in_window"]) == (25, 35, 25)
        assert stats["rows"] == 25
        assert s.stats()["internal_errors"] == []


# ---------------------------------------------------------------------------- faults


def _raw(url: str, timeout: float = 10, client: httpx.Client | None = None) -> httpx.Response:
    body = {"api_name": "stock_basic", "token": TOKEN, "params": {}, "fields": "ts_code"}
    if client is not None:
        return client.post(url, json=body)
    with httpx.Client(timeout=timeout) as c:
        return c.post(url, json=body)


@pytest.mark.parametrize("kind", ["http_500", "http_502"])
def test_http_errors(kind):
    with tushare_server(token=TOKEN, faults={kind: 1.0}) as s:
        response = _raw(s.url)
        assert response.status_code == int(kind[-3:])
        assert response.headers["content-type"].startswith("text/html")
        assert "<html>" in response.text
        assert s.stats()["apis"]["stock_basic"]["faults"] == {kind: 1}
        assert s.stats()["apis"]["stock_basic"]["accepted"] == 1  # the call still counts


def test_malformed_reply_is_truncated_json():
    with tushare_server(token=TOKEN, faults={"malformed": 1.0}) as s:
        response = _raw(s.url)
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()
        assert response.text.startswith('{"request_id"')


def test_busy():
    with tushare_server(token=TOKEN, faults={"busy": 1.0}) as s:
        reply = _raw(s.url).json()
        assert (reply["code"], reply["msg"], reply["data"]) == (-2001, BUSY_MESSAGE, None)
        assert s.stats()["apis"]["stock_basic"]["errors"] == {"busy": 1}


def test_reset_closes_without_a_reply():
    with tushare_server(token=TOKEN, faults={"reset": 1.0}) as s:
        with pytest.raises(httpx.TransportError):
            _raw(s.url)
        assert s.stats()["apis"]["stock_basic"]["faults"] == {"reset": 1}


def _abandoned(url: str) -> None:
    with pytest.raises(httpx.TransportError):  # reset when the server closes
        _raw(url, timeout=90)


def test_slow_reply_times_a_client_out_and_close_does_not_wait_for_it():
    with tushare_server(token=TOKEN, faults={"slow": 1.0}, slow_seconds=0.6) as s:
        with pytest.raises(httpx.ReadTimeout):
            _raw(s.url, timeout=0.2)
        assert _raw(s.url, timeout=5).json()["code"] == 0  # answered, late
        s.slow_seconds = 60
        threading.Thread(target=_abandoned, args=(s.url,), daemon=True).start()
        while s.stats()["apis"]["stock_basic"]["accepted"] < 3:
            time.sleep(0.01)
    # Leaving the `with` returned: the 60 s reply was abandoned.


def test_fault_next_forces_faults_in_order_for_one_interface(server, client):
    before = server.stats()["apis"]["trade_cal"]["faults"]
    server.fault_next("busy", "http_502", api="trade_cal")
    assert post(client, server.url, "stock_basic", fields="ts_code")["code"] == 0
    assert post(client, server.url, "trade_cal")["code"] == -2001
    assert (
        client.post(server.url, json={"api_name": "trade_cal", "token": TOKEN}).status_code == 502
    )
    assert post(client, server.url, "trade_cal")["code"] == 0
    after = server.stats()["apis"]["trade_cal"]["faults"]
    assert after.get("http_502", 0) - before.get("http_502", 0) == 1


def test_faults_replay_with_the_same_seed(client):
    faults = {"busy": 0.2, "http_502": 0.2, "malformed": 0.2}

    def outcomes(seed: int) -> list[str]:
        with tushare_server(token=TOKEN, faults=faults, seed=seed) as s:
            return [_outcome(_raw(s.url, client=client)) for _ in range(30)]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)


def _outcome(response: httpx.Response) -> str:
    if response.status_code != 200:
        return str(response.status_code)
    try:
        return str(response.json()["code"])
    except json.JSONDecodeError:
        return "malformed"


def test_fault_options_are_checked():
    with pytest.raises(ValueError, match="unknown fault"):
        TushareServer(faults={"explode": 0.1})
    with pytest.raises(ValueError, match="sum"):
        TushareServer(faults={"busy": 0.7, "slow": 0.7})


# ---------------------------------------------------------------------------- rows


@pytest.mark.parametrize("flag", [False, True])
def test_row_cap_truncates_newest_first(flag):
    with tushare_server(token=TOKEN, has_more_flag=flag) as s, httpx.Client() as c:
        assert s.row_caps["daily"] == 6000 and s.row_caps["income"] == 5000
        codes = ",".join(s.market.ts_codes()[:8])
        params = {"ts_code": codes, "start_date": "20200101"}
        want = s.market.rows("daily", params)
        assert len(want) > 6000
        reply = post(c, s.url, "daily", params, "ts_code,trade_date")
        items = reply["data"]["items"]
        assert items == [[r["ts_code"], r["trade_date"]] for r in want[:6000]]
        assert reply["data"]["has_more"] is flag

        exact = post(c, s.url, "daily", {**params, "limit": 6000}, "trade_date")
        assert len(exact["data"]["items"]) == 6000 and exact["data"]["has_more"] is False
        assert s.stats()["apis"]["daily"]["rows"] == 12000


def test_row_caps_can_be_lowered_and_offset_pages():
    with tushare_server(token=TOKEN, row_caps={"daily": 5}, has_more_flag=True) as s:
        with httpx.Client() as c:
            first = post(c, s.url, "daily", {"ts_code": CODE}, "trade_date")
            second = post(c, s.url, "daily", {"ts_code": CODE, "offset": 5}, "trade_date")
        want = [r["trade_date"] for r in s.market.rows("daily", {"ts_code": CODE})[:10]]
        got = [row[0] for row in first["data"]["items"] + second["data"]["items"]]
        assert got == want and first["data"]["has_more"] is True


# ---------------------------------------------------------------------------- trade_cal


def test_trade_cal(server, client):
    params = {"exchange": "SSE", "start_date": "20261001", "end_date": "20261231"}
    reply = post(client, server.url, "trade_cal", params)
    data = reply["data"]
    assert data["fields"] == ["exchange", "cal_date", "pretrade_date", "is_open"]
    days = [row[1] for row in data["items"]]
    assert days[0] == "20261120" and days[-1] == "20261001"  # newest first, to the market's today
    assert len(days) == 51  # every calendar day of the range
    opened = sorted(row[1] for row in data["items"] if row[3] == 1)
    assert opened == server.market.trade_dates("20261001", "20261120")
    assert {row[3] for row in data["items"]} == {0, 1}
    by_day = {row[1]: row for row in data["items"]}
    assert by_day["20261008"][2] == "20260930"  # after the October holiday
    assert by_day["20261004"][3] == 0

    only_open = post(client, server.url, "trade_cal", {**params, "is_open": "1"}, "cal_date")
    assert sorted(r[0] for r in only_open["data"]["items"]) == opened
    first = post(client, server.url, "trade_cal", {"end_date": "19901220"}, "cal_date,is_open")
    assert first["data"]["items"] == [["19901220", 1], ["19901219", 1]]
    bad = post(client, server.url, "trade_cal", {"exchange": "NYSE"})
    assert bad["code"] == 40001
    assert server.stats()["apis"]["trade_cal"]["limit"] == 60


# ---------------------------------------------------------------------------- as a process


def test_runs_as_a_process_and_writes_stats(tmp_path: Path):
    args = ["--token", TOKEN, "--symbols", "5", "--end-date", "20261120"]
    args += ["--limits", "daily=2,adj_factor=500", "--deny", "income", "--fault", "busy=0"]
    with ServerProcess(tmp_path, *args) as proc, httpx.Client() as c:
        codes = [post(c, proc.url, "daily", {"ts_code": CODE})["code"] for _ in range(3)]
        assert codes == [0, 0, REFUSED]
        assert post(c, proc.url, "income", {"ts_code": CODE})["msg"] == NO_PERMISSION_MESSAGE
        stats = proc.stop()
    assert proc.process.returncode == 0
    assert stats is not None
    daily = stats["apis"]["daily"]
    assert (daily["accepted"], daily["rejected"], daily["limit"]) == (2, 1, 2)
    assert stats["apis"]["income"]["errors"] == {"no_permission": 1}
    assert stats["internal_errors"] == []
    assert proc.log_file.read_text() == ""  # quiet


def test_quiet_and_closes_with_idle_keepalive_connections(capfd):
    with tushare_server(token=TOKEN) as s:
        c = httpx.Client()
        post(c, s.url, "stock_basic")
        s.fault_next("reset")
        with pytest.raises(httpx.TransportError):
            post(c, s.url, "stock_basic")
        post(c, s.url, "stock_basic")  # the pooled connection stays open, idle
    c.close()
    assert capfd.readouterr().err == ""
    assert s.stats()["internal_errors"] == []
