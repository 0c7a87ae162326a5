"""The limiter contract, run against every backend: paced slots, no sliding window over the
limit, pauses and back-off.

Each test takes `make`, which builds a limiter on a fresh store of one backend — in memory, the
data directory's SQLite file, a real Redis (with the test's fake clock handed to its scripts
instead of the server's TIME). Everything runs on a fake clock whose `sleep` advances it; one
small test uses real threads and real time, and reasons only from the limiter's own spacing.
Sharing between processes is tested in test_limiter_sharing.py.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neo_cli.errors import SlotMissed
from neo_cli.limits import Limiter, SlotTooFar
from neo_cli.limits.base import WINDOW
from neo_cli.limits.local import LocalBackend
from neo_cli.limits.memory import MemoryBackend

EPS = 1e-6  # float slack on times ~1e6 s
T0 = 1_000_000.0


class FakeClock:
    """A clock that only moves when someone sleeps (or a test sets it)."""

    def __init__(self, now: float = T0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.slept.append(seconds)
        self.now += seconds


BACKENDS = ("memory", "local", "redis")
# Each property test's examples, as a share per backend: a slot on SQLite or Redis is a
# transaction or a round trip, and the window arithmetic is the same on all three.
EXAMPLES = {"memory": 1.0, "local": 0.3, "redis": 0.05}


def property_test(make, examples: int, **strategies):
    """Run `check(make, **drawn)` as a Hypothesis test with this backend's share of examples."""

    def run(check):
        @settings(
            max_examples=max(4, int(examples * EXAMPLES[make.kind])),
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.fixed_dictionaries(strategies))
        def test(drawn):
            check(make, **drawn)

        test()

    return run


@pytest.fixture(params=BACKENDS)
def backend_factory(request, tmp_path):
    """A function that opens a fresh store of one backend on a given clock."""
    import uuid

    opened = []

    def factory(clock):
        if request.param == "memory":
            backend = MemoryBackend(clock)
        elif request.param == "local":
            backend = LocalBackend(tmp_path / f"limiter-{uuid.uuid4().hex}.db", "b", clock)
        else:
            from neo_cli.limits.redis import RedisBackend

            server = request.getfixturevalue("redis_server")
            backend = RedisBackend(server.url, uuid.uuid4().hex, ["daily"], clock=clock)
        opened.append(backend)
        return backend

    factory.kind = request.param
    yield factory
    for backend in opened:
        backend.close()


@pytest.fixture
def make(backend_factory):
    def make(limit: int, clock, **kw) -> Limiter:
        sleep = kw.pop("sleep", None) or clock.sleep
        return Limiter("daily", limit, backend_factory(clock), clock=clock, sleep=sleep, **kw)

    make.kind = backend_factory.kind
    return make


def window_violation(grants: list[float], limit: int) -> tuple[float, float] | None:
    """A pair of grants `limit` calls apart that lie inside one 60-second window, if any.

    Some interval (t-60, t] holds more than `limit` calls iff g[i+limit] - g[i] < 60."""
    g = sorted(grants)
    for i in range(len(g) - limit):
        if g[i + limit] - g[i] < WINDOW - EPS:
            return g[i], g[i + limit]
    return None


# --------------------------------------------------------------------------- a simulation


