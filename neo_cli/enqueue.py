"""`neo enqueue`: plan units, record them in the ledger and put them on the fast queue.

Works whether the consumers run or not: the queue and the ledger are files (or Redis), and the
plan reads the catalog, never the DuckDB file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from neo_cli.config import Settings
from neo_cli.dates import fmt
from neo_cli.errors import QueueFull
from neo_cli.ledger import Ledger
from neo_cli.ledger.remote import ask, publish_universe
from neo_cli.limits import build_limiters
from neo_cli.paths import Paths
from neo_cli.pipeline import Pipeline
from neo_cli.planner import Plan, Request, plan_for
from neo_cli.providers import build_provider
from neo_cli.recovery import adopt_orphans
from neo_cli.roles import here_only, is_download_machine
from neo_cli.runstate import planning
from neo_cli.units import new_batch_id

CHUNK = 2000  # units per ledger+queue transaction


@dataclass
class Enqueued:
    batch: str
    plan: Plan
    ids: list[str]


def paced_provider(settings: Settings):
    """The provider, its calendar calls paced by the shared limiters; raises
    LimiterUnavailable before anything is planned when the limiter's store is unreachable."""
    limiters = build_limiters(settings)
    try:
        limiters.backend.check()
    except BaseException:
        limiters.close()
        raise
    return build_provider(settings, pace=limiters.pace), limiters


def dry_run(settings: Settings, request: Request) -> Plan:
    """The plan `enqueue` would make, with every strategy priced; nothing is recorded."""
    here_only(settings, "--dry-run")
    paths = Paths(settings.data_dir).ensure()
    provider, limiters = paced_provider(settings)
    ledger = Ledger(paths.ledger)
    try:
        return plan_for(settings, request, ledger, provider, "dry-run")
    finally:
        provider.close()
        ledger.close()
        limiters.close()


def enqueue(
    settings: Settings,
    request: Request,
    *,
    wait: bool = False,
    on_wait: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> Enqueued:
    """Plan and enqueue; raise QueueFull past `[queue] max_pending` unless `wait`. On a
    download machine the machine with the ledger plans it, asked through the slow queue."""
    if is_download_machine(settings):
        return _ask_to_enqueue(settings, request, wait)
    paths = Paths(settings.data_dir).ensure()
    provider, limiters = paced_provider(settings)  # first: nothing is created without it
    pipeline = Pipeline(settings)
    try:
        pipeline.fast.storage.check()  # queues on Redis: reachable before anything is planned
    except BaseException:
        provider.close()
        limiters.close()
        raise
    ledger = Ledger(paths.ledger, durable=True)
    try:
        with planning(paths):
            return _enqueue(settings, request, pipeline, ledger, provider, wait, on_wait, sleep)
    finally:
        provider.close()
        ledger.close()
        limiters.close()


def _ask_to_enqueue(settings: Settings, request: Request, wait: bool) -> Enqueued:
    payload = {
        "task_type": request.task_type.name,
        "symbols": request.symbols,
        "start": fmt(request.start) if request.start else None,
        "end": fmt(request.end) if request.end else None,
        "full": request.full,
        "priority": request.priority,
        "listed_only": request.listed_only,
        "wait": wait,
    }
    done = ask(settings, "enqueue", payload)
    return Enqueued(done["batch"], Plan(queued=done["queued"], current=done["current"]),
                    done["ids"])  # fmt: skip


def _enqueue(settings, request, pipeline, ledger, provider, wait, on_wait, sleep) -> Enqueued:
    """Plan and enqueue, holding the planning lock."""
    # Units an inline run that died was working are in no queue: hand them to the queues
    # first, so the plan does not count them as on their way when nothing would come.
    adopt_orphans(pipeline, ledger)
    ledger.prune(settings.values["ledger"]["keep_days"])
    batch = new_batch_id()
    plan = plan_for(settings, request, ledger, provider, batch)
    limit = settings.values["queue"]["max_pending"]
    ids: list[str] = []
    units = plan.units
    pending = pipeline.fast_backlog()
    if units and not wait and pending + len(units) > limit:
        raise QueueFull(pending, len(units), limit)
    # Download machines read a whole-market batch's symbols from Redis: there before its units.
    publish_universe(pipeline, batch, plan.universe, settings.values["ledger"]["keep_days"])
    for i in range(0, len(units), CHUNK):
        chunk = units[i : i + CHUNK]
        while True:
            pending = pipeline.fast_backlog()
            if pending + len(chunk) <= limit:
                break
            if on_wait:
                on_wait(pending, limit)
            sleep(2.0)
        with ledger.adding(batch, request.task_type.name, chunk, plan.universe if i == 0 else ()):
            pipeline.enqueue_units(chunk)
        ids.extend(u.id for u in chunk)
    return Enqueued(batch, plan, ids)
