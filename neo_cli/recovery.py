"""Finding work a dead consumer lost, and enqueuing it again.

Run only while the queue's own consumer is down (at `neo start`, and by the supervisor before it
restarts a consumer that died): then every task is either in the queue storage or lost, and the
ledger says which units should still be somewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from neo_cli.ledger import Ledger
from neo_cli.pipeline import Pipeline

log = logging.getLogger("neo.recovery")


@dataclass
class Recovered:
    downloads: int = 0  # units whose download task was lost
    saves: int = 0  # units whose rows were lost before a flush committed

    def __str__(self) -> str:
        return f"{self.downloads} lost download(s) and {self.saves} lost save(s) re-enqueued"


def recover(pipeline: Pipeline, ledger: Ledger, fast: bool = True, slow: bool = True) -> Recovered:
    found = Recovered()
    if fast:
        # Ledger first, queue second: a unit the ledger shows was enqueued before it was
        # recorded, so reading in this order never mistakes a unit in transit for a lost one.
        live = ledger.live_units(("queued", "retrying"))
        queued = pipeline.fast.storage.queued_ids()
        lost = [r.unit for r in live if r.unit.id not in queued]
        if lost:
            pipeline.enqueue_units(lost)
            found.downloads = len(lost)
    if slow:
        live = ledger.live_units(("saving",))
        saving = pipeline.slow.storage.queued_ids()
        lost = [r.unit for r in live if r.save_id not in saving]
        if lost:
            # The rows went down with the slow consumer's buffer: download them again.
            ledger.requeued(u.id for u in lost)
            pipeline.enqueue_units(lost)
            found.saves = len(lost)
    if found.downloads or found.saves:
        log.warning("recovery: %s", found)
    return found