def simulate(
    limiter: Limiter,
    clock: FakeClock,
    *,
    workers: int,
    arrivals: list[tuple[float, int]],
    call_time: tuple[float, float],
    seed: int,
    until: float,
    max_events: int = 30_000,
) -> list[float]:
    """Simulated workers take jobs that arrive in bursts; each job needs one call slot.

    A worker with a job asks `acquire()`; when told SlotTooFar it comes back after `delay`,
    keeping its job. After a granted call it is busy for a random call time, then takes the next
    job. Events run in time order; the limiter only ever sees `clock()` at each event, which is
    what a real worker would see. Returns the granted call times (the clock when acquire
    returned)."""
    rng = random.Random(seed)
    events: list[tuple[float, int, str, int]] = []
    seq = 0

    def push(t: float, kind: str, arg: int = -1) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, arg))
        seq += 1

    t = clock.now
    for gap, count in arrivals:
        t += gap
        push(t, "arrive", count)
    idle = list(range(workers))
    jobs = 0
    grants: list[float] = []
    n = 0
    while events and n < max_events:
        t, _, kind, arg = heapq.heappop(events)
        if t > until:
            break
        n += 1
        if kind == "arrive":
            jobs += arg
        elif kind == "free":
            idle.append(arg)
        elif kind == "try":
            clock.now = t
            try:
                limiter.acquire()
            except SlotTooFar as exc:
                assert exc.delay > 0
                push(t + exc.delay, "try", arg)
                continue
            grants.append(clock.now)
            push(clock.now + rng.uniform(*call_time), "free", arg)
        while idle and jobs:
            jobs -= 1
            push(t, "try", idle.pop())
    return grants


@st.composite
def demand(draw):
    limit = draw(st.one_of(st.integers(1, 10), st.integers(1, 1000)))
    margin = draw(st.one_of(st.just(0.0), st.just(0.6), st.floats(0, 2)))
    lookahead = draw(st.one_of(st.just(1.0), st.floats(0.05, 10)))
    workers = draw(st.integers(1, 80))
    bursts = draw(
        st.lists(
            st.tuples(
                st.one_of(st.just(0.0), st.floats(0, 5), st.floats(0, 200)),  # idle gap
                st.integers(1, 400),  # jobs arriving at once
            ),
            min_size=1,
            max_size=8,
        )
    )
    call = draw(st.sampled_from([(0.0, 0.0), (0.0, 0.3), (0.05, 2.0), (1.0, 10.0)]))
    seed = draw(st.integers(0, 2**32 - 1))
    return limit, margin, lookahead, workers, bursts, call, seed


def test_no_sliding_window_ever_holds_more_than_the_limit(make) -> None:
    property_test(make, 120, case=demand())(_no_window_over)


def _no_window_over(make, case) -> None:
    limit, margin, lookahead, workers, bursts, call, seed = case
    clock = FakeClock()
    limiter = make(limit, clock, margin=margin, lookahead=lookahead)
    grants = simulate(
        limiter, clock, workers=workers, arrivals=bursts, call_time=call, seed=seed, until=T0 + 900
    )
    assert grants, "some call must be granted"
    assert window_violation(grants, limit) is None
    # Consecutive slots are at least one spacing apart, whatever the demand.
    g = sorted(grants)
    assert all(b - a >= limiter.spacing - EPS for a, b in zip(g, g[1:], strict=False))


def test_window_holds_for_one_caller_at_arbitrary_times(make) -> None:
    """A single caller that asks at arbitrary moments (sorted gaps), taking what it is given."""
    property_test(
        make,
        120,
        limit=st.integers(1, 1000),
        margin=st.floats(0, 2),
        lookahead=st.floats(0.05, 10),
        pattern=st.lists(st.floats(0, 120), min_size=1, max_size=300),
    )(_one_caller)


def _one_caller(make, limit, margin, lookahead, pattern) -> None:
    clock = FakeClock()
    limiter = make(limit, clock, margin=margin, lookahead=lookahead)
    grants = []
    for gap in pattern:
        clock.now += gap
        try:
            limiter.acquire()
        except SlotTooFar as exc:
            clock.now += exc.delay
            limiter.acquire()
        grants.append(clock.now)
    assert window_violation(grants, limit) is None


def test_saturated_demand_runs_at_98_percent_of_the_limit(make) -> None:
    property_test(
        make,
        25,
        limit=st.one_of(st.integers(1, 20), st.integers(20, 1000)),
        lookahead=st.one_of(st.just(1.0), st.floats(0.05, 5)),
        call=st.sampled_from([(0.0, 0.0), (0.0, 0.5), (0.05, 2.0)]),
        minutes=st.floats(2, 4),
        seed=st.integers(0, 2**32 - 1),
    )(_saturated)


