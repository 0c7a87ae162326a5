"""Counting a SQLite queue's tasks per kind, without Huey.

`neo status` needs only these counts, and importing Huey costs it a third of its time: Huey's
storage module imports the Redis client whether or not a Redis is configured. So status reads
the queue file itself with the same query the storage runs (`KindSqliteStorage.counts_by_kind`
calls `counts_by_kind` here too).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

Rows = Callable[[str, tuple], Iterable[tuple[str, int]]]


def counts_by_kind(rows: Rows, queue: str) -> dict[str, tuple[int, int]]:
    """{kind: (pending, scheduled)} of `queue`, with one index scan of each table; `rows`
    runs a query with its parameters and returns the rows."""
    out: dict[str, list[int]] = {}
    for table, slot in (("task", 0), ("schedule", 1)):
        for kind, n in rows(
            f"select kind, count(*) from {table} where queue = ? group by kind", (queue,)
        ):
            out.setdefault(kind, [0, 0])[slot] = n
    return {k: (v[0], v[1]) for k, v in out.items()}


def sqlite_counts(path: Path, queue: str) -> dict[str, tuple[int, int]]:
    """`counts_by_kind` of the queue file at `path`: nothing queued when there is no file yet
    (a health check must not create what it checks) or no tables in it."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(path, timeout=30)
    try:
        return counts_by_kind(lambda sql, params: conn.execute(sql, params).fetchall(), queue)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        conn.close()
