"""The simulated provider: the API's limits, exact; latency; faults; row cap; fields."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime

import pytest

from neo_cli.config import SCHEMA
from neo_cli.errors import AuthError, InputError, PermanentError, RateLimited, TransientError
from neo_cli.providers.base import RATE_LIMIT_MESSAGE, Provider, classify
from neo_cli.providers.simulated import CHINA, DEFAULTS, SimulatedProvider
from neo_cli.tasktypes import ADJ_FACTOR, DAILY

END = "20240628"


class FakeTime:
    """A clock the test moves by hand, and a sleep that only records."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def make(limits=None, time: FakeTime | None = None, seed: int = 3, **options) -> SimulatedProvider:
    time = time or FakeTime()
    settings = {"symbols": 20, "seed": 11, "end_date": END, "latency_ms": 0, "jitter_ms": 0}
    return SimulatedProvider(
        {**settings, **options},
        limits or {},
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(seed),
    )


def daily_call(provider: SimulatedProvider, **params):
    code = provider.market.ts_codes()[0]
    return provider.call("daily", {"ts_code": code, "start_date": "20240601", **params}, [])


def test_defaults_are_the_config_defaults() -> None:
    schema = SCHEMA["provider.simulated"]
    assert {name: key.default for name, key in schema.items()} == DEFAULTS


def test_a_call_answers_from_the_market() -> None:
    provider = make()
    assert isinstance(provider, Provider) and provider.name == "simulated"
    reply = daily_call(provider)
    code = provider.market.ts_codes()[0]
    rows = provider.market.rows("daily", {"ts_code": code, "start_date": "20240601"})
    assert reply.fields == DAILY.fields
    assert reply.items == [list(row.values()) for row in rows]
    assert not reply.has_more
    assert reply.frame().shape == (len(rows), len(DAILY.fields))
    provider.close()


def test_fields_pick_columns_in_the_asked_order() -> None:
    provider = make()
    code = provider.market.ts_codes()[0]
    params = {"ts_code": code, "trade_date": "20240628"}
    reply = provider.call("adj_factor", params, ["adj_factor", "trade_date"])
    assert reply.fields == ("adj_factor", "trade_date")
    assert reply.items[0][1] == "20240628" and isinstance(reply.items[0][0], float)
    assert provider.call("adj_factor", params, "trade_date,ts_code").fields == (
        "trade_date",
        "ts_code",
    )
    assert provider.call("adj_factor", params, ["trade_date", "nonsense"]).fields == ("trade_date",)
    assert provider.call("adj_factor", params, ()).fields == ADJ_FACTOR.fields


# ---------------------------------------------------------------------------- the limit


def test_limit_is_exact_and_answers_with_the_api_message() -> None:
    time = FakeTime()
    provider = make({"daily": 5}, time)
    for _ in range(5):
        daily_call(provider)
    with pytest.raises(RateLimited) as caught:
        daily_call(provider)
    assert str(caught.value) == RATE_LIMIT_MESSAGE.format(limit=5)
    assert (caught.value.api, caught.value.scope) == ("daily", "minute")
    assert isinstance(classify("daily", str(caught.value)), RateLimited)

    time.now += 59.9
    with pytest.raises(RateLimited):
        daily_call(provider)
    time.now += 0.1  # the first five are exactly 60 s old: out of the window
    for _ in range(5):
        daily_call(provider)
    with pytest.raises(RateLimited):
        daily_call(provider)
    assert provider.stats()["daily"] == {"calls": 10, "rejected": 3}


def test_the_window_slides_where_a_fixed_window_would_reset() -> None:
    time = FakeTime(0.0)
    provider = make({"daily": 5}, time)
    for t in (55, 56, 57, 58, 59):  # the end of one fixed minute
        time.now = t
        daily_call(provider)
    for t in (60, 61, 100, 114.9):  # a fixed window would have reset at 60
        time.now = t
        with pytest.raises(RateLimited):
            daily_call(provider)
    time.now = 115  # the call at 55 leaves the window, and only it
    daily_call(provider)
    with pytest.raises(RateLimited):
        daily_call(provider)
    time.now = 116
    daily_call(provider)
    assert provider.stats()["daily"] == {"calls": 7, "rejected": 5}


