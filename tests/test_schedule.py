"""The scheduled update on a fake clock, through the real scheduling code: the cron times, the
run book in a real ledger file (claims, leases, take-overs), and the update's order, waits and
trading-day rule against the simulated market's calendar."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from huey import crontab
from hypothesis import given, settings
from hypothesis import strategies as st

from neo_cli import config
from neo_cli.errors import InputError, QueueFull
from neo_cli.providers.market import Market
from neo_cli.schedule.book import SqliteRunBook
from neo_cli.schedule.cron import Cron
from neo_cli.schedule.scheduler import Scheduler, view
from neo_cli.schedule.update import Outcome, Schedule, run_update

CHINA = ZoneInfo("Asia/Shanghai")


def china(y, m, d, hh=0, mm=0, ss=0) -> float:
    return datetime(y, m, d, hh, mm, ss, tzinfo=CHINA).timestamp()


# ----------------------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    "expression, at, expected_next",
    [
        # Wednesday 2026-12-02 10:00 -> 18:30 the same day
        ("30 18 * * 1-5", china(2026, 12, 2, 10), china(2026, 12, 2, 18, 30)),
        # Friday after the time -> Monday
        ("30 18 * * 1-5", china(2026, 12, 4, 18, 30), china(2026, 12, 7, 18, 30)),
        ("30 18 * * mon-fri", china(2026, 12, 5, 9), china(2026, 12, 7, 18, 30)),
        ("*/15 9-10 * * *", china(2026, 12, 2, 10, 50), china(2026, 12, 3, 9, 0)),
        ("0 0 1 jan *", china(2026, 12, 2), china(2027, 1, 1)),
        ("@daily", china(2026, 12, 2, 0, 0, 1), china(2026, 12, 3)),
        # day of month and day of week both restricted: either matches (cron's rule)
        ("0 12 15 * 0", china(2026, 12, 2), china(2026, 12, 6, 12)),
        ("0 12 15 * 7", china(2026, 12, 7), china(2026, 12, 13, 12)),
        ("0 12 15 * 0", china(2026, 12, 14), china(2026, 12, 15, 12)),
        ("0 0 29 2 *", china(2026, 12, 2), china(2028, 2, 29)),
    ],
)
def test_next_time(expression, at, expected_next):
    cron = Cron.parse(expression, "Asia/Shanghai")
    assert cron.next_after(at) == expected_next
    assert cron.last_at_or_before(expected_next) == expected_next
    assert cron.last_at_or_before(expected_next - 1) < expected_next


@pytest.mark.parametrize(
    "expression, why",
    [
        ("30 18 * *", "4 field(s) where cron has 5"),
        ("60 18 * * *", "minute 60 is out of range 0-59"),
        ("30 24 * * *", "hour 24 is out of range 0-23"),
        ("30 18 0 * *", "day of month 0 is out of range 1-31"),
        ("30 18 * 13 *", "month 13 is out of range 1-12"),
        ("30 18 * * 8", "day of week 8 is out of range 0-7"),
        ("30 18 * * fri-mon", "day of week range 'fri-mon' runs backwards"),
        ("*/0 * * * *", "minute step '0' is not a whole number above 0"),
        ("a * * * *", "minute 'a' is not a number"),
    ],
)
def test_bad_expressions_say_why(expression, why):
    with pytest.raises(ValueError, match="^" + why.replace("(", r"\(").replace(")", r"\)")):
        Cron.parse(expression)


FIELD = st.sampled_from(["*", "*/7", "5", "1-3", "2,9,17", "10-40/10"])
HOURS = st.sampled_from(["*", "*/5", "9", "0-3", "18,23"])
MONTH = st.sampled_from(["*", "*/2", "1-6", "12"])
WEEKDAY = st.sampled_from(["*", "1-5", "0", "6,0", "mon-wed"])


@settings(max_examples=30, deadline=None)
@given(
    minute=FIELD,
    hour=HOURS,
    month=MONTH,
    weekday=WEEKDAY,
    start=st.integers(0, 86_400 * 365),
)
def test_times_agree_with_huey_crontab(minute, hour, month, weekday, start):
    """Against huey's `crontab` minute matcher (cron's rule when the day of month is `*`):
    next_after is the first matching minute after t, last_at_or_before the last one <= t."""
    cron = Cron.parse(f"{minute} {hour} * {month} {weekday}", "Asia/Shanghai")
    huey_weekday = weekday.replace("mon-wed", "1-3")
    matches = crontab(minute, hour, "*", month, huey_weekday)
    t = china(2026, 1, 1) + start + 17.5

    def minutes(frm: float, step: int):
        m = datetime.fromtimestamp(frm, CHINA).replace(second=0, microsecond=0)
        if step > 0:
            m += timedelta(minutes=1)
        for _ in range(60 * 24 * 35):  # five weeks of minutes
            yield m
            m += timedelta(minutes=step)

    nxt = next((m for m in minutes(t, 1) if matches(m.replace(tzinfo=None))), None)
    prev = next((m for m in minutes(t, -1) if matches(m.replace(tzinfo=None))), None)
    if nxt is not None:
        assert cron.next_after(t) == nxt.timestamp()
    if prev is not None:
        assert cron.last_at_or_before(t) == prev.timestamp()


# ------------------------------------------------------------------------- the scheduler


def schedule(**values) -> Schedule:
    return Schedule.from_values(
        {
            "update": "30 18 * * 1-5",
            "timezone": "Asia/Shanghai",
            "task_types": ["stock_basic", "daily_qfq", "income", "balancesheet", "cashflow"],
            **values,
        }
    )


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A run that records the times it ran at and returns a plain outcome."""

    def __init__(self):
        self.slots: list[float] = []

    def __call__(self, slot, keep_alive) -> Outcome:
        keep_alive()
        self.slots.append(slot)
        return Outcome()


