"""Finding work that was lost, and enqueuing it again.

Two kinds of loss:
- a consumer died: `recover` runs only while that queue's own consumer is down (at `neo start`,
  and by the supervisor before it restarts a consumer that died): then every task is either in
  the queue storage or lost, and the ledger says which units should still be somewhere;
- a process that worked units itself (an inline run) died: its units are in no queue, and its
  owner lock is free. `adopt_orphans` hands them to the queues; it is safe while consumers run,
  since the queues never held those units.

Units of a live owner are never touched: they are being worked.

And while the fast consumer runs, `LostDownloads` sweeps for download tasks the queue lost (a
storage error after Huey took a task, say): a unit the ledger says is queued, in no queue and
in no worker in two sweeps in a row, is enqueued again — within a minute, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from neo_cli.ledger import Ledger, UnitRecord
from neo_cli.periodic import Periodic
from neo_cli.pipeline import Pipeline
from neo_cli.runstate import owner_alive

log = logging.getLogger("neo.recovery")


@dataclass
class Recovered:
    downloads: int = 0  # units whose download task was lost
    saves: int = 0  # units whose rows were lost before a flush committed

    def __str__(self) -> str:
        return f"{self.downloads} lost download(s) and {self.saves} lost save(s) re-enqueued"


def _requeue(pipeline: Pipeline, ledger: Ledger, records: list[UnitRecord], found: Recovered):
    downloads = [r.unit for r in records if r.state != "saving"]
    saves = [r.unit for r in records if r.state == "saving"]
    if saves:
        # The rows went down with a buffer that was never flushed: download them again.
        ledger.requeued(u.id for u in saves)
    if downloads or saves:
        pipeline.enqueue_units([*downloads, *saves])
    found.downloads += len(downloads)
    found.saves += len(saves)


def adopt_orphans(pipeline: Pipeline, ledger: Ledger) -> Recovered:
    """Enqueue the live units of owners that died, and forget those owners."""
    found = Recovered()
    dead = {o for o in ledger.owners() if not owner_alive(pipeline.paths, o)}
    if not dead:
        return found
    # Read the units before disowning: a crash in between leaves them owned by the dead, and
    # the next call adopts them again (they are in no queue until then).
    orphans = [r for r in ledger.live_units() if r.owner in dead]
    _requeue(pipeline, ledger, orphans, found)
    for owner in dead:
        ledger.disown(owner)
    if orphans:
        log.warning("recovery: %s (from %d stopped inline run(s))", found, len(dead))
    return found


def _unowned(pipeline: Pipeline, records: list[UnitRecord]) -> list[UnitRecord]:
    # Read before the owner's lock is looked at: an owner takes its lock before it records a
    # unit, so a unit read here whose owner's lock is free was not live.
    return [r for r in records if r.owner is None or not owner_alive(pipeline.paths, r.owner)]


def recover(pipeline: Pipeline, ledger: Ledger, fast: bool = True, slow: bool = True) -> Recovered:
    found = adopt_orphans(pipeline, ledger)

    if fast:
        # Ledger first, queue second: a unit the ledger shows was enqueued before it was
        # recorded, so reading in this order never mistakes a unit in transit for a lost one.
        live = _unowned(pipeline, ledger.live_units(("queued", "retrying")))
        queued = pipeline.fast.storage.known_ids()
        _requeue(pipeline, ledger, [r for r in live if r.unit.id not in queued], found)
    if slow:
        live = _unowned(pipeline, ledger.live_units(("saving",)))
        saving = pipeline.slow.storage.known_ids()
        _requeue(pipeline, ledger, [r for r in live if r.save_id not in saving], found)
    if found.downloads or found.saves:
        log.warning("recovery: %s", found)
    return found


class LostDownloads:
    """In the fast consumer: download tasks that the queue lost while it runs, found and
    enqueued again. `in_flight()` names the task ids this consumer's workers hold.

    A task is briefly in no place at all (between Huey's dequeue and its worker, between a
    retry and its schedule entry), so one sighting is only a suspicion: a unit missing from
    the queue and the workers in two sweeps `interval` apart is lost."""

    def __init__(
        self,
        pipeline: Pipeline,
        ledger: Ledger,
        in_flight: Callable[[], set[str]],
        interval: float = 20.0,  # [fast] lost_sweep_seconds: back within a minute
    ):
        self.pipeline, self.ledger, self.in_flight = pipeline, ledger, in_flight
        self.interval = interval
        self._suspects: set[str] = set()
        self._rounds = Periodic("looking for lost downloads", interval, self.sweep, log)

    def sweep(self) -> int:
        """One look; returns the units enqueued again. Reads ids only (a backlog can hold
        100,000 units); whole records only for the few it finds missing."""
        before = self.in_flight()
        live = self.ledger.live_ids(("queued", "retrying"))
        # A unit is on its way while its download or its save (same id) is anywhere.
        queued = self.pipeline.fast.storage.known_ids() | self.pipeline.slow.storage.known_ids()
        missing = live - queued - before - self.in_flight()
        suspects = self._suspects & missing
        records = (self.ledger.get(uid) for uid in suspects)
        lost = [r for r in records if r is not None and r.state in ("queued", "retrying")]
        self._suspects = missing - {r.unit.id for r in lost}
        if lost:
            found = Recovered()
            _requeue(self.pipeline, self.ledger, lost, found)
            log.warning(
                "recovery: %d download(s) the queue lost re-enqueued, while running", len(lost)
            )
        return len(lost)

    def start(self) -> LostDownloads:
        self._rounds.start()
        return self

    def stop(self) -> None:
        self._rounds.stop()
