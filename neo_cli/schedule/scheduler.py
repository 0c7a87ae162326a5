"""The scheduler: runs the daily update at its scheduled times, each time once.

It lives in the supervisor, on a thread of its own (an update waits minutes for the symbol list
to be saved; the supervisor's loop must keep watching its consumers meanwhile). Every second it
asks: what is the latest scheduled time at or before now, and does it have a run? If not, it
claims that time in the run book and runs it. Hence:

- *once across processes and machines*: the claim is atomic in the book they share, and a
  claim is refused when any run for that time or a later one exists;
- *once after a restart*: the run is in the book, not in memory;
- *a missed time runs once*: after a downtime only the latest missed time is looked at, like
  systemd's `Persistent=true`; times before the schedule was first seen were never missed;
- *never lost*: a run whose process died stops renewing its lease and is taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psutil

from neo_cli.schedule.book import FINISHED, Run, RunBook
from neo_cli.schedule.update import NAME, Interrupted, Outcome, Schedule

log = logging.getLogger("neo.schedule")

LEASE = 120.0  # seconds a claim holds without renewal; renewed every quarter of it
# (slot, keep_alive) -> Outcome: what runs at a scheduled time
RunFn = Callable[[float, Callable[[], None]], Outcome]


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    def __init__(
        self,
        schedule: Schedule,
        book: RunBook,
        run: RunFn,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        tick: float = 1.0,
        stopping: threading.Event | None = None,
    ):
        assert schedule.cron is not None
        self.schedule, self.cron, self.book, self.run = schedule, schedule.cron, book, run
        self.owner = owner or owner_id()
        self.clock, self.lease, self.tick = clock, lease, tick
        self.stopping = stopping or threading.Event()  # set: stop looking, end a run early
        self._since: float | None = None
        self._thread: threading.Thread | None = None

    def since(self, now: float) -> float:
        if self._since is None:
            self._since = self.book.since(NAME, now)
        return self._since

    def due(self, now: float) -> float | None:
        """The scheduled time to run now, or None."""
        slot = self.cron.last_at_or_before(now)
        if slot is None or slot < self.since(now):
            return None
        last = self.book.last(NAME)
        if last is None or last.slot < slot:
            return slot
        if last.slot == slot and not (last.state in FINISHED or last.live(now)):
            return slot  # claimed by a process that stopped renewing: take it over
        return None

    def step(self, now: float | None = None) -> Run | None:
        """Claim and run the due time, if any, here; the finished run."""
        now = self.clock() if now is None else now
        slot = self.due(now)
        if slot is None:
            return None
        claim = self.book.claim(NAME, slot, self.owner, now, self.lease)
        if claim is None:
            return None  # another process was first
        when = self.cron.describe(slot)
        late = now - slot
        log.info(
            "scheduled update for %s: starting%s%s",
            when,
            f", {_ago(late)} late (missed while neo was down)" if late > 120 else "",
            " (taking over a run whose process stopped)" if claim.takeovers else "",
        )
        renewed = [now]

        def keep_alive() -> None:
            if self.stopping.is_set():
                raise Interrupted("neo is stopping")
            t = self.clock()
            if t - renewed[0] >= self.lease / 4:
                if not self.book.renew(NAME, slot, self.owner, t, self.lease):
                    raise Interrupted("another process took the run over")
                renewed[0] = t

        try:
            outcome = self.run(slot, keep_alive)
        except Interrupted as exc:
            log.warning("scheduled update for %s: interrupted (%s); taken over later", when, exc)
            self.book.release(NAME, slot, self.owner)
            return None
        except Exception as exc:  # noqa: BLE001 - a bug in one run must not end the schedule
            log.exception("scheduled update for %s failed", when)
            outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        result = outcome.as_dict()
        if not self.book.finish(NAME, slot, self.owner, outcome.state, result, self.clock()):
            log.warning("scheduled update for %s: another process took it over", when)
            return None
        upcoming = self.cron.next_after(self.clock())
        log.log(
            logging.ERROR if outcome.state == "failed" else logging.INFO,
            "scheduled update for %s: %s — %s; next %s",
            when,
            outcome.state,
            Outcome.summary(result),
            self.cron.describe(upcoming) if upcoming else "never",
        )
        return self.book.last(NAME)

    def release_dead_claim(self) -> None:
        """A run claimed by a process of this host that is gone (this supervisor's killed
        predecessor) is free now, not when its lease runs out."""
        last = self.book.last(NAME)
        if last is not None and last.live(self.clock()) and gone(last.owner):
            log.warning("schedule: the run claimed by %s, which is gone, is free", last.owner)
            self.book.release(NAME, last.slot, last.owner)

    # -- on a thread ------------------------------------------------------------------------

    def start(self) -> None:
        self.release_dead_claim()
        upcoming = self.cron.next_after(self.clock())
        log.info(
            "schedule: update %r (%s) enqueues %s; next %s",
            self.cron.expression,
            self.cron.tz.key,
            ", ".join(t.name for t in self.schedule.ordered()),
            self.cron.describe(upcoming) if upcoming else "never",
        )
        self._thread = threading.Thread(target=self._loop, name="neo-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self.step()
                failures = 0
            except Exception:  # noqa: BLE001 - the book busy or unreachable: look again later
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.exception("schedule: looking for a due update failed (%d)", failures)
            self.stopping.wait(self.tick if not failures else min(60.0, self.tick * failures))

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)


def gone(owner: str) -> bool:
    """`owner` (host:pid) is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def view(schedule: Schedule, book: RunBook | None, now: float, active: bool) -> dict[str, Any]:
    """The schedule for `neo status --json`: when it next runs and what the last run did."""
    out: dict[str, Any] = {
        "enabled": schedule.enabled,
        "active": active and schedule.enabled,  # a supervisor runs it
        "update": schedule.cron.expression if schedule.cron else "",
        "timezone": schedule.cron.tz.key if schedule.cron else "",
        "task_types": [t.name for t in schedule.ordered()],
        "next": None,
        "next_local": "",
        "last": None,
    }
    if schedule.enabled:
        assert schedule.cron is not None
        upcoming = schedule.cron.next_after(now)
        out["next"] = upcoming
        out["next_local"] = schedule.cron.describe(upcoming) if upcoming else ""
    last = book.last(NAME) if book is not None else None
    if last is not None:
        state = last.state
        if state == "running" and (not last.live(now) or gone(last.owner)):
            state = "interrupted"  # its process stopped; the next look takes it over
        out["last"] = {
            "slot": last.slot,
            "slot_local": (schedule.cron.describe(last.slot) if schedule.cron else _utc(last.slot)),
            "state": state,
            "owner": last.owner,
            "started": last.started,
            "finished": last.finished,
            "reason": last.outcome.get("reason", ""),
            "task_types": last.outcome.get("task_types", {}),
            "summary": Outcome.summary(last.outcome) if state in FINISHED else "",
        }
    return out


def for_settings(settings, book: RunBook, clock: Callable[[], float] = time.time) -> Scheduler:
    """The scheduler a supervisor runs: the real update, doing what `neo enqueue` does."""
    from neo_cli.schedule.update import real_parts, run_update

    schedule = Schedule.from_settings(settings)
    stopping = threading.Event()

    def run(slot: float, keep_alive: Callable[[], None]) -> Outcome:
        parts = real_parts(settings, sleep=stopping.wait)
        return run_update(schedule, slot, keep_alive, *parts, sleep=stopping.wait)

    return Scheduler(schedule, book, run, clock=clock, stopping=stopping)