def scheduler(tmp_path: Path, clock: Clock, run=None, owner="host:1", sched=None) -> Scheduler:
    book = SqliteRunBook(tmp_path / "ledger.db")
    return Scheduler(sched or schedule(), book, run or Recorder(), owner=owner, clock=clock)


def test_fires_at_the_time_and_once(tmp_path):
    clock = Clock(china(2026, 12, 2, 10))  # Wednesday morning: the schedule is first seen
    s = scheduler(tmp_path, clock)
    assert s.step() is None
    clock.t = china(2026, 12, 2, 18, 29, 59)
    assert s.step() is None and s.run.slots == []
    clock.t = china(2026, 12, 2, 18, 30)
    run = s.step()
    assert run is not None and run.state == "done" and run.owner == "host:1"
    assert s.run.slots == [china(2026, 12, 2, 18, 30)]
    for minutes in (0, 1, 60, 300):  # looking again that evening: nothing more
        clock.t = china(2026, 12, 2, 18, 30) + minutes * 60
        assert s.step() is None
    assert len(s.run.slots) == 1
    clock.t = china(2026, 12, 3, 18, 30, 1)
    assert s.step().slot == china(2026, 12, 3, 18, 30)
    assert len(s.run.slots) == 2


def test_a_time_before_the_schedule_was_first_seen_was_never_missed(tmp_path):
    clock = Clock(china(2026, 12, 2, 19))  # installed after today's time
    s = scheduler(tmp_path, clock)
    assert s.step() is None and s.run.slots == []
    clock.t = china(2026, 12, 3, 18, 30)
    assert s.step() is not None


def test_downtime_that_missed_three_runs_runs_once(tmp_path):
    clock = Clock(china(2026, 11, 30, 12))  # Monday
    first = scheduler(tmp_path, clock)
    assert first.step() is None
    clock.t = china(2026, 11, 30, 18, 31)
    assert first.step() is not None
    first.book.close()
    # Down from Monday night to Friday noon: Tue, Wed and Thu 18:30 were missed.
    clock.t = china(2026, 12, 4, 12)
    again = scheduler(tmp_path, clock, owner="host:2")
    run = again.step()
    assert run is not None and run.slot == china(2026, 12, 3, 18, 30)  # the latest, once
    for _ in range(5):
        clock.t += 600
        assert again.step() is None
    assert again.run.slots == [china(2026, 12, 3, 18, 30)]
    clock.t = china(2026, 12, 4, 18, 30)
    assert again.step().slot == china(2026, 12, 4, 18, 30)


