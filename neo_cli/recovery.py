"""Finding work that was lost, and enqueuing it again.

Two kinds of loss:
- a consumer died: `recover` runs only while that queue's own consumer is down (at `neo start`,
  and by the supervisor before it restarts a consumer that died): then every task is either in
  the queue storage or lost, and the ledger says which units should still be somewhere;
- a process that worked units itself (an inline run) died: its units are in no queue, and its
  owner lock is free. `adopt_orphans` hands them to the queues; it is safe while consumers run,
  since the queues never held those units.

Units of a live owner are never touched: they are being worked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from neo_cli.ledger import Ledger, UnitRecord
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


def recover(pipeline: Pipeline, ledger: Ledger, fast: bool = True, slow: bool = True) -> Recovered:
    found = adopt_orphans(pipeline, ledger)

    def unowned(records: list[UnitRecord]) -> list[UnitRecord]:
        # Read before the owner's lock is looked at: an owner takes its lock before it
        # records a unit, so a unit read here whose owner's lock is free was not live.
        return [r for r in records if r.owner is None or not owner_alive(pipeline.paths, r.owner)]

    if fast:
        # Ledger first, queue second: a unit the ledger shows was enqueued before it was
        # recorded, so reading in this order never mistakes a unit in transit for a lost one.
        live = unowned(ledger.live_units(("queued", "retrying")))
        queued = pipeline.fast.storage.queued_ids()
        _requeue(pipeline, ledger, [r for r in live if r.unit.id not in queued], found)
    if slow:
        live = unowned(ledger.live_units(("saving",)))
        saving = pipeline.slow.storage.queued_ids()
        _requeue(pipeline, ledger, [r for r in live if r.save_id not in saving], found)
    if found.downloads or found.saves:
        log.warning("recovery: %s", found)
    return found
