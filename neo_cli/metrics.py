"""Counters and gauges the consumers record and `neo status` reads.

Recording is in memory (a dict under a lock, nanoseconds per event); a background thread writes
the deltas once a second to a small SQLite file beside the queues, in 5-second buckets for rates
and running totals for lifetime figures. `neo status` reads that file and never the DuckDB one.

Counter scopes are API interfaces (`daily`, which also name their tables), `saver`, or queues
(`queue:slow`); `COUNTERS` lists the names, and `neo_cli.exporter` turns them into Prometheus
metrics. Rates (`Window`) are read over the last `RATE_SECONDS`, partial bucket included and
divided by the time actually covered, so a rate is right seconds after a start and falls to
zero within `RATE_SECONDS` of a stall.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neo_cli.ledger import connect
from neo_cli.tasktypes import INTERFACES

BUCKET = 5  # seconds
KEEP = 3600  # seconds of buckets kept
RATE_SECONDS = 20  # the span rates are read over: short enough to show a stall within it
FLUSH_LAG = 0.5  # seconds: each process writes its counts once a second, so on average the
# newest half second is not in the store yet

# How one attempt at a download ended (per interface), and how each API call did: every call
# made ends in exactly one of CALL_OUTCOMES, so they add up to `calls`.
TASK_OUTCOMES = ("done", "retried", "rate_limited", "dead")
CALL_OUTCOMES = ("ok", "retried", "rate_limited", "dead")
FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

COUNTERS = {
    "calls": "API calls made (each attempt and page counts, as on the server)",
    **{f"calls_{o}": f"API calls that ended {o.replace('_', '-')}" for o in CALL_OUTCOMES},
    "done": "downloads that got their rows (or the empty answer, or a split into parts)",
    "retried": "downloads that failed and will be tried again (an attempt spent)",
    "rate_limited": "downloads the API refused as over a limit (retried, no attempt spent)",
    "dead": "downloads dead-lettered",
    "auth_errors": "calls refused for the token or a missing permission (calls stop)",
    "wait_ms": "milliseconds calls waited for their limiter slot",
    "rows": "rows written to the table",
    "replaced": "rows written over a saved row with the same key",
    "quarantined": "rows set aside as bad data",
    "batches": "flushes committed",
    "batch_failures": "flushes that failed and will be retried",
    "tasks_done": "tasks finished on this queue (slow queue: saves and ledger tasks)",
    "tasks_failed": "tasks that raised on this queue",
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


@dataclass(frozen=True)
class Window:
    """Counts over a span of recent seconds; `per_min` is what status shows as x/min."""

    counts: dict[tuple[str, str], int]
    span: float

    def get(self, key: tuple[str, str], default: int = 0) -> int:
        return self.counts.get(key, default)

    def per_min(self, scope: str, name: str) -> int:
        n = self.counts.get((scope, name), 0)
        # Under a second of data says nothing about a rate; the count itself is a floor.
        return round(n * 60 / self.span) if self.span >= 1 else 0

    def by_scope(self, name: str) -> dict[str, int]:
        return {s: self.per_min(s, n) for s, n in self.counts if n == name}


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

    def recent(
        self, seconds: float = RATE_SECONDS, started: float | None = None, process: str = ""
    ) -> Window:
        """Counts of about the last `seconds`, with the time they cover: from the oldest bucket
        read, or `started` (when the processes counting began) if later, to the last time
        `process` (the one that counts them) wrote its counts — else now less the newest half
        second, on average not written yet."""
        now = self.clock()
        since = int((now - seconds) // BUCKET * BUCKET)
        if started:  # a previous run's last counts are not this one's
            since = max(since, int(started // BUCKET * BUCKET))
        counts = {
            (s, n): v
            for s, n, v in self._q(
                "select scope, name, sum(value) from buckets where ts >= ? group by 1, 2",
                (since,),
            )
        }
        end = now - FLUSH_LAG
        if process:
            written = self._q("select max(updated) from gauges where process = ?", (process,))
            if written and written[0][0] and now - written[0][0] < 5:
                end = written[0][0]
        return Window(counts, max(0.0, end - max(float(since), started or 0.0)))

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

    def observe(self, scope: str, name: str, seconds: float) -> None:
        """One observation of a duration, kept as histogram counters: the count in its bucket
        (`name:le=0.05`, not cumulative), `name:count` and `name:sum_us`."""
        le = next((b for b in FLUSH_BUCKETS if seconds <= b), None)
        with self._lock:
            self._counts[(scope, f"{name}:le={'+Inf' if le is None else le}")] += 1
            self._counts[(scope, f"{name}:count")] += 1
            self._counts[(scope, f"{name}:sum_us")] += max(0, round(seconds * 1e6))

    def recent(self, seconds: float = RATE_SECONDS, started: float | None = None) -> Window:
        """The store's recent counts (this data directory's processes), up to this process's
        last write."""
        if self.store is None:
            return Window({}, 0.0)
        return self.store.recent(seconds, started, self.process)

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


def outcomes(queue: str, value: Callable[[str, str], int]) -> tuple[int, dict[str, int]]:
    """(done, failures by kind) of a queue from its counters, read through `value(scope, name)`
    — a rate (`Window.per_min`) or a total. A download's failures are its outcomes: retried,
    rate-limited, dead; a save's are tasks that raised and flushes that failed."""
    if queue == "fast":
        done = sum(value(api, "done") for api in INTERFACES)
        failed = {k: sum(value(api, k) for api in INTERFACES) for k in TASK_OUTCOMES[1:]}
        return done, failed
    return value("queue:slow", "tasks_done"), {
        "errors": value("queue:slow", "tasks_failed"),
        "flush_failures": value("saver", "batch_failures"),
    }