def test_a_restart_does_not_run_it_again(tmp_path):
    clock = Clock(china(2026, 12, 2, 10))
    s = scheduler(tmp_path, clock)
    s.step()
    clock.t = china(2026, 12, 2, 18, 30, 5)
    assert s.step() is not None
    s.book.close()
    restarted = scheduler(tmp_path, clock, owner="host:2")
    clock.t = china(2026, 12, 2, 20)
    assert restarted.step() is None and restarted.run.slots == []


def test_only_on_trading_days(tmp_path):
    """The simulated market's calendar: 1-7 October are a holiday."""
    market = Market(1, 5, datetime(2026, 12, 31).date())
    enqueued: list[tuple[str, str]] = []

    def run(slot, keep_alive):
        def enqueue_type(kind, on_wait):
            enqueued.append((sched.day_of(slot), kind.name))
            return done(3)

        return run_update(
            sched,
            slot,
            keep_alive,
            calendar=lambda day: day in market.trade_dates(day, day),
            enqueue_type=enqueue_type,
            live_units=lambda api: 0,
        )

    sched = schedule(task_types=["daily"])
    clock = Clock(china(2026, 9, 30, 12))
    s = scheduler(tmp_path, clock, run=run, sched=sched)
    s.step()
    outcomes = {}
    for day in (30, 1, 2, 5, 6, 7, 8):  # Sep 30 (Wed) ... Oct 8 (Thu); Oct 3/4 a weekend
        month = 9 if day == 30 else 10
        clock.t = china(2026, month, day, 18, 30)
        run_ = s.step()
        outcomes[f"{month:02d}{day:02d}"] = (run_.state, run_.outcome["reason"])
    assert enqueued == [("20260930", "daily"), ("20261008", "daily")]
    assert outcomes["0930"] == ("done", "")
    assert outcomes["1001"] == ("skipped", "20261001 is not a trading day")
    assert all(outcomes[d][0] == "skipped" for d in ("1002", "1005", "1006", "1007"))
    assert outcomes["1008"] == ("done", "")


def done(n: int, queued: int = 0, current: int = 0):
    plan = SimpleNamespace(queued=queued, current=current)
    return SimpleNamespace(batch=f"b{n}", ids=[f"u{i}" for i in range(n)], plan=plan)


def test_types_run_in_order_and_wait_for_the_symbol_list():
    """stock_basic first (even when listed later); the others only once its rows are saved."""
    sched = schedule(task_types=["daily_qfq", "income", "stock_basic"])
    events: list[str] = []
    live = {"stock_basic": 3}

    def enqueue_type(kind, on_wait):
        events.append(f"enqueue {kind.name}")
        return done(3 if kind.name == "stock_basic" else 7, queued=1)

    def live_units(api):
        return live.get(api, 0)

    def sleep(seconds):
        events.append("wait")
        live["stock_basic"] -= 1  # one unit saved a second

    out = run_update(
        sched,
        china(2026, 12, 2, 18, 30),
        lambda: None,
        calendar=lambda day: True,
        enqueue_type=enqueue_type,
        live_units=live_units,
        sleep=sleep,
    )
    assert events == [
        "enqueue stock_basic",
        "wait",
        "wait",
        "wait",
        "enqueue daily_qfq",
        "enqueue income",
    ]
    assert out.state == "done"
    assert out.task_types["daily_qfq"] == {"batch": "b7", "enqueued": 7, "queued": 1, "current": 0}
    summary = Outcome.summary(out.as_dict())
    assert summary == (
        "enqueued 17 task(s) (stock_basic 3, daily_qfq 7, income 7); "
        "skipped 3 already queued, 0 up to date"
    )


def test_the_symbol_list_on_its_way_is_waited_for_even_when_this_run_added_none():
    """A run taken over after its process died finds stock_basic already queued: it still
    waits for those units before planning from the symbol list."""
    sched = schedule(task_types=["stock_basic", "daily"])
    live = {"stock_basic": 1}
    events: list[str] = []

    def enqueue_type(kind, on_wait):
        events.append(kind.name)
        return done(0, queued=1) if kind.name == "stock_basic" else done(5)

    def sleep(seconds):
        events.append("wait")
        live["stock_basic"] = 0

    run_update(sched, china(2026, 12, 2, 18, 30), lambda: None, lambda d: True, enqueue_type,
               live.get, sleep=sleep)  # fmt: skip
    assert events == ["stock_basic", "wait", "daily"]


