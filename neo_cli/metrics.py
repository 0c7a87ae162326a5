"""Counters and gauges the consumers record and `neo status` reads.

Recording is in memory (a dict under a lock, nanoseconds per event); a background thread writes
the deltas once a second to a small SQLite file beside the queues, in 5-second buckets for rates
and running totals for lifetime figures. `neo status` reads that file and never the DuckDB one.

Counter scopes are API interfaces (`daily`), tables, or queues (`queue:fast`); names are listed
in `COUNTERS` so the status view and the docs agree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neo_cli.ledger import connect

BUCKET = 5  # seconds
KEEP = 3600  # seconds of buckets kept

COUNTERS = {
    "calls": "API calls made (each attempt counts, as on the server)",
    "rejected": "rate-limit replies received",
    "retries": "attempts that failed and were retried",
    "failed": "units dead-lettered",
    "done": "tasks finished on this queue",
    "errors": "tasks that ended in an error on this queue",
    "rows": "rows written to the table",
    "quarantined": "rows set aside as bad data",
    "batches": "flushes committed",
    "batch_failures": "flushes that failed and will be retried",
}

_DDL = """
create table if not exists buckets (
    ts integer not null, scope text not null, name text not null, value integer not null,
    primary key (ts, scope, name)
);
create table if not exists totals (
    scope text not null, name text not null, value integer not null, primary key (scope, name)
);
create table if not exists gauges (
    process text not null, name text not null, value text not null, updated real not null,
    primary key (process, name)
);
"""


class MetricsStore:
    """The SQLite file the recorders write and status reads."""

    def __init__(self, path: Path, clock=time.time):
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._conn = connect(path)
        self._conn.executescript(_DDL)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, counts: dict[tuple[str, str], int], gauges: dict[str, Any], process: str) -> None:
        now = self.clock()
        bucket = int(now // BUCKET * BUCKET)
        with self._lock:
            conn = self._conn
            conn.execute("begin immediate")
            try:
                for (scope, name), n in counts.items():
                    conn.execute(
                        "insert into buckets values (?, ?, ?, ?) on conflict (ts, scope, name)"
                        " do update set value = value + excluded.value",
                        (bucket, scope, name, n),
                    )
                    conn.execute(
                        "insert into totals values (?, ?, ?) on conflict (scope, name)"
                        " do update set value = value + excluded.value",
                        (scope, name, n),
                    )
                for name, value in gauges.items():
                    conn.execute(
                        "insert or replace into gauges values (?, ?, ?, ?)",
                        (process, name, json.dumps(value), now),
                    )
                conn.execute("delete from buckets where ts < ?", (bucket - KEEP,))
                conn.execute("commit")
            except BaseException:
                conn.execute("rollback")
                raise

    def _q(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def window(self, seconds: float = 60) -> dict[tuple[str, str], int]:
        """Sums over the last `seconds` of *complete* buckets: the current bucket is still
        filling, and counting it would show a rate up to one bucket low."""
        current = int(self.clock() // BUCKET * BUCKET)
        since = current - int(seconds // BUCKET * BUCKET)
        return {
            (s, n): v
            for s, n, v in self._q(
                "select scope, name, sum(value) from buckets where ts >= ? and ts < ?"
                " group by 1, 2",
                (since, current),
            )
        }

    def totals(self) -> dict[tuple[str, str], int]:
        return {(s, n): v for s, n, v in self._q("select scope, name, value from totals")}

    def gauges(self) -> dict[str, dict[str, tuple[Any, float]]]:
        out: dict[str, dict[str, tuple[Any, float]]] = defaultdict(dict)
        for process, name, value, updated in self._q("select * from gauges"):
            out[process][name] = (json.loads(value), updated)
        return dict(out)


class Recorder:
    """Per-process counters and gauges, flushed to the store by a background thread."""

    def __init__(self, store: MetricsStore | None, process: str, interval: float = 1.0):
        self.store = store
        self.process = process
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self._gauges: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Gauges sampled at each flush (queue depth, in-flight tasks, heartbeat…).
        self.probes: dict[str, Callable[[], Any]] = {}

    def incr(self, scope: str, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[(scope, name)] += n

    def gauge(self, name: str, value: Any) -> None:
        with self._lock:
            self._gauges[name] = value

    def window(self, seconds: float = 60) -> dict[tuple[str, str], int]:
        """The store's sums over the last `seconds` (this data directory's processes)."""
        return self.store.window(seconds) if self.store is not None else {}

    def start(self) -> Recorder:
        if self.store is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the heartbeat must go on
                logging.getLogger("neo.metrics").exception("metrics flush failed")

    def flush(self) -> None:
        if self.store is None:
            return
        sampled = {}
        for name, probe in list(self.probes.items()):
            try:
                sampled[name] = probe()
            except Exception as exc:  # noqa: BLE001 - a probe must not stop the flush
                sampled[name] = f"error: {exc}"
        with self._lock:
            counts, self._counts = dict(self._counts), defaultdict(int)
            gauges = {**self._gauges, **sampled}
        try:
            self.store.add(counts, gauges, self.process)
        except sqlite3.Error:
            # Metrics must never take a consumer down; keep the counts for the next try.
            with self._lock:
                for k, v in counts.items():
                    self._counts[k] += v

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
