"""One attempt at a unit: each error class handled its own way, and paging past the row cap."""

from __future__ import annotations

import random
from typing import Any

import pytest

from neo_cli.download import MAX_MISSED, Calls, Downloader, RetryPolicy, attempt, fetch
from neo_cli.errors import AuthError, PermanentError, RateLimited, TransientError
from neo_cli.ledger import Ledger
from neo_cli.limits.memory import memory_limiter
from neo_cli.metrics import Recorder
from neo_cli.providers.base import Provider, Reply, classify
from neo_cli.tasktypes import DAILY, DATASETS, INCOME, INTERFACES
from neo_cli.units import Unit


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Scripted(Provider):
    """Answers each call with the next scripted reply or error."""

    def __init__(self, *answers: Any):
        self.answers = list(answers)
        self.calls: list[dict] = []

    def call(self, api, params, fields, slot=None):
        self.calls.append(dict(params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def bars(dates: list[str], code: str = "000001.SZ") -> Reply:
    rows = [[code, d, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 100.0, 1000.0] for d in dates]
    return Reply(DAILY.fields, rows)


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.db")
    yield led
    led.close()


def runtime(
    provider: Provider, ledger: Ledger, clock: Clock, max_attempts: int = 3, vip: str = "auto"
):
    limiters = {
        api: memory_limiter(api, 600, margin=0.0, clock=clock, sleep=clock.sleep)
        for api in INTERFACES
    }
    return Downloader(
        provider,
        limiters,
        ledger,
        Recorder(None, "t"),
        RetryPolicy(max_attempts, 1.0, 30.0, random.Random(7)),
        statements_vip=vip,
    )


UNIT = Unit(
    "daily",
    {"ts_code": "000001.SZ", "start_date": "20240101", "end_date": "20240131"},
    ("000001.SZ",),
    "b1",
)


def recorded(ledger: Ledger, unit: Unit = UNIT):
    with ledger.adding("b1", "daily", [unit]):
        pass
    return unit


def test_rows_come_back(ledger):
    clock = Clock()
    out = attempt(
        runtime(Scripted(bars(["20240103", "20240102"])), ledger, clock), recorded(ledger)
    )
    assert out.reply is not None and len(out.reply) == 2 and out.retry_in is None


def test_transient_retries_with_jittered_backoff_then_dead_letters(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(Scripted(*[TransientError("HTTP 502 Bad Gateway", "daily")] * 3), ledger, clock)
    first = attempt(rt, unit)
    assert first.retry_in is not None and 0 <= first.retry_in <= 1.0
    second = attempt(rt, unit)
    assert 0 <= second.retry_in <= 2.0
    assert ledger.get(unit.id).attempts == 2 and ledger.get(unit.id).state == "retrying"
    third = attempt(rt, unit)
    assert third.retry_in is None and third.reply is None
    assert third.dead == "HTTP 502 Bad Gateway (after 3 attempts)"
    record = ledger.get(unit.id)
    assert record.state == "dead" and record.attempts == 3 and record.error_class == "transient"


def test_malformed_reply_is_transient(ledger):
    clock = Clock()
    unit = recorded(ledger)
    broken = Reply(DAILY.fields, [["000001.SZ", "20240102"]])  # rows shorter than fields
    out = attempt(runtime(Scripted(broken), ledger, clock), unit)
    assert out.retry_in is not None
    assert "malformed reply" in ledger.get(unit.id).error


def test_rate_limit_pauses_the_interface_without_spending_an_attempt(ledger):
    clock = Clock()
    unit = recorded(ledger)
    message = "抱歉，您每分钟最多访问该接口500次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
    rt = runtime(Scripted(classify("daily", message)), ledger, clock)
    out = attempt(rt, unit)
    assert out.retry_in >= 1.0  # five slots, at least a second
    record = ledger.get(unit.id)
    assert record.attempts == 0 and record.state == "queued"
    assert record.error_class == "rate-limited (minute)"
    assert not rt.limiters["daily"].ready()
    assert rt.limiters["income"].ready()


def test_daily_cap_pauses_until_midnight_in_china(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(
        Scripted(RateLimited("您每天最多访问该接口10000次", "daily", "day")), ledger, clock
    )
    out = attempt(rt, unit)
    until, reason = rt.limiters["daily"].paused()
    assert out.retry_in == pytest.approx(until - clock.t)
    assert (until + 8 * 3600) % 86400 == 0  # midnight, UTC+8
    assert "day limit" in reason


def test_permanent_error_dead_letters_at_once_with_the_message(ledger):
    clock = Clock()
    unit = recorded(ledger)
    out = attempt(
        runtime(Scripted(PermanentError("参数错误: ts_code", "daily")), ledger, clock), unit
    )
    assert out.dead == "参数错误: ts_code"
    record = ledger.get(unit.id)
    assert record.state == "dead" and record.attempts == 1 and record.error_class == "permanent"


class Stalls(Provider):
    """Loses the processor for the next of `stalls` seconds between being handed its slot and
    sending (what a loaded machine does to a thread), then answers `reply`."""

    def __init__(self, clock: Clock, reply: Reply, stalls: list[float]):
        self.clock, self.reply, self.stalls = clock, reply, list(stalls)
        self.sent: list[float] = []

    def call(self, api, params, fields, slot=None):
        if self.stalls:
            self.clock.t += self.stalls.pop(0)
        if slot is not None:
            slot.leave()
        self.sent.append(self.clock())
        return self.reply


def test_a_call_too_late_for_its_slot_is_not_sent_and_takes_another(ledger):
    clock = Clock()
    provider = Stalls(clock, bars(["20240102"]), [1.0])
    limiter = runtime(provider, ledger, clock).limiters["daily"]
    calls = Calls()
    reply = fetch(provider, limiter, recorded(ledger), Recorder(None, "t"), calls=calls)
    assert len(reply) == 1
    assert provider.sent == [1_000_001.0]  # only the second slot's call went out
    assert calls.made == 1 and limiter.late == 1


def test_a_call_late_for_slot_after_slot_goes_anyway(ledger):
    clock = Clock()
    provider = Stalls(clock, bars(["20240102"]), [1.0] * (MAX_MISSED + 5))
    limiter = runtime(provider, ledger, clock).limiters["daily"]
    calls = Calls()
    fetch(provider, limiter, recorded(ledger), Recorder(None, "t"), calls=calls)
    assert len(provider.sent) == 1 and calls.made == 1 and limiter.late == MAX_MISSED


def test_bad_token_stops_every_interface_and_keeps_the_unit(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(Scripted(classify("daily", "您的token不对，请确认。")), ledger, clock)
    out = attempt(rt, unit)
    assert out.retry_in is not None and out.dead == ""
    assert all(not lim.ready() for lim in rt.limiters.values())
    assert rt.limiters["income"].paused()[1] == "stopped: 您的token不对，请确认。"
    record = ledger.get(unit.id)
    assert record.state == "queued" and record.error_class == "auth (token)"
    with pytest.raises(Exception, match="stopped"):
        rt.limiters["daily"].acquire()


def test_no_permission_stops_only_that_interface(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(Scripted(classify("daily", "抱歉，您没有访问该接口的权限")), ledger, clock)
    attempt(rt, unit)
    assert not rt.limiters["daily"].ready()
    assert rt.limiters["adj_factor"].ready()
    assert isinstance(classify("daily", "抱歉，您没有访问该接口的权限"), AuthError)


def test_a_reply_at_the_row_cap_is_never_the_whole_range(ledger):
    clock = Clock()
    unit = Unit(
        "daily",
        {"ts_code": "000001.SZ", "start_date": "19900101", "end_date": "20241231"},
        ("000001.SZ",),
        "b1",
    )
    full = [f"2024{m:02d}{d:02d}" for m in range(12, 0, -1) for d in range(28, 0, -1)]
    cap = DAILY.row_cap
    first = bars((full * 30)[:cap])  # exactly the cap, has_more not set
    second = bars(["19991231", "19991230"])
    provider = Scripted(first, second)
    rt = runtime(provider, ledger, clock)
    reply = fetch(provider, rt.limiters["daily"], unit, Recorder(None, "t"))
    assert len(provider.calls) == 2
    assert provider.calls[1]["end_date"] == min((full * 30)[:cap])
    assert len(reply) == cap + 2


def test_has_more_pages_even_below_the_cap(ledger):
    clock = Clock()
    provider = Scripted(
        Reply(DAILY.fields, bars(["20240105"]).items, has_more=True), bars(["20240104"])
    )
    rt = runtime(provider, ledger, clock)
    fetch(provider, rt.limiters["daily"], UNIT, Recorder(None, "t"))
    assert provider.calls[1]["end_date"] == "20240105"


def test_stock_basic_pages_by_offset(ledger):
    clock = Clock()
    fields = DATASETS["stock_basic"].fields
    row = ["000001.SZ"] + [""] * (len(fields) - 1)
    provider = Scripted(Reply(fields, [row] * 6000), Reply(fields, [row] * 10))
    rt = runtime(provider, ledger, clock)
    unit = Unit("stock_basic", {"list_status": "L"})
    reply = fetch(provider, rt.limiters["stock_basic"], unit, Recorder(None, "t"))
    assert provider.calls[1] == {"list_status": "L", "offset": 6000}
    assert len(reply) == 6010


def test_a_busy_interface_gives_the_worker_back(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(Scripted(), ledger, clock)
    rt.limiters["daily"].pause_until(clock.t + 30, "test pause")
    out = attempt(rt, unit)
    assert out.retry_in == pytest.approx(30.0)
    assert ledger.get(unit.id).attempts == 0


# ---------------------------------------------------------------- whole-market statements

MARKET = ["000001.SZ", "000002.SZ", "600000.SH"]
VIP_UNIT = Unit("income_vip", {"start_date": "20240401", "end_date": "20240430"}, ("*",), "bv")


def statements(n: int, code: str = "000001.SZ") -> Reply:
    row = {f: None for f in INCOME.fields} | {"ts_code": code, "ann_date": "20240420"}
    return Reply(INCOME.fields, [[row[f] for f in INCOME.fields]] * n)


def vip_recorded(ledger: Ledger) -> Unit:
    with ledger.adding("bv", "income", [VIP_UNIT], MARKET):
        pass
    return VIP_UNIT


def test_whole_market_statements_page_by_offset_below_and_at_the_cap(ledger):
    clock = Clock()
    provider = Scripted(statements(5000), statements(5000), statements(12))
    rt = runtime(provider, ledger, clock)
    out = attempt(rt, vip_recorded(ledger))
    assert [c.get("offset") for c in provider.calls] == [None, 5000, 10000]
    assert all(c["start_date"] == "20240401" and "ts_code" not in c for c in provider.calls)
    assert len(out.reply) == 10012
    # A configured cap below the documented one pages at it.
    provider = Scripted(statements(2000), statements(3))
    rt.provider, rt.row_caps = provider, {"income_vip": 2000}
    assert len(attempt(rt, VIP_UNIT).reply) == 2003
    assert provider.calls[1]["offset"] == 2000


def test_a_window_without_announcements_is_done_not_retried(ledger):
    out = attempt(runtime(Scripted(statements(0)), ledger, Clock()), vip_recorded(ledger))
    assert out.reply is not None and len(out.reply) == 0


def test_a_refused_whole_market_call_falls_back_to_per_symbol_for_good(ledger, caplog):
    clock = Clock()
    refusal = classify("income_vip", "抱歉，您没有访问该接口的权限")
    provider = Scripted(refusal)
    rt = runtime(provider, ledger, clock)
    out = attempt(rt, vip_recorded(ledger))
    assert len(provider.calls) == 1
    assert [(u.api, u.codes, u.params) for u in out.split] == [
        ("income", (c,), {"start_date": "20240401", "end_date": "20240430", "ts_code": c})
        for c in sorted(MARKET)
    ]
    assert rt.limiters["income_vip"].ready() and rt.limiters["income"].ready()  # not stopped
    assert "没有访问该接口的权限" in ledger.vip_refused("income")
    assert sum("income_vip refused" in r.message for r in caplog.records) == 1
    # Another unit of the same kind (another process's, say) splits without calling.
    again = attempt(rt, VIP_UNIT)
    assert len(provider.calls) == 1 and len(again.split) == 3


def test_statements_vip_true_stops_the_interface_when_refused(ledger):
    rt = runtime(
        Scripted(classify("income_vip", "抱歉，您没有访问该接口的权限")),
        ledger,
        Clock(),
        vip="true",
    )
    out = attempt(rt, vip_recorded(ledger))
    assert out.split is None and out.retry_in is not None
    assert not rt.limiters["income_vip"].ready() and ledger.vip_refused("income") == ""


def test_a_whole_market_unit_before_its_batch_is_recorded_retries_and_caches_nothing(ledger):
    """Its task can run before the enqueue that records the batch's symbols commits."""
    day = Unit("daily", {"trade_date": "20240105"}, ("*",), "bw")
    rt = runtime(Scripted(bars(["20240105"]), bars(["20240105"])), ledger, Clock())
    early = attempt(rt, day)
    assert early.retry_in is not None and early.reply is None
    assert "not recorded yet" in ledger.get(day.id).error
    with ledger.adding("bw", "daily", [], ["000001.SZ"]):
        pass
    later = attempt(rt, day)
    assert later.reply is not None and len(later.reply) == 1