def test_a_symbol_list_never_saved_is_waited_for_a_bounded_time():
    sched = schedule(task_types=["stock_basic", "daily"], wait_minutes=2)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    names: list[str] = []
    out = run_update(
        sched,
        china(2026, 12, 2, 18, 30),
        lambda: None,
        calendar=lambda day: True,
        enqueue_type=lambda kind, on_wait: names.append(kind.name) or done(3),
        live_units=lambda api: 3,  # the slow consumer never saves
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert names == ["stock_basic", "daily"] and 120 <= now[0] <= 121
    assert out.state == "done"
    assert out.reason == (
        "stock_basic not saved after 2 min; the rest planned with the symbol list saved before"
    )


def test_a_type_that_fails_is_named_and_the_others_still_run():
    sched = schedule(task_types=["daily", "income"])

    def enqueue_type(kind, on_wait):
        if kind.name == "daily":
            raise InputError("no symbols: the stock_basic table is empty")
        return done(2)

    out = run_update(
        sched, china(2026, 12, 2, 18, 30), lambda: None, lambda d: None, enqueue_type, lambda a: 0
    )
    assert out.state == "failed"
    assert out.task_types["daily"] == {"error": "no symbols: the stock_basic table is empty"}
    assert Outcome.summary(out.as_dict()) == (
        "enqueued 2 task(s) (income 2); skipped 0 already queued, 0 up to date; "
        "daily failed: no symbols: the stock_basic table is empty"
    )


def test_a_full_queue_is_waited_for_and_a_stop_ends_the_wait(tmp_path):
    """`neo enqueue --wait`'s callback: while the queue is full the run keeps its lease, and
    a stop ends it unfinished, free for the next start at once."""
    clock = Clock(china(2026, 12, 2, 10))

    def run(slot, keep_alive):
        def enqueue_type(kind, on_wait):
            for _ in range(3):
                on_wait(200_000, 200_000)
                clock.t += 40
            s.stopping.set()  # neo stop while the queue is still full
            on_wait(200_000, 200_000)
            raise QueueFull(200_000, 1, 200_000)

        return run_update(schedule(task_types=["daily"]), slot, keep_alive, lambda d: True,
                          enqueue_type, lambda a: 0)  # fmt: skip

    s = scheduler(tmp_path, clock, run=run)
    s.step()
    clock.t = china(2026, 12, 2, 18, 30)
    assert s.step() is None
    last = s.book.last("update")
    assert last.state == "running" and last.lease_until == 0  # released, not finished
    s.stopping.clear()
    again = scheduler(tmp_path, clock, owner="host:2")
    assert again.step().takeovers == 1


def test_a_dead_claim_is_taken_over_after_its_lease(tmp_path):
    clock = Clock(china(2026, 12, 2, 10))
    book = SqliteRunBook(tmp_path / "ledger.db")
    book.since("update", clock.t)
    slot = china(2026, 12, 2, 18, 30)
    assert book.claim("update", slot, "other-host:99", slot + 1, 120) is not None  # then died
    s = scheduler(tmp_path, clock)
    clock.t = slot + 60
    assert s.step() is None  # its lease still runs
    clock.t = slot + 122
    run = s.step()
    assert run.state == "done" and run.owner == "host:1" and run.takeovers == 1
    assert not book.renew("update", slot, "other-host:99", clock.t, 120)  # it lost the claim
    assert not book.finish("update", slot, "other-host:99", "done", {}, clock.t)


def test_a_killed_predecessor_on_this_host_frees_its_claim_at_start(tmp_path):
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    clock = Clock(china(2026, 12, 2, 10))
    book = SqliteRunBook(tmp_path / "ledger.db")
    book.since("update", clock.t)
    slot = china(2026, 12, 2, 18, 30)
    book.claim("update", slot, f"{socket.gethostname()}:{gone}", slot + 1, 120)
    s = scheduler(tmp_path, clock)
    clock.t = slot + 10
    s.release_dead_claim()
    assert s.step().takeovers == 1


def test_a_clock_behind_never_runs_an_older_time(tmp_path):
    ahead = Clock(china(2026, 12, 2, 10))
    a = scheduler(tmp_path, ahead, owner="a:1")
    b_clock = Clock(ahead.t)
    b = scheduler(tmp_path, b_clock, owner="b:1")
    a.step(), b.step()
    ahead.t = china(2026, 12, 3, 18, 30, 5)
    b_clock.t = china(2026, 12, 2, 18, 35)  # a day behind, and yesterday's time never ran
    assert a.step() is not None
    assert b.step() is None
    assert b.run.slots == [] and a.run.slots == [china(2026, 12, 3, 18, 30)]


def test_a_run_that_raises_is_recorded_failed_and_not_repeated(tmp_path):
    clock = Clock(china(2026, 12, 2, 10))

    def broken(slot, keep_alive):
        raise RuntimeError("disk full")

    s = scheduler(tmp_path, clock, run=broken)
    s.step()
    clock.t = china(2026, 12, 2, 18, 30)
    run = s.step()
    assert run.state == "failed" and run.outcome["reason"] == "RuntimeError: disk full"
    clock.t += 60
    assert s.step() is None


def test_view_shows_the_next_time_and_the_last_outcome(tmp_path):
    clock = Clock(china(2026, 12, 2, 10))
    sched = schedule()
    s = scheduler(tmp_path, clock, sched=sched)
    s.step()
    empty = view(sched, s.book, clock.t, active=True)
    assert empty["next"] == china(2026, 12, 2, 18, 30)
    assert empty["next_local"] == "2026-12-02 18:30 CST" and empty["last"] is None
    clock.t = china(2026, 12, 2, 18, 30)
    s.step()
    seen = view(sched, s.book, clock.t + 5, active=False)
    assert seen["active"] is False and seen["next_local"] == "2026-12-03 18:30 CST"
    assert seen["last"]["state"] == "done" and seen["last"]["slot_local"] == "2026-12-02 18:30 CST"
    assert seen["last"]["summary"] == "nothing to do"
    off = view(schedule(update=""), s.book, clock.t, active=True)
    assert off["enabled"] is False and off["next"] is None and off["last"]["state"] == "done"


# ---------------------------------------------------------------- across two processes

RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from zoneinfo import ZoneInfo
    from datetime import datetime
    from neo_cli.schedule.book import SqliteRunBook
    from neo_cli.schedule.scheduler import Scheduler
    from neo_cli.schedule.update import Outcome, Schedule

    ledger, out, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    china = ZoneInfo("Asia/Shanghai")
    t0 = datetime(2026, 12, 2, 10, tzinfo=china).timestamp()
    slot = datetime(2026, 12, 2, 18, 30, tzinfo=china).timestamp()
    sched = Schedule.from_values({"update": "30 18 * * 1-5", "timezone": "Asia/Shanghai",
                                  "task_types": ["daily"]})

    def run(at, keep_alive):
        with out.open("a") as f:
            f.write(f"{os.getpid()} {at}\\n")
        time.sleep(0.5)
        keep_alive()
        return Outcome()

    # One fake clock for both: the real time, moved to the day's morning, then (at "go")
    # to the scheduled time; both processes read the same shifted time.
    shift = [t0 - time.time()]
    s = Scheduler(sched, SqliteRunBook(ledger), run, owner=f"racer:{os.getpid()}",
                  clock=lambda: time.time() + shift[0])
    s.step()
    deadline = time.monotonic() + 20
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    shift[0] = slot - float(go.read_text())
    while time.time() + shift[0] < slot + 3:  # three seconds of looks from the time on
        s.step()
        time.sleep(0.01)
    """
)


def test_once_across_two_processes_that_both_have_the_schedule(tmp_path):
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    ledger, out, go = tmp_path / "ledger.db", tmp_path / "runs.txt", tmp_path / "go"
    SqliteRunBook(ledger).close()
    racers = [
        subprocess.Popen([sys.executable, str(script), str(ledger), str(out), str(go)])
        for _ in range(2)
    ]
    time.sleep(1.5)  # both have seen the schedule and wait at the line
    (tmp_path / "go.tmp").write_text(repr(time.time()))
    (tmp_path / "go.tmp").rename(go)  # whole, or not there
    assert [r.wait(60) for r in racers] == [0, 0]
    runs = out.read_text().splitlines()
    assert len(runs) == 1, runs
    pid, slot = runs[0].split()
    assert float(slot) == china(2026, 12, 2, 18, 30)
    last = SqliteRunBook(ledger).last("update")
    assert last.state == "done" and last.owner == f"racer:{pid}" and last.takeovers == 0


# ---------------------------------------------------------------- configuration and CLI


def test_the_shipped_config_has_the_schedule_on():
    settings = config.load(Path(__file__).parents[1] / "configs" / "neo.toml", environ={})
    s = Schedule.from_settings(settings)
    assert s.enabled and s.cron.expression == "30 18 * * 1-5" and s.cron.tz.key == "Asia/Shanghai"
    assert [t.name for t in s.ordered()] == [
        "stock_basic",
        "daily_qfq",
        "income",
        "balancesheet",
        "cashflow",
    ]
    assert Schedule.from_settings(config.load(environ={}, cwd=Path("/"))) == s  # the default


@pytest.mark.parametrize(
    "keys, line",
    [
        (
            {"update": "30 18 * * 1-8"},
            "invalid [schedule] update = '30 18 * * 1-8' (from {f}): day of week 8 is out of "
            'range 0-7; allowed: a cron expression "minute hour day month weekday", e.g. '
            '"30 18 * * 1-5", or "" for none',
        ),
        (
            {"timezone": "China/Beijing"},
            "invalid [schedule] timezone = 'China/Beijing' (from {f}): unknown time zone "
            "'China/Beijing'; allowed: an IANA time zone name, e.g. Asia/Shanghai",
        ),
        (
            {"task_types": ["daily", "weekly"]},
            "invalid [schedule] task_types = ['daily', 'weekly'] (from {f}): unknown task type "
            "'weekly'; allowed: a list of task types from stock_basic, daily, adj_factor, "
            "daily_qfq, income, balancesheet, cashflow",
        ),
        (
            {"task_types": "daily"},
            "invalid [schedule] task_types = 'daily' (from {f}); allowed: a list of task types "
            "from stock_basic, daily, adj_factor, daily_qfq, income, balancesheet, cashflow",
        ),
        (
            {"wait_minutes": 0},
            "invalid [schedule] wait_minutes = 0 (from {f}); allowed: a number from 1 to 1440",
        ),
    ],
)
def test_bad_schedule_values_get_one_line(home, keys, line):
    home.configure(schedule=keys)
    result = home.cli("start")
    assert result.exit_code == 2
    assert result.output.strip() == "neo: error: " + line.format(f=home.config)
    assert not (home.data / "run" / "supervisor.pid").exists()


def test_status_shows_the_schedule_and_the_last_run(home, tmp_path):
    home.configure(schedule={"update": "30 18 * * 1-5"})
    home.data.mkdir(parents=True)
    book = SqliteRunBook(home.data / "ledger.db")
    slot = china(2026, 12, 1, 18, 30)
    book.since("update", slot - 3600)
    book.claim("update", slot, "box:42", slot, 120)
    outcome = Outcome(task_types={"daily_qfq": {"batch": "b1", "enqueued": 12, "queued": 0,
                                                "current": 288}})  # fmt: skip
    book.finish("update", slot, "box:42", "done", outcome.as_dict(), slot + 9)
    result = home.cli("status", "--json")
    data = json.loads(result.output)["schedule"]
    assert data["enabled"] and not data["active"] and data["next"] > time.time()
    assert data["last"]["state"] == "done" and data["last"]["owner"] == "box:42"
    assert data["last"]["task_types"]["daily_qfq"]["enqueued"] == 12
    text = home.cli("status").output
    assert "schedule: update '30 18 * * 1-5' (Asia/Shanghai), next " in text
    assert (
        "last update 2026-12-01 18:30 CST: done — enqueued 12 task(s) (daily_qfq 12); "
        "skipped 0 already queued, 288 up to date"
    ) in text
