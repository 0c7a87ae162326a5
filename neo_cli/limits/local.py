"""The local backend: one budget for every process of a data directory, in `limiter.db`.

Consumers, `--inline` runs, the calendar calls of `neo enqueue`, a consumer still draining after
its supervisor died: each takes its slots in one SQLite `BEGIN IMMEDIATE` transaction on the same
file, so no slot is ever handed out twice, and a holder killed mid-transaction (SIGKILL included)
has its transaction rolled back and its lock dropped by the kernel at once. Times are this
machine's wall clock, the one clock every process here shares. Pauses and stops are rows too,
so an hourly or daily cap survives a restart until it resets.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from neo_cli.limits.base import NEVER, Backend, State

_DDL = """
create table if not exists budget (
    budget text not null,          -- a fingerprint of the token, never the token
    api text not null,
    next real not null default 0,  -- the earliest time the next slot may be granted
    paused real not null default 0,
    reason text not null default '',
    stopped text,                  -- why calls are stopped until a new run (bad token ...)
    primary key (budget, api)
);
"""


class LocalBackend(Backend):
    name = "local"

    def __init__(self, path: Path, budget: str, clock: Callable[[], float] = time.time):
        self.path, self.budget, self.clock = path, budget, clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("pragma journal_mode=wal")
        # NORMAL: a power cut may forget the last slots, and the minute they belong to is
        # over by the time the machine is back.
        self._conn.execute("pragma synchronous=normal")
        self._conn.execute("pragma busy_timeout=30000")
        with self._lock:
            self._conn.executescript(_DDL)

    def _row(self, api: str) -> tuple[float, float, str, str | None]:
        row = self._conn.execute(
            "select next, paused, reason, stopped from budget where budget = ? and api = ?",
            (self.budget, api),
        ).fetchone()
        return row if row is not None else (0.0, 0.0, "", None)

    def _set(self, api: str, assignments: str, args: tuple) -> None:
        """Update `api`'s row (created when missing) inside the caller's transaction."""
        self._conn.execute(
            "insert into budget (budget, api) values (?, ?) on conflict do nothing",
            (self.budget, api),
        )
        self._conn.execute(
            f"update budget set {assignments} where budget = ? and api = ?",
            (*args, self.budget, api),
        )

    def reserve(self, api: str, spacing: float, horizon: float) -> float | None:
        with self._lock:
            self._conn.execute("begin immediate")
            try:
                nxt, paused, _, stopped = self._row(api)
                now = self.clock()
                slot = max(now, nxt, paused)
                if stopped is not None or slot - now > horizon:
                    self._conn.execute("rollback")
                    return None
                self._set(api, "next = ?", (slot + spacing,))
                self._conn.execute("commit")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("rollback")
                raise
            return slot - now

    def state(self, api: str) -> State:
        with self._lock:
            nxt, paused, reason, stopped = self._row(api)
        now = self.clock()
        if stopped is not None:
            return State(NEVER, NEVER, stopped)
        return State(max(0.0, max(nxt, paused) - now), paused - now, reason)

    def pause(self, api: str, seconds: float, reason: str) -> None:
        with self._lock:
            self._conn.execute("begin immediate")
            try:
                if seconds == NEVER:
                    self._set(api, "stopped = ?", (reason,))
                else:
                    until = self.clock() + seconds
                    # A pause never shortens another (the right-hand sides see the old row).
                    self._set(
                        api,
                        "reason = case when ? > paused then ? else reason end,"
                        " paused = max(paused, ?)",
                        (until, reason, until),
                    )
                self._conn.execute("commit")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("rollback")
                raise

    def clear_stops(self) -> None:
        with self._lock:
            self._conn.execute("update budget set stopped = null where budget = ?", (self.budget,))

    def describe(self) -> str:
        return f"local ({self.path})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()
