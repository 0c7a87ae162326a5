"""The dead-letter list: units that failed for good, with their reason and attempts.

Listing, retrying (back to the fast queue with a fresh count of attempts) and purging all go
through the ledger; nothing here opens the DuckDB file.
"""

from __future__ import annotations

from collections.abc import Iterable

from neo_cli.config import Settings
from neo_cli.errors import InputError
from neo_cli.ledger import Ledger, UnitRecord
from neo_cli.ledger.remote import ask, forget_attempts, record_of
from neo_cli.paths import Paths
from neo_cli.roles import is_download_machine


def _ledger(settings: Settings, durable: bool = False) -> Ledger:
    paths = Paths(settings.data_dir)
    if not paths.ledger.exists():
        raise InputError(f"nothing was ever enqueued in {paths.root}")
    return Ledger(paths.ledger, durable=durable)


def select(
    ledger: Ledger, ids: Iterable[str], everything: bool, api: str | None
) -> list[UnitRecord]:
    """The dead units named by id (or id prefix), or all of them (of one interface)."""
    dead = ledger.dead(api)
    wanted = [i.strip() for i in ids if i.strip()]
    if everything == bool(wanted):
        raise InputError("name the dead letters to act on by id, or pass --all (not both)")
    if everything:
        return dead
    chosen = []
    for prefix in wanted:
        hits = [r for r in dead if r.unit.id.startswith(prefix)]
        if not hits:
            raise InputError(f"no dead letter {prefix!r}; `neo dlq list` shows them")
        if len(hits) > 1:
            raise InputError(f"{prefix!r} matches {len(hits)} dead letters; give more characters")
        chosen.append(hits[0])
    return chosen


def list_dead(settings: Settings, api: str | None = None) -> list[UnitRecord]:
    if is_download_machine(settings):  # the ledger is on the slow machine: ask it
        return [record_of(d) for d in ask(settings, "dlq_list", {"api": api})]
    ledger = _ledger(settings)
    try:
        return ledger.dead(api)
    finally:
        ledger.close()


def retry(settings: Settings, ids: Iterable[str], everything: bool, api: str | None) -> int:
    """Send dead units back to the fast queue with their attempts reset."""
    from neo_cli.pipeline import Pipeline

    if is_download_machine(settings):
        return ask(settings, "dlq_retry", {"ids": list(ids), "all": everything, "api": api})
    ledger = _ledger(settings, durable=True)
    try:
        chosen = select(ledger, ids, everything, api)
        if chosen:
            # The ledger commits only once the queue has them, as for a fresh enqueue.
            pipeline = Pipeline(settings)
            forget_attempts(pipeline, [r.unit.id for r in chosen])  # counted afresh everywhere
            with ledger.reviving(r.unit.id for r in chosen):
                pipeline.enqueue_units([r.unit for r in chosen])
        return len(chosen)
    finally:
        ledger.close()


def purge(settings: Settings, ids: Iterable[str], everything: bool, api: str | None) -> int:
    """Forget dead units for good."""
    if is_download_machine(settings):
        return ask(settings, "dlq_purge", {"ids": list(ids), "all": everything, "api": api})
    ledger = _ledger(settings, durable=True)
    try:
        chosen = select(ledger, ids, everything, api)
        return ledger.purge(r.unit.id for r in chosen)
    finally:
        ledger.close()