def _saturated(make, limit, lookahead, call, minutes, seed) -> None:
    clock = FakeClock()
    limiter = make(limit, clock, lookahead=lookahead)  # default margin 0.6 s
    assert limiter.spacing == pytest.approx(60.6 / limit)
    # Enough workers that some are always waiting: demand exceeds supply throughout.
    workers = 2 + math.ceil(limit / 60 * (call[1] + limiter.lookahead + limiter.spacing))
    jobs = [(0.0, 10**7)]
    span = minutes * 60
    grants = simulate(
        limiter,
        clock,
        workers=workers,
        arrivals=jobs,
        call_time=call,
        seed=seed,
        until=T0 + 60 + span + 1,
        max_events=10**6,
    )
    g = sorted(grants)
    assert g[0] == pytest.approx(T0)
    needed = 0.98 * limit * span / 60
    # Sustained: counted from any grant in the first minute, not just from the start.
    anchors = [x for x in g if x <= T0 + 60]
    for a in anchors[:: max(1, len(anchors) // 20)]:
        got = sum(1 for x in g if a <= x <= a + span)
        assert got >= needed, (a - T0, got, needed)
    assert window_violation(g, limit) is None


def test_default_margin_costs_one_percent(make) -> None:
    limiter = make(500, FakeClock())
    assert limiter.spacing == pytest.approx(60.6 / 500)
    assert 60 / limiter.spacing / 500 == pytest.approx(0.990099, rel=1e-6)


def test_limit_below_one_is_refused(make) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        make(0, FakeClock())


# --------------------------------------------------------------------------- acquire


def test_acquire_spaces_calls_and_returns_time_waited(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=5.0)  # one slot a second
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0)
    assert clock.now == pytest.approx(T0 + 1.0)
    clock.now += 10  # idle: no debt, no burst — the next slot is now, then one second later
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0)
    assert clock.slept == pytest.approx([1.0, 1.0])


def test_acquire_raises_when_the_slot_is_past_lookahead_plus_one_slot(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=2.0)
    limiter.sleep = lambda _: None  # the clock stands still: slots pile up ahead of `now`
    for _ in range(4):  # slots at +0, +1, +2, +3 (horizon = lookahead + spacing = 3)
        limiter.acquire()
    with pytest.raises(SlotTooFar) as info:
        limiter.acquire()
    exc = info.value
    assert exc.api == "daily"
    assert exc.reason == "busy"
    assert exc.delay == pytest.approx(4.0)
    assert str(exc) == "daily: next call slot in 4.0s (busy)"
    # The refused call took no slot: coming back after `delay` gets exactly that slot.
    clock.now += exc.delay
    assert limiter.acquire() == 0.0
    assert limiter.next_free() == pytest.approx(T0 + 5.0)


def test_max_wait_overrides_the_default_horizon(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=1.0)
    limiter.acquire()
    with pytest.raises(SlotTooFar):
        limiter.acquire(max_wait=0.5)
    assert limiter.acquire(max_wait=1.0) == pytest.approx(1.0)


def test_lookahead_is_at_least_one_slot(make) -> None:
    clock = FakeClock()
    limiter = make(1, clock, lookahead=0.1)  # a slot every 60.6 s
    assert limiter.lookahead == pytest.approx(60.6)
    limiter.acquire()
    # The second call may wait one whole slot (and the lookahead) rather than bounce forever.
    assert limiter.acquire() == pytest.approx(60.6)


# --------------------------------------------------------------------------- ready()


def test_ready_means_a_slot_within_the_lookahead(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=2.0)
    limiter.sleep = lambda _: None  # reservations pile up while the clock stands still
    assert limiter.ready()
    limiter.acquire()  # next free: +1
    assert limiter.ready()
    limiter.acquire()  # next free: +2, not < lookahead
    assert not limiter.ready()
    clock.now += 0.001
    assert limiter.ready()