def test_rejected_calls_are_not_counted() -> None:
    time = FakeTime(0.0)
    provider = make({"daily": 3}, time)
    for _ in range(3):
        daily_call(provider)
    time.now = 30
    for _ in range(20):
        with pytest.raises(RateLimited):
            daily_call(provider)
    time.now = 60  # had the rejections counted, nothing would pass before t = 90
    for _ in range(3):
        daily_call(provider)
    assert provider.stats()["daily"] == {"calls": 6, "rejected": 20}


def test_limits_are_per_interface_and_absent_means_unlimited() -> None:
    provider = make({"daily": 1})
    code = provider.market.ts_codes()[0]
    daily_call(provider)
    provider.call("adj_factor", {"ts_code": code, "trade_date": END}, [])
    for _ in range(100):
        provider.call("income", {"ts_code": code, "period": "20231231"}, [])
    stats = provider.stats()
    assert stats["adj_factor"]["calls"] == 1 and stats["income"]["calls"] == 100
    assert stats["stock_basic"] == {"calls": 0, "rejected": 0}


def test_many_threads_at_one_instant_get_exactly_the_limit() -> None:
    provider = make({"daily": 37})
    outcomes: Counter[str] = Counter()
    lock, barrier = threading.Lock(), threading.Barrier(50)

    def worker() -> None:
        barrier.wait()
        for _ in range(4):
            try:
                daily_call(provider)
                result = "ok"
            except RateLimited:
                result = "limited"
            with lock:
                outcomes[result] += 1

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"ok": 37, "limited": 163}
    assert provider.stats()["daily"] == {"calls": 37, "rejected": 163}


def test_threads_hammering_over_time_never_pass_the_sliding_limit() -> None:
    time = FakeTime(0.0)
    limit = 10
    provider = make({"daily": limit}, time)
    accepted: list[float] = []  # the reference: a plain sliding window over the same rounds
    for round_ in range(12):
        time.now = round_ * 15.0
        results: list[bool] = []
        barrier, guard = threading.Barrier(20), threading.Lock()

        def worker(results=results, barrier=barrier, guard=guard) -> None:
            barrier.wait()
            for _ in range(3):
                try:
                    daily_call(provider)
                    ok = True
                except RateLimited:
                    ok = False
                with guard:
                    results.append(ok)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        in_window = sum(1 for t in accepted if t > time.now - 60)
        expected = min(60, limit - in_window)
        assert results.count(True) == expected, round_
        accepted += [time.now] * expected
    assert provider.stats()["daily"]["calls"] == len(accepted) == 30


# ---------------------------------------------------------------------------- latency and faults


def test_latency_with_jitter_floored_at_zero() -> None:
    time = FakeTime()
    provider = make(time=time, latency_ms=30, jitter_ms=20)
    for _ in range(200):
        daily_call(provider)
    assert len(time.sleeps) == 200
    assert all(0.01 <= s <= 0.05 for s in time.sleeps)
    assert len(set(time.sleeps)) > 100

    time = FakeTime()
    provider = make(time=time, latency_ms=10, jitter_ms=50)
    for _ in range(200):
        daily_call(provider)
    assert 0 < len(time.sleeps) < 200  # the calls whose draw went below zero did not sleep
    assert all(0 < s <= 0.06 for s in time.sleeps)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("timeout_rate", "timed out after 7s"),
        ("error_rate", "HTTP 502 Bad Gateway"),
        ("malformed_rate", "malformed reply: "),
    ],
)
def test_a_fault_rate_of_one_always_fails_and_zero_never(option: str, message: str) -> None:
    time = FakeTime()
    provider = SimulatedProvider(
        {"symbols": 5, "end_date": END, "latency_ms": 0, "jitter_ms": 0, option: 1.0},
        {},
        call_timeout=7,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(1),
    )
    for _ in range(20):
        with pytest.raises(TransientError, match=message) as caught:
            daily_call(provider)
        assert type(caught.value) is TransientError and caught.value.api == "daily"
    if option == "timeout_rate":
        assert time.sleeps == [7.0] * 20

    calm = make(**{option: 0.0})
    for _ in range(100):
        daily_call(calm)


