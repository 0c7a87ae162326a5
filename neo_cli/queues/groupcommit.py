"""Group commit: many threads' writes in one transaction, each thread waiting for its own.

Fifty download workers each handing one save to the slow queue used to take its storage lock
and commit (an fsync) one at a time, then take the ledger's for the `saving` mark: most of the
fast consumer's time went to waiting its turn. Here a thread adds its item and takes the turn;
whoever gets it first commits every item waiting (the items of the threads that queued behind
the last commit), and the others find theirs done. Each thread still returns only once its own
item is committed, or raises what the commit raised, so a caller's guarantees are the ones it had
committing alone — only the transactions are fewer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("item", "done", "error")

    def __init__(self, item: T):
        self.item = item
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, commit: Callable[[list[T]], object]):
        """`commit(items)` writes them all in one go, or raises."""
        self._commit = commit
        self._waiting: list[_Entry[T]] = []
        self._lock = threading.Lock()  # guards _waiting
        self._turn = threading.Lock()  # one commit at a time
        self.commits = 0  # how many, for tests and curiosity

    def submit(self, item: T) -> None:
        """Commit `item` (with whatever else is waiting); return once it is committed."""
        entry = _Entry(item)
        with self._lock:
            self._waiting.append(entry)
        with self._turn:
            if not entry.done:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                try:
                    self._commit([e.item for e in batch])
                except BaseException as exc:
                    for e in batch:
                        e.error = exc
                finally:
                    self.commits += 1
                    for e in batch:
                        e.done = True
        if entry.error is not None:
            # The same error in every thread of the batch: each one's item was not committed.
            raise entry.error
