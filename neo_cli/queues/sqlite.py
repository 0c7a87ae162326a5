"""Huey's SQLite storage, taught two things neo needs.

1. **Kinds.** Each task row carries its kind (the API interface of a download, the table of a
   save) and its task id in columns of their own, so the queue can be counted per kind and
   searched by id without unpickling a single task.
2. **A gated dequeue.** `gate()` names the kinds a worker may take now. The fast consumer's gate
   answers with the interfaces whose rate limiter has a slot coming up; a worker never takes a
   task it would have to sit on, so fifty workers cannot all end up waiting on one slow
   interface while another interface's budget goes unspent (head-of-line blocking).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from huey.storage import SqliteStorage

# (kind, task id) of a serialized task.
Describe = Callable[[bytes], tuple[str, str]]
# The kinds a worker may take now, or None for "any".
Gate = Callable[[], Iterable[str] | None]


class KindSqliteStorage(SqliteStorage):
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
        self._describe = describe
        self._hint = threading.local()
        self.kinds = tuple(kinds)
        self.gate: Gate = lambda: None
        self.taken: Callable[[str], None] = lambda kind: None  # told what each dequeue took
        self._present_lock = threading.Lock()
        self._present_at = float("-inf")
        self._present_kinds: set[str] = set()
        super().__init__(name, **kwargs)

    def hint(self, data: bytes, kind: str, tid: str) -> None:
        """What the task just serialized in this thread is: spares unpickling it again (a save
        task carries thousands of rows) to learn its kind and id."""
        self._hint.value = (data, kind, tid)

    def describe(self, data: bytes) -> tuple[str, str]:
        hint = getattr(self._hint, "value", None)
        if hint is not None and hint[0] is data:
            return hint[1], hint[2]
        return self._describe(data)

    def enqueue(self, data, priority=None):
        kind, tid = self.describe(data)
        self.sql(
            "insert into task (queue, data, priority, kind, tid) values (?, ?, ?, ?, ?)",
            (self.name, self.to_blob(data), priority or 0, kind, tid),
            commit=True,
        )

    def enqueue_many(self, items: Iterable[tuple[bytes, float | None, str, str]]) -> int:
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
        allowed = self.gate()
        present = self._present()
        kinds = tuple(k for k in (self.kinds if allowed is None else allowed) if k in present)
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
        kind, tid = self.describe(data)
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
