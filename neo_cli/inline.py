"""`neo enqueue --inline`: download and save in this process, without consumers.

The eager mode for debugging one symbol: the same planner, limiter, download attempt and writer
as the queues use, run one unit after another. Its calls spend the same budget as every other
process on the token (the shared limiter), several inline runs may work at once (each plans
under the planning lock, so they never plan the same units, and the database writers take
turns), and the ledger records the units as owned by this run: recovery leaves them alone while
it lives, and hands them to the queues when it is gone (a run cut short is finished by the next
`neo enqueue` or `neo start`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from neo_cli.config import Settings
from neo_cli.db.database import Database
from neo_cli.db.saver import BatchSaver
from neo_cli.download import attempt, build_downloader
from neo_cli.errors import DatabaseUnavailable, InputError, NeoError
from neo_cli.ledger import Ledger
from neo_cli.limits import build_limiters
from neo_cli.metrics import Recorder
from neo_cli.paths import Paths
from neo_cli.planner import Plan, Request, plan_for
from neo_cli.roles import here_only
from neo_cli.runstate import Owner, lock_is_held, planning
from neo_cli.units import Unit, new_batch_id


@dataclass
class InlineResult:
    batch: str
    plan: Plan
    saved: int = 0
    rows: int = 0
    dead: int = 0


def run_inline(
    settings: Settings,
    request: Request,
    progress: Callable[[Unit, str], None] = lambda unit, what: None,
    sleep: Callable[[float], object] = time.sleep,
) -> InlineResult:
    here_only(settings, "--inline")
    paths = Paths(settings.data_dir).ensure()
    if lock_is_held(paths):
        raise InputError(
            f"neo is running for {paths.root} and its slow consumer owns the database; "
            "enqueue without --inline, or `neo stop` first"
        )
    limiters = build_limiters(settings)
    limiters.backend.check()  # raises LimiterUnavailable: nothing planned, nothing called
    owner = Owner(paths, "inline")
    ledger = Ledger(paths.ledger, durable=True)
    recorder = Recorder(None, "inline")
    database = Database(paths.database, memory_limit=settings.values["slow"]["memory_limit"])
    rt = build_downloader(settings, ledger, recorder, limiters)
    try:
        database.ensure_schema()
        saver = BatchSaver(database, ledger, recorder, batch_size=10**9, batch_timeout=10**9)
        batch = new_batch_id()
        with planning(paths):
            plan = plan_for(settings, request, ledger, rt.provider, batch)
            with ledger.adding(
                batch, request.task_type.name, plan.units, plan.universe, owner=owner.name
            ):
                pass
        result = InlineResult(batch, plan)
        work = list(plan.units)
        while work:
            unit = work.pop(0)
            while True:
                outcome = attempt(rt, unit)
                if outcome.retry_in is None:
                    break
                until, reason = rt.limiters[unit.api].paused()
                if until == float("inf"):
                    raise NeoError(f"{unit.api}: {reason}; nothing more was called")
                progress(unit, f"retrying in {outcome.retry_in:.1f}s")
                sleep(outcome.retry_in)
            if outcome.split:
                ledger.split(unit, outcome.split)
                work[:0] = outcome.split
                continue
            if outcome.reply is None:
                result.dead += 1
                progress(unit, f"dead-lettered: {outcome.dead}")
                continue
            n = len(outcome.reply.items)
            if n:
                saver.add(unit.api, tuple(outcome.reply.fields), outcome.reply.items, unit.id)
                ledger.mark_saving(unit, "inline", n)
            else:
                ledger.mark_empty(unit)
            result.rows += n
            result.saved += 1
            progress(unit, f"{n} rows")
        if not saver.close(deadline=30):
            raise DatabaseUnavailable(f"could not save to {paths.database}: {saver.last_error}")
        return result
    finally:
        rt.provider.close()
        ledger.close()
        limiters.close()
        owner.release()