def test_fault_rates_follow_the_seeded_rng() -> None:
    def pattern(seed: int) -> list[str]:
        provider = make(seed=seed, error_rate=0.3)
        out = []
        for _ in range(100):
            try:
                daily_call(provider)
                out.append("ok")
            except TransientError:
                out.append("502")
        return out

    first = pattern(5)
    assert first == pattern(5) and first != pattern(6)
    assert 15 <= first.count("502") <= 45


def test_faults_come_after_the_limit_check() -> None:
    provider = make({"daily": 2}, error_rate=1.0)
    for _ in range(2):
        with pytest.raises(TransientError):
            daily_call(provider)
    with pytest.raises(RateLimited):
        daily_call(provider)
    assert provider.stats()["daily"] == {"calls": 2, "rejected": 1}


def test_denied_symbols_are_a_permanent_error_not_an_auth_error() -> None:
    provider = make({"daily": 100})
    denied, allowed = provider.market.ts_codes()[:2]
    provider = make({"daily": 100}, deny_symbols=f" {denied.lower()} , 600000.SH")
    for codes in (denied, f"{allowed},{denied}"):
        with pytest.raises(PermanentError, match=denied) as caught:
            provider.call("daily", {"ts_code": codes}, [])
        assert not isinstance(caught.value, AuthError)
        assert type(classify("daily", str(caught.value))) is PermanentError
    assert provider.call("daily", {"ts_code": allowed, "trade_date": END}, []).items
    assert provider.stats()["daily"]["calls"] == 3  # refused by the server, after counting


# ---------------------------------------------------------------------------- the reply


def test_row_cap_keeps_the_newest_rows_and_says_there_is_more() -> None:
    provider = make(symbols=60)
    market = provider.market
    oldest = min(market.ts_codes(), key=lambda c: market.stock(c)["list_date"])
    reply = provider.call("daily", {"ts_code": oldest}, ["trade_date", "close"])
    everything = market.rows("daily", {"ts_code": oldest})
    assert len(everything) > DAILY.row_cap
    assert len(reply) == DAILY.row_cap and reply.has_more
    assert reply.items[0] == [END, everything[0]["close"]]
    assert reply.items[-1][0] == everything[DAILY.row_cap - 1]["trade_date"]

    older = everything[DAILY.row_cap]["trade_date"]
    rest = provider.call("daily", {"ts_code": oldest, "end_date": older}, ["trade_date"])
    assert not rest.has_more and rest.items[0] == [older]


def test_bad_calls_are_permanent_and_unknown_interfaces_not_counted() -> None:
    provider = make({"income": 10})
    with pytest.raises(PermanentError, match="ts_code") as caught:
        provider.call("income", {}, [])
    assert caught.value.api == "income" and provider.stats()["income"]["calls"] == 1
    with pytest.raises(PermanentError, match="weekly"):
        provider.call("weekly", {"ts_code": "000001.SZ"}, [])
    assert "weekly" not in provider.stats()


def test_end_date_option() -> None:
    before = datetime.now(CHINA).date()
    today = make(end_date="").market.end_date
    assert before <= today <= datetime.now(CHINA).date()
    for bad in ("2024-06-28", "20241301", "19800101"):
        with pytest.raises(InputError, match="end_date"):
            make(end_date=bad)
    with pytest.raises(InputError, match="latencyms"):
        make(latencyms=3)