def test_ready_is_false_while_paused_and_true_after(make) -> None:
    clock = FakeClock()
    limiter = make(600, clock)
    limiter.pause_until(T0 + 30, "test pause")
    assert not limiter.ready()
    clock.now = T0 + 29.5
    assert limiter.ready()  # 0.5 s left < lookahead 1 s
    assert limiter.paused() == (T0 + 30, "test pause")


# --------------------------------------------------------------------------- pauses


def test_rejected_backs_off_doubling_up_to_a_window(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0)  # spacing 1 s: base pause max(1, 5 * 1) = 5 s
    pauses = [limiter.rejected() for _ in range(7)]
    assert pauses == [5, 10, 20, 40, 60, 60, 60]
    until, reason = limiter.paused()
    assert until == T0 + 60
    assert reason == "API refused a call (minute limit)"


def test_rejected_base_is_at_least_one_second(make) -> None:
    clock = FakeClock()
    limiter = make(1000, clock, margin=0.0)  # spacing 0.06 s: 5 slots = 0.3 s < 1 s
    assert limiter.rejected() == 1.0
    assert limiter.rejected() == 2.0


def test_succeeded_resets_the_back_off(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0)
    assert [limiter.rejected() for _ in range(3)] == [5, 10, 20]
    limiter.succeeded()
    clock.now += 100
    assert limiter.rejected() == 5


def test_rejected_with_an_explicit_end_pauses_until_then(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock)
    assert limiter.rejected("day", until=T0 + 3600) == 3600
    assert limiter.paused() == (T0 + 3600, "API refused a call (day limit)")


def test_a_pause_never_shortens_an_existing_one(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock)
    limiter.pause_until(T0 + 50, "long")
    limiter.pause_until(T0 + 10, "short")
    assert limiter.paused() == (T0 + 50, "long")
    assert limiter.next_free() == T0 + 50


def test_acquire_during_a_long_pause_raises_with_its_reason(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=1.0)
    limiter.rejected()  # 5 s > lookahead + spacing = 2 s
    with pytest.raises(SlotTooFar) as info:
        limiter.acquire()
    assert info.value.reason == "API refused a call (minute limit)"
    assert info.value.delay == pytest.approx(5.0)
    clock.now += info.value.delay
    assert limiter.acquire() == 0.0
    assert clock.now == T0 + 5


def test_acquire_during_a_short_pause_sleeps_to_its_end(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=5.0)
    limiter.pause_until(T0 + 3, "short")
    assert limiter.acquire() == pytest.approx(3.0)
    assert clock.now == pytest.approx(T0 + 3)


def test_a_pause_that_begins_while_a_caller_sleeps_makes_it_reserve_again(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=5.0)
    limiter.acquire()  # the next slot is +1: the caller below sleeps for it
    calls = []

    def sleep(seconds: float) -> None:
        calls.append((clock.now, seconds))
        if len(calls) == 1:  # another worker got a rate-limit reply meanwhile
            limiter.pause_until(clock.now + 4, "API refused a call (minute limit)")
        clock.sleep(seconds)

    limiter.sleep = sleep
    waited = limiter.acquire()
    # Slept to the spent slot (+1), found the pause, reserved again: the pause's end (+4).
    assert calls == [(T0, pytest.approx(1.0)), (pytest.approx(T0 + 1), pytest.approx(3.0))]
    assert waited == pytest.approx(4.0)
    assert clock.now == pytest.approx(T0 + 4)
    assert limiter.next_free() == pytest.approx(T0 + 5)


def test_a_pause_during_sleep_past_the_horizon_raises(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=1.0)
    limiter.acquire()

    def sleep(seconds: float) -> None:
        limiter.pause_until(clock.now + 30, "API refused a call (minute limit)")
        clock.sleep(seconds)

    limiter.sleep = sleep
    with pytest.raises(SlotTooFar) as info:
        limiter.acquire()
    assert info.value.reason == "API refused a call (minute limit)"
    assert info.value.delay == pytest.approx(29.0)


