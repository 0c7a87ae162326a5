"""What neo needs of a queue, beyond Huey's storage API: one interface, one file per backend
(`sqlite.py`, `redis.py`), one contract test run against each (`tests/test_queue_storage.py`).

- **Kinds.** Every task carries a kind (the interface of a download, the table of a save) and an
  id (the unit's), known without unpickling it: counts per kind are cheap, ids are searchable.
- **A gated dequeue.** `gate()` names the kinds a worker may take now (the interfaces whose
  limiter has a slot coming up); `taken(kind)` is told what each dequeue took.
- **Many at once.** `enqueue_many` puts a whole plan's chunk on the queue in one step.
- **What is where.** `counts_by_kind` (pending, scheduled), `queued_ids` (waiting), and
  `leased_ids` (taken by a worker that is still alive — only storages with leases know).
- **Leases** (storages where a worker's death must not lose its task without a restart):
  a dequeue records (task, owner, deadline); `renew(owner)` extends the owner's, `ack(id)`
  ends one when its task is over, `reap()` puts every expired one back on its queue.
  Without leases these do nothing and recovery at restart finds lost work instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

# (kind, task id, priority) of a serialized task.
Describe = Callable[[bytes], tuple[str, str, int]]
# The kinds a worker may take now, or None for "any".
Gate = Callable[[], Iterable[str] | None]
# (serialized task, priority, kind, task id), as `enqueue_many` takes them.
Item = tuple[bytes, "float | None", str, str]


class NeoStorage:
    """The part every backend shares; mixed in before Huey's storage class."""

    has_leases = False

    def _setup(self, describe: Describe, kinds: Iterable[str]) -> None:
        self._describe = describe
        self._hint = threading.local()
        self.kinds = tuple(kinds)
        self.gate: Gate = lambda: None
        self.taken: Callable[[str], None] = lambda kind: None

    def hint(self, data: bytes, kind: str, tid: str, priority: int = 0) -> None:
        """What the task just serialized in this thread is: spares unpickling it again (a save
        task carries thousands of rows) to learn its kind and id."""
        self._hint.value = (data, kind, tid, priority)

    def describe(self, data: bytes) -> tuple[str, str, int]:
        hint = getattr(self._hint, "value", None)
        if hint is not None and hint[0] is data:
            return hint[1], hint[2], hint[3]
        return self._describe(data)

    def allowed_kinds(self) -> tuple[str, ...]:
        allowed = self.gate()
        return self.kinds if allowed is None else tuple(k for k in self.kinds if k in allowed)

    # -- the contract ------------------------------------------------------------------------

    def enqueue_many(self, items: Iterable[Item]) -> int:
        raise NotImplementedError

    def counts_by_kind(self) -> dict[str, tuple[int, int]]:
        """{kind: (pending, scheduled)}."""
        raise NotImplementedError

    def queued_ids(self) -> set[str]:
        """Ids of every task waiting in the queue or the schedule."""
        raise NotImplementedError

    def backlog(self) -> int:
        """Tasks waiting in the queue and the schedule together."""
        return self.queue_size() + self.schedule_size()

    def leased_ids(self) -> set[str]:
        """Ids of tasks a live worker holds (storages with leases); empty otherwise."""
        return set()

    def check(self) -> None:
        """Raise when the storage cannot be used (a shared one unreachable)."""

    def known_ids(self) -> set[str]:
        """Ids of every task the queue still has: waiting, scheduled, or held under a lease
        (a worker on any machine). Anything else the ledger expects was lost."""
        return self.queued_ids() | self.leased_ids()

    def renew(self, owner: str) -> int:
        """Extend every lease `owner` holds; how many."""
        return 0

    def ack(self, tid: str) -> None:
        """The task `tid` a worker took is over (done, failed, retried or rescheduled)."""

    def reap(self) -> int:
        """Put every expired lease's task back on its queue; how many."""
        return 0

    def register(self, owner: str, record: dict) -> None:
        """Record a live consumer (storages every machine shares)."""

    def deregister(self, owner: str) -> None:
        """Forget a consumer that stopped."""

    def consumers(self) -> list[dict]:
        """Every consumer the shared storage knows (none on a local one)."""
        return []
