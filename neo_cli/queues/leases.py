"""Keeping a consumer's leases alive, and putting dead consumers' tasks back.

Each consumer on a storage with leases runs one `LeaseKeeper`: every `lease / 3` seconds it
renews every lease it holds, and reaps — puts back on their queues — the tasks whose leases ran
out (their consumer was SIGKILLed, its machine lost power or network). So a lost consumer's
work is back within one lease and one beat, on whichever machines still run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from neo_cli.periodic import Periodic
from neo_cli.queues.base import NeoStorage

log = logging.getLogger("neo.queue")


def owner_id(queue: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{queue}"


class LeaseKeeper:
    def __init__(
        self,
        storage: NeoStorage,
        owner: str,
        every: float,
        record: Callable[[], dict] | None = None,
    ):
        """`record()` (host, role, pid, version, its figures) registers the consumer in the
        cluster at every beat."""
        self.storage, self.owner, self.every = storage, owner, every
        self.record = record
        self._rounds: Periodic | None = None

    def beat(self) -> tuple[int, int]:
        """Renew, then reap: (leases renewed, tasks put back)."""
        if self.record is not None:
            self.storage.register(self.owner, self.record())
        renewed = self.storage.renew(self.owner)
        back = self.storage.reap()
        if back:
            log.warning(
                "queue %s: %d task(s) whose consumer stopped renewing its lease are back",
                self.storage.name,
                back,
            )
        return renewed, back

    def start(self) -> LeaseKeeper:
        try:
            self.beat()  # registered before the first task is taken
        except Exception as exc:  # noqa: BLE001 - Redis away: the rounds keep trying
            log.warning("queue %s: first lease beat failed (%s)", self.storage.name, exc)
        self._rounds = Periodic(f"lease-keeper {self.storage.name}", self.every, self.beat, log)
        self._rounds.start()
        return self

    def stop(self) -> None:
        if self._rounds is not None:
            self._rounds.stop()
        if self.record is not None:
            try:
                self.storage.deregister(self.owner)
            except Exception:  # noqa: BLE001 - it will show as lost, then be forgotten
                log.warning("queue %s: could not deregister %s", self.storage.name, self.owner)