def test_acquire_never_waits_longer_than_max_wait(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock, margin=0.0, lookahead=1.0)
    limiter.acquire()

    def sleep(seconds: float) -> None:
        if limiter.paused()[0] <= clock.now:
            limiter.pause_until(clock.now + 2.9, "API refused a call (minute limit)")
        clock.sleep(seconds)

    limiter.sleep = sleep
    try:
        waited = limiter.acquire(max_wait=2.0)
    except SlotTooFar:
        return  # refusing is what the docstring promises
    assert waited <= 2.0


def test_pause_until_infinity_stops_the_interface(make) -> None:
    clock = FakeClock()
    limiter = make(60, clock)
    limiter.pause_until(math.inf, "daily cap reached")
    assert not limiter.ready()
    for _ in range(3):
        with pytest.raises(SlotTooFar) as info:
            limiter.acquire()
        assert info.value.reason == "daily cap reached"
        assert info.value.delay == math.inf
        assert "daily cap reached" in str(info.value)
        clock.now += 3600
    assert clock.slept == []


# --------------------------------------------------------------------------- real threads


def test_real_threads_never_share_or_bunch_slots(make) -> None:
    """20 threads, 2 calls each, real time: the i-th call to return can't return before the
    i-th slot, and slots start at the first request and are one spacing apart."""
    limiter = make(2400, time.time, sleep=time.sleep, margin=0.0)  # 0.025 s apart: 40 calls in ~1 s
    grants: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)
    t0 = time.time()

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(2):
                while True:
                    try:
                        limiter.acquire()
                        break
                    except SlotTooFar as exc:
                        time.sleep(exc.delay)
                with lock:
                    grants.append(time.time())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(grants) == 40
    g = sorted(grants)
    for i, x in enumerate(g):
        assert x >= t0 + i * limiter.spacing - 0.002, (i, x - t0)
    assert g[-1] - t0 < 39 * limiter.spacing + 3.0  # and nobody starved
    assert window_violation(g, limiter.limit) is None


def test_claims_count_against_readiness_until_acquired_or_lapsed(make) -> None:
    now = [1000.0]
    lim = make(
        600,
        lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        margin=0.0,
        lookahead=1.0,
    )
    # 10 slots fit in the 1-second lookahead: ten workers may take a task, the eleventh not.
    for _ in range(10):
        assert lim.ready()
        lim.claim()
    assert not lim.ready()
    lim.acquire()  # the first claimed task takes its slot: the claim becomes a reservation
    assert not lim.ready()
    now[0] += 5.1  # the other claims lapse (their tasks never came to acquire)
    assert lim.ready()


# --------------------------------------------------------------------------- the process's view


class CountingBackend(MemoryBackend):
    """Counts the reads the gate's view makes."""

    def __init__(self, clock):
        super().__init__(clock)
        self.reads = 0

    def states(self, apis):
        self.reads += 1
        return super().states(apis)


def test_one_read_serves_every_interface_until_it_is_stale() -> None:
    from neo_cli.limits.base import VIEW_TTL, View

    clock = FakeClock()
    backend = CountingBackend(clock)
    view = View(backend, ["daily", "income"], clock)
    limiters = {
        api: Limiter(api, 600, backend, clock=clock, sleep=clock.sleep, view=view)
        for api in ("daily", "income")
    }
    for _ in range(50):  # fifty workers asking the gate at once
        assert all(lim.ready() for lim in limiters.values())
    assert backend.reads == 1
    clock.now += VIEW_TTL * 1.01
    limiters["daily"].ready()
    assert backend.reads == 2


