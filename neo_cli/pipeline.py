"""The two Huey queues and the tasks on them; every process that touches a queue builds this.

    fast queue  `download(api, unit)`  paced call(s) -> hands the rows to the slow queue
    slow queue  `save(api, fields, items, unit_id)`  -> the batch saver's buffer

A download calls the save task directly (it enqueues on the slow instance; `.then()` cannot
cross two Huey instances) and never waits for it, so a slow save never holds a download worker.
What a task needs at run time (provider, limiters, saver …) is attached by the consumer that
runs it (`attach_fast`, `attach_slow`); a process that only enqueues attaches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from huey.exceptions import RetryTask

from neo_cli.config import Settings
from neo_cli.download import Downloader, attempt
from neo_cli.ledger import Ledger
from neo_cli.ledger.remote import LEDGER_KIND as LEDGER
from neo_cli.ledger.remote import apply
from neo_cli.metrics import Recorder
from neo_cli.paths import Paths
from neo_cli.queues.factory import make_huey
from neo_cli.queues.groupcommit import GroupCommit
from neo_cli.tasktypes import INTERFACES
from neo_cli.units import Unit

log = logging.getLogger("neo.tasks")
LATER = 30.0  # seconds before a download that hit an unexpected error runs again

if TYPE_CHECKING:
    from neo_cli.db.saver import BatchSaver


@dataclass
class SlowRuntime:
    saver: BatchSaver
    recorder: Recorder
    ledger: Ledger | None = None  # applies the ledger tasks of download machines


class Pipeline:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.paths = Paths(settings.data_dir).ensure()
        q = settings.values["queue"]
        self.fast, self.slow = (
            make_huey(
                name,
                storage=q["storage"],
                path=self.paths.queue_file(name),
                kinds=[*INTERFACES, LEDGER] if name == "slow" else list(INTERFACES),
                fsync=q["fsync"],
                redis_url=q["redis_url"],
                cluster=q["cluster"],
                lease=q["lease_seconds"],
            )
            for name in ("fast", "slow")
        )
        for huey in (self.fast, self.slow):
            huey.storage.data_dir = self.paths.root  # named in the cluster's registrations
        self.download = self.fast.task(name="download")(self._download)
        self.save = self.slow.task(name="save")(self._save)
        self.ledger_task = self.slow.task(name="ledger")(self._ledger_event)
        # Fifty workers handing saves over one commit at a time spent most of their time
        # waiting for the slow queue's lock; together, they take one commit a batch.
        self._handover: GroupCommit = GroupCommit(self._hand_over)
        self.fast_rt: Downloader | None = None
        self.slow_rt: SlowRuntime | None = None

    # -- enqueueing -----------------------------------------------------------------------------

    def download_task(self, unit: Unit):
        """The download task for `unit`, with the unit's id as the task id."""
        return self.download.task_class(
            args=(unit.api, unit.to_dict()), id=unit.id, priority=unit.priority or None
        )

    def enqueue_units(self, units: Iterable[Unit]) -> int:
        """Put download tasks on the fast queue in one storage transaction."""
        items = [
            (self.fast.serialize_task(self.download_task(u)), u.priority, u.api, u.id)
            for u in units
        ]
        return self.fast.storage.enqueue_many(items)

    def fast_backlog(self) -> int:
        return self.fast.storage.backlog()

    def slow_backlog(self) -> int:
        return self.slow.storage.backlog()

    # -- attaching a consumer's resources ------------------------------------------------------

    def attach_fast(self, runtime: Downloader, throttle: Callable[[], str]) -> None:
        """Run downloads here. `throttle()` returns why downloads must pause ('' = they may)."""
        self.fast_rt = runtime

        def gate() -> list[str]:
            reason = throttle()
            runtime.recorder.gauge("throttled", reason)
            if reason:
                return []
            return [api for api in INTERFACES if runtime.limiters[api].ready()]

        self.fast.storage.gate = gate
        self.fast.storage.taken = lambda api: runtime.limiters[api].claim()

    def attach_slow(self, runtime: SlowRuntime, max_buffered_rows: int) -> None:
        """Run saves here; stop taking them while the database is failing or the buffer full."""
        self.slow_rt = runtime

        def gate() -> list[str] | None:
            saver = runtime.saver
            if not saver.healthy:  # ledger tasks never wait for the database
                runtime.recorder.gauge("throttled", f"database unavailable: {saver.last_error}")
                return [LEDGER]
            if saver.buffered_rows >= max_buffered_rows:
                runtime.recorder.gauge("throttled", f"{saver.buffered_rows} rows waiting to flush")
                return [LEDGER]
            runtime.recorder.gauge("throttled", "")
            return None

        self.slow.storage.gate = gate

    # -- the tasks ------------------------------------------------------------------------------

    def _download(self, api: str, unit_dict: dict) -> None:
        rt = self.fast_rt
        if rt is None:
            raise RuntimeError("download task ran in a process without a fast runtime")
        unit = Unit.from_dict(unit_dict)
        try:
            self._download_unit(rt, api, unit)
        except RetryTask:
            raise
        except Exception:  # noqa: BLE001
            # Huey already deleted this task: letting the error out would lose it until the
            # next start. Try again in a while instead (the ledger busy, a queue write failed).
            log.exception("%s: could not finish; trying again in %.0fs", unit.describe(), LATER)
            rt.recorder.incr(api, "retried")
            raise RetryTask(delay=LATER) from None

    def _download_unit(self, rt: Downloader, api: str, unit: Unit) -> None:
        outcome = attempt(rt, unit)
        if outcome.retry_in is not None:
            raise RetryTask(delay=outcome.retry_in)
        if outcome.split:
            rt.ledger.split_units(unit, outcome.split, self.enqueue_units)
            return
        if outcome.reply is None:
            return  # dead-lettered, and recorded as such
        if outcome.reply.items:
            reply = outcome.reply
            # A download machine's save carries its unit: the slow side marks it saving.
            carried = unit.to_dict() if rt.ledger.remote else None
            # The save's id is the unit's: a unit whose rows wait on the slow queue is
            # visibly on its way (the lost-download sweep, recovery), on any machine.
            save = self.save.task_class(
                args=(api, tuple(reply.fields), reply.items, unit.id, carried), id=unit.id
            )
            data = self.slow.serialize_task(save)
            self._handover.submit((data, api, save.id, unit, len(reply.items)))
        else:
            rt.ledger.mark_empty(unit)

    def _hand_over(self, saves: list[tuple[bytes, str, str, Unit, int]]) -> None:
        """The saves of downloads finished together: enqueued in one transaction, then their
        units marked saving in one — enqueued before marked, as one at a time (neo_cli.ledger).
        Every worker of the batch waits for this, so a download's task is over only once its
        save is on the slow queue."""
        self.slow.storage.enqueue_many((data, None, api, sid) for data, api, sid, _, _ in saves)
        self.fast_rt.ledger.mark_saving_many((u, sid, n) for _, _, sid, u, n in saves)

    def _save(
        self,
        api: str,
        fields: tuple[str, ...],
        items: list[list],
        unit_id: str,
        unit: dict | None = None,
    ) -> None:
        rt = self.slow_rt
        if rt is None:
            raise RuntimeError("save task ran in a process without a slow runtime")
        if unit is not None and rt.ledger is not None:  # from a download machine
            rt.ledger.mark_saving(Unit.from_dict(unit), unit_id, len(items))  # save id = unit id
        rt.saver.add(api, fields, items, unit_id)

    def _ledger_event(self, kind: str, op: str, args: list) -> None:
        rt = self.slow_rt
        if rt is None or rt.ledger is None:
            raise RuntimeError("ledger task ran in a process without the ledger")
        apply(rt.ledger, self, op, list(args))
