"""Group commit: many threads' writes in one transaction, each thread waiting for its own.

Fifty download workers each handing one save to the slow queue used to take its storage lock
and commit (an fsync) one at a time, then take the ledger's for the `saving` mark: most of the
fast consumer's time went to waiting its turn. Here the threads that arrive while a commit runs
form the next batch, which its first thread commits when that commit is over; the others wait
for their batch to be done. Each thread still returns only once its own
item is committed, or raises what the commit raised, so a caller's guarantees are the ones it had
committing alone — only the transactions are fewer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Batch(Generic[T]):
    __slots__ = ("items", "done", "error")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, commit: Callable[[list[T]], object]):
        """`commit(items)` writes them all in one go, or raises."""
        self._commit = commit
        self._lock = threading.Lock()
        self._open: _Batch[T] = _Batch()  # the batch taking items
        self._before: threading.Event | None = None  # set when the last batch closed is over
        self.commits = 0  # how many, for tests and curiosity

    def submit(self, item: T) -> None:
        """Commit `item` (with whatever else is waiting); return once it is committed."""
        with self._lock:
            batch = self._open
            batch.items.append(item)
            leads = len(batch.items) == 1
            if leads:
                before, self._before = self._before, batch.done
        # The first thread of a batch commits it once the commit before is over; the others
        # wait for their own batch only. (A turn lock handed from one thread to the next, or
        # one condition waking every waiter, made a convoy of the fifty.)
        if leads:
            if before is not None:
                before.wait()
            with self._lock:
                self._open = _Batch()  # later items go in the next batch
            try:
                self._commit(batch.items)
            except BaseException as exc:
                batch.error = exc
            finally:
                self.commits += 1
                batch.done.set()
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error  # the same error in every thread of the batch