def test_the_view_counts_this_processs_own_slots_without_a_read() -> None:
    from neo_cli.limits.base import View

    clock = FakeClock()
    backend = CountingBackend(clock)
    view = View(backend, ["daily"], clock)
    lim = Limiter("daily", 600, backend, clock=clock, sleep=lambda s: None, view=view)
    lim.ready()
    reads = backend.reads
    for _ in range(10):  # ten slots 0.1 s apart fill the 1 s lookahead
        lim.acquire(claimed=False)
    assert not lim.ready()  # known from its own reservations ...
    assert backend.reads == reads  # ... without asking the store


def test_threads_waiting_on_a_read_do_not_read_again() -> None:
    from neo_cli.limits.base import View

    backend = CountingBackend(time.time)
    slow_states = backend.states

    def states(apis):
        time.sleep(0.02)  # a slow store: everyone else queues behind this read
        return slow_states(apis)

    backend.states = states
    view = View(backend, ["daily"], time.time)
    threads = [threading.Thread(target=view.get, args=("daily",)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.reads == 1


def test_a_caller_that_oversleeps_its_slot_takes_the_next_one(make) -> None:
    """On a loaded machine a thread can wake late; a call sent late would land nearer the
    calls after it than the margin allows, so the slot is given up (spent, unused)."""
    clock = FakeClock()
    naps = iter([0.5])  # the first sleep overshoots by half a second, later ones do not

    def sleep(seconds: float) -> None:
        clock.sleep(seconds + next(naps, 0.0))

    limiter = make(60, clock, sleep=sleep, margin=0.6, lookahead=5.0)  # 1.01 s apart
    limiter.acquire()  # the first slot is now: no sleep
    limiter.acquire()  # slot at +1.01; woke at +1.51: too late, so it waits for +2.02
    assert clock.now == pytest.approx(T0 + 2 * limiter.spacing)
    assert limiter.late == 1
    limiter.acquire()
    assert clock.now == pytest.approx(T0 + 3 * limiter.spacing)


def test_a_caller_woken_early_by_a_stop_gives_its_slot_up(make) -> None:
    """The fast consumer's sleep is its stop flag's wait: `neo stop` wakes a worker that
    waits for a slot, which then hands its task back instead of holding the stop."""
    clock = FakeClock()
    woken = []

    def sleep(seconds: float) -> bool:  # Event.wait with the flag set: True, at once
        woken.append(seconds)
        return True

    limiter = make(1, clock, sleep=sleep, margin=0.6, lookahead=5.0)  # a slot a minute
    limiter.acquire()
    with pytest.raises(SlotTooFar) as info:
        limiter.acquire()
    assert info.value.reason == "stopping" and woken and info.value.delay > 50


def test_a_slot_must_be_left_by_half_the_margin_after_it(make) -> None:
    """`take` hands out the slot with its deadline; the provider checks it last thing before
    the request goes out (`Slot.leave`), which sees the time the limiter cannot."""
    clock = FakeClock()
    limiter = make(60, clock, margin=0.6, lookahead=5.0)
    limiter.take()
    slot = limiter.take()  # slept to +1.01
    assert slot.waited == pytest.approx(limiter.spacing)
    assert slot.send_by == pytest.approx(T0 + limiter.spacing + 0.3)
    clock.now += 0.3
    slot.leave()  # just in time
    clock.now += 0.01
    with pytest.raises(SlotMissed, match="late for its slot"):
        slot.leave()


def test_a_slow_read_after_waking_counts_as_waking_late(make) -> None:
    """The pause check after the sleep is a read of the shared store, which a loaded machine
    can hold up too: lateness is judged after it, not before."""
    clock = FakeClock()
    limiter = make(60, clock, margin=0.6, lookahead=5.0)
    limiter.take()
    real_state = limiter.backend.state
    slow = iter([0.5])

    def state(api):
        clock.now += next(slow, 0.0)
        return real_state(api)

    limiter.backend.state = state
    limiter.take()  # slot at +1.01; the read after waking ends at +1.51: given up
    assert limiter.late == 1
    assert clock.now == pytest.approx(T0 + 2 * limiter.spacing)
