"""The queue on SQLite (one data directory): Huey's SqliteStorage with neo's contract
(`neo_cli.queues.base`).

Each task row carries its kind and task id in columns of their own, so the queue is counted per
kind and searched by id without unpickling a task. The gated dequeue means a worker never takes
a task it would have to sit on, so fifty workers cannot all end up waiting on one slow interface
while another interface's budget goes unspent (head-of-line blocking). No leases: a consumer's
lost work is found from the ledger when it is restarted (`neo_cli.recovery`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from huey.storage import SqliteStorage

from neo_cli.queues.base import Describe, Item, NeoStorage


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

    def dequeue(self):
        present = self._present()
        kinds = tuple(k for k in self.allowed_kinds() if k in present)
        if not kinds:
            return None
        # A cheap look before the exclusive lock: fifty idle workers poll this.
        if not self.sql("select 1 from task where queue = ? limit 1", (self.name,), results=True):
            return None
        with self.db(commit=True) as curs:
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
        out: dict[str, list[int]] = {}
        for table, slot in (("task", 0), ("schedule", 1)):
            for kind, n in self.sql(
                f"select kind, count(*) from {table} where queue = ? group by kind",
                (self.name,),
                results=True,
            ):
                out.setdefault(kind, [0, 0])[slot] = n
        return {k: (v[0], v[1]) for k, v in out.items()}

    def queued_ids(self) -> set[str]:
        """Ids of every task waiting in the queue or the schedule."""
        rows = self.sql(
            "select tid from task where queue = ? union select tid from schedule where queue = ?",
            (self.name, self.name),
            results=True,
        )
        return {tid for (tid,) in rows}
