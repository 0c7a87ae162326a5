"""The queue on SQLite (one data directory): Huey's SqliteStorage with neo's contract
(`neo_cli.queues.base`).

Each task row carries its kind and task id in columns of their own, so the queue is counted per
kind and searched by id without unpickling a task. The gated dequeue means a worker never takes
a task it would have to sit on, so fifty workers cannot all end up waiting on one slow interface
while another interface's budget goes unspent (head-of-line blocking). No leases: a consumer's
lost work is found from the ledger when it is restarted (`neo_cli.recovery`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from huey.storage import SqliteStorage

from neo_cli.queues.base import Describe, Item, NeoStorage
from neo_cli.queues.counts import counts_by_kind


class KindSqliteStorage(NeoStorage, SqliteStorage):
    table_task = (
        "create table if not exists task (id integer not null primary key, "
        "queue text not null, data blob not null, priority real not null default 0.0, "
        "kind text not null default '', tid text not null default '')"
    )
    index_task = (
        "create index if not exists task_queue_kind_priority_id on task "
        "(queue, kind, priority desc, id)"
    )
    table_sched = (
        "create table if not exists schedule (id integer not null primary key, "
        "queue text not null, data blob not null, timestamp real not null, "
        "kind text not null default '', tid text not null default '')"
    )
    ddl = [
        SqliteStorage.table_kv,
        table_sched,
        SqliteStorage.index_sched,
        table_task,
        index_task,
        "create index if not exists task_tid on task (tid)",
        "create index if not exists schedule_tid on schedule (tid)",
        SqliteStorage.table_counter,
    ]

    def __init__(self, name: str, *, describe: Describe, kinds: Sequence[str], **kwargs):
        self._setup(describe, kinds)
        self._present_lock = threading.Lock()
        self._present_at = float("-inf")
        self._present_kinds: set[str] = set()
        self._taker: sqlite3.Connection | None = None  # see `_taking`
        super().__init__(name, **kwargs)

    def enqueue(self, data, priority=None):
        kind, tid, _ = self.describe(data)
        self.sql(
            "insert into task (queue, data, priority, kind, tid) values (?, ?, ?, ?, ?)",
            (self.name, self.to_blob(data), priority or 0, kind, tid),
            commit=True,
        )
        self._now_present({kind})

    def _now_present(self, kinds: set[str]) -> None:
        """Kinds this process just enqueued are there: no need to wait for the next look
        (retries and rescheduled tasks are enqueued by the consumer that dequeues them)."""
        with self._present_lock:
            self._present_kinds = self._present_kinds | kinds

    def _now_absent(self, kinds: set[str]) -> None:
        """Kinds a dequeue just found none of: idle workers stop taking the exclusive lock
        for them until the next look or enqueue."""
        with self._present_lock:
            self._present_kinds = self._present_kinds - kinds

    def enqueue_many(self, items: Iterable[Item]) -> int:
        """Enqueue many serialized tasks — (data, priority, kind, id) — in one transaction."""
        rows = [
            (self.name, self.to_blob(data), priority or 0, kind, tid)
            for data, priority, kind, tid in items
        ]
        with self.db(commit=True) as curs:
            curs.executemany(
                "insert into task (queue, data, priority, kind, tid) values (?, ?, ?, ?, ?)",
                rows,
            )
        self._now_present({kind for _, _, _, kind, _ in rows})
        return len(rows)

    PRESENT_TTL = 0.5  # seconds a look at which kinds have tasks is reused

    def _present(self) -> set[str]:
        """The kinds with a task waiting, looked up (one index probe a kind) at most every
        PRESENT_TTL: the dequeue's exclusive transaction then probes only those. Offering
        idle kinds there (nine instead of six) cost 10-20% of the budget at the limits."""
        now = time.monotonic()
        with self._present_lock:
            if now - self._present_at < self.PRESENT_TTL:
                return self._present_kinds
            self._present_at = now
        found = {
            kind
            for kind in self.kinds
            if self.sql(
                "select 1 from task where queue = ? and kind = ? limit 1",
                (self.name, kind),
                results=True,
            )
        }
        self._present_kinds = found
        return found

    @contextmanager
    def _taking(self) -> Iterator[sqlite3.Cursor]:
        """The exclusive transaction of a dequeue, committed without an fsync even when the
        queue syncs every commit ([queue] fsync): the fsync that makes enqueues durable is
        what bounded the dequeue rate, and a durable delete buys nothing here. Huey deletes
        a task before running it, so a delete lost in a power cut only brings the task back
        to run again — downloads and saves are idempotent — and WAL loses commits from the
        end only: the next synced commit (any enqueue) makes every earlier delete durable.
        A second connection, used under the same lock, so the two never wait on each other."""
        with self.lock:
            if self._taker is None:
                conn = sqlite3.connect(
                    self.filename, timeout=self._timeout, check_same_thread=False
                )
                conn.isolation_level = None
                conn.execute(
                    f"pragma synchronous={'normal' if self._fsync is not False else 'off'}"
                )
                self._taker = conn
            curs = self._taker.cursor()
            curs.execute(self.begin_sql)
            try:
                yield curs
            except BaseException:
                self._taker.rollback()
                raise
            else:
                self._taker.commit()
            finally:
                curs.close()

    def close(self):
        with self.lock:
            if self._taker is not None:
                self._taker.close()
                self._taker = None
        return super().close()

    def dequeue(self):
        present = self._present()
        kinds = tuple(k for k in self.allowed_kinds() if k in present)
        if not kinds:
            return None
        # No cheap look before the exclusive lock (Huey's `select 1`): with work waiting it
        # is one more turn of the storage lock per task for fifty workers, and an empty
        # queue is already known from `_present` — within PRESENT_TTL, or at once below.
        with self._taking() as curs:
            best = None  # (priority, id, data): highest priority, then oldest, across kinds
            for kind in kinds:
                curs.execute(
                    "select priority, id, data, kind from task where queue = ? and kind = ? "
                    "order by priority desc, id limit 1",
                    (self.name, kind),
                )
                row = curs.fetchone()
                if row is not None and (best is None or (-row[0], row[1]) < (-best[0], best[1])):
                    best = row
            if best is None:
                self._now_absent(set(kinds))
                return None
            curs.execute("delete from task where id = ?", (best[1],))
            if curs.rowcount != 1:
                return None
        self.taken(best[3])
        return best[2]

    def add_to_schedule(self, data, ts):
        kind, tid, _ = self.describe(data)
        self.sql(
            "insert into schedule (queue, data, timestamp, kind, tid) values (?, ?, ?, ?, ?)",
            (self.name, self.to_blob(data), ts.timestamp(), kind, tid),
            commit=True,
        )

    # -- cheap reads for status, recovery and dead letters ----------------------------------

    def counts_by_kind(self) -> dict[str, tuple[int, int]]:
        """{kind: (pending, scheduled)} with one index scan each."""
        return counts_by_kind(lambda sql, params: self.sql(sql, params, results=True), self.name)

    def queued_ids(self) -> set[str]:
        """Ids of every task waiting in the queue or the schedule."""
        rows = self.sql(
            "select tid from task where queue = ? union select tid from schedule where queue = ?",
            (self.name, self.name),
            results=True,
        )
        return {tid for (tid,) in rows}
