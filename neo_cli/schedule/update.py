"""The scheduled daily update: one incremental `neo enqueue` per configured task type.

In order, with one rule on top: a type that plans from the symbol list (every type but
`stock_basic`) waits until the `stock_basic` rows this run asked for are saved, so a stock
listed today gets its history in the same update. Nothing runs when the scheduled day is not a
trading day. A type that fails (an unreachable limiter, an empty symbol list) is recorded with
its reason and the others still run: each plan is incremental, so whatever a failed run left
out, the next one fills.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neo_cli.config import Settings
from neo_cli.errors import NeoError
from neo_cli.schedule.cron import Cron, zone
from neo_cli.tasktypes import TaskType, task_type

log = logging.getLogger("neo.schedule")

NAME = "update"  # the schedule's name in the run book


class Interrupted(Exception):
    """The run must end now, unfinished: neo is stopping, or another process took it over."""


@dataclass(frozen=True)
class Schedule:
    """`[schedule]`, parsed: when the update runs and what it enqueues."""

    cron: Cron | None  # None: no schedule
    task_types: tuple[TaskType, ...] = ()
    wait_seconds: float = 1800.0  # most a type waits for the symbol list it needs

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Schedule:
        """From the `[schedule]` section (already validated)."""
        expression = values.get("update", "")
        return cls(
            Cron.parse(expression, zone(values.get("timezone", "Asia/Shanghai")))
            if expression
            else None,
            tuple(task_type(name) for name in values.get("task_types", ())),
            float(values.get("wait_minutes", 30.0)) * 60,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Schedule:
        return cls.from_values(dict(settings.values["schedule"]))

    @property
    def enabled(self) -> bool:
        return self.cron is not None and bool(self.task_types)

    def ordered(self) -> list[TaskType]:
        """The task types in their configured order, those that fill the symbol list first."""
        return sorted(self.task_types, key=lambda t: t.needs_symbols)

    def day_of(self, slot: float) -> str:
        """The scheduled time's date where it is scheduled ('YYYYMMDD'): the trading day."""
        assert self.cron is not None
        return self.cron.local(slot).strftime("%Y%m%d")


@dataclass
class Outcome:
    """What one scheduled run did, for the run book, `neo status` and the log."""

    state: str = "done"  # done | skipped | failed
    reason: str = ""
    task_types: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "task_types": self.task_types}

    @staticmethod
    def summary(outcome: dict[str, Any]) -> str:
        """One line: 'enqueued 1,234 task(s) (stock_basic 3, daily_qfq 1,231); …'."""
        if outcome.get("state") == "skipped":
            return f"skipped: {outcome.get('reason', '')}"
        types = outcome.get("task_types", {})
        done = {k: v for k, v in types.items() if "error" not in v}
        failed = {k: v["error"] for k, v in types.items() if "error" in v}
        parts = []
        if done:
            total = sum(v["enqueued"] for v in done.values())
            each = ", ".join(f"{k} {v['enqueued']:,}" for k, v in done.items())
            queued = sum(v["queued"] for v in done.values())
            current = sum(v["current"] for v in done.values())
            parts.append(
                f"enqueued {total:,} task(s) ({each}); skipped {queued:,} already queued, "
                f"{current:,} up to date"
            )
        parts += [f"{k} failed: {why}" for k, why in failed.items()]
        parts += [outcome["reason"]] if outcome.get("reason") else []
        return "; ".join(parts) or "nothing to do"


# What a run needs from the rest of neo; the defaults are the real ones, tests pass their own.
Calendar = Callable[[str], "bool | None"]  # is this day a trading day? None: unknown
EnqueueType = Callable[[TaskType, Callable[[int, int], None]], Any]  # -> enqueue.Enqueued
LiveUnits = Callable[[str], int]  # units of an interface still on their way


def real_parts(settings: Settings, sleep: Callable[[float], object]):
    """(calendar, enqueue_type, live_units) doing what `neo enqueue` does."""
    from neo_cli.enqueue import enqueue, paced_provider
    from neo_cli.ledger import Ledger
    from neo_cli.paths import Paths
    from neo_cli.planner import Request

    def calendar(day: str) -> bool | None:
        provider, limiters = paced_provider(settings)
        try:
            days = provider.trading_days(day, day)
        finally:
            provider.close()
            limiters.close()
        return None if days is None else day in days

    def enqueue_type(kind: TaskType, on_wait: Callable[[int, int], None]):
        return enqueue(settings, Request(task_type=kind), wait=True, on_wait=on_wait, sleep=sleep)

    def live_units(api: str) -> int:
        path = Paths(settings.data_dir).ledger
        if not path.exists():
            return 0
        ledger = Ledger(path)
        try:
            return ledger.live_count(api)
        finally:
            ledger.close()

    return calendar, enqueue_type, live_units


def run_update(
    schedule: Schedule,
    slot: float,
    keep_alive: Callable[[], None],
    calendar: Calendar,
    enqueue_type: EnqueueType,
    live_units: LiveUnits,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run the update scheduled at `slot`. `keep_alive()` is called between steps and while
    waiting; it raises Interrupted when the run must end."""
    day = schedule.day_of(slot)
    keep_alive()
    trading = calendar(day)
    if trading is False:
        return Outcome("skipped", f"{day} is not a trading day")
    if trading is None:
        log.warning("scheduled update: the trading calendar is unknown; running it anyway")
    outcome = Outcome()
    fillers: list[str] = []  # interfaces this run asked for the symbol list from

    def on_wait(pending: int, limit: int) -> None:
        keep_alive()
        log.info("scheduled update: queue full (%d of %d pending); waiting", pending, limit)

    for kind in schedule.ordered():
        keep_alive()
        if kind.needs_symbols and fillers:
            late = _wait_saved(fillers, schedule.wait_seconds, keep_alive, live_units, sleep, clock)
            if late:
                note = (
                    f"{', '.join(late)} not saved after {schedule.wait_seconds / 60:g} min; "
                    "the rest planned with the symbol list saved before"
                )
                log.warning("scheduled update: %s", note)
                outcome.reason = note
            fillers = []
        try:
            done = enqueue_type(kind, on_wait)
        except NeoError as exc:
            outcome.state = "failed"
            outcome.task_types[kind.name] = {"error": str(exc)}
            log.error("scheduled update: %s failed: %s", kind.name, exc)
            continue
        plan = done.plan
        outcome.task_types[kind.name] = {
            "batch": done.batch,
            "enqueued": len(done.ids),
            "queued": plan.queued,
            "current": plan.current,
        }
        log.info(
            "scheduled update: %s: enqueued %d task(s) as batch %s; skipped %d already queued, "
            "%d up to date",
            kind.name,
            len(done.ids),
            done.batch,
            plan.queued,
            plan.current,
        )
        if not kind.needs_symbols:  # its units may be this run's or an earlier one's
            fillers += kind.datasets
    return outcome


def _wait_saved(
    apis: list[str],
    limit: float,
    keep_alive: Callable[[], None],
    live_units: LiveUnits,
    sleep: Callable[[float], object],
    clock: Callable[[], float],
) -> list[str]:
    """Wait until none of `apis` has a unit on its way; the ones still busy after `limit` s."""
    deadline = clock() + limit
    while True:
        busy = [api for api in apis if live_units(api)]
        if not busy or clock() >= deadline:
            return busy
        keep_alive()
        sleep(1.0)
