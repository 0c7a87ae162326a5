"""Where scheduled runs are claimed and recorded, so each scheduled time runs once.

Every supervisor with a schedule looks for the latest scheduled time that has no run; the first
to *claim* it runs it, the others see the claim and do nothing. A claim is a lease: its holder
renews it while it works, and one that stops renewing (its process was killed, its machine lost
power) can be taken over once the lease has run out, so a run is never lost either. A claim is
refused when a run for the same or a *later* time exists, so a machine whose clock runs behind
cannot go back and run an older time.

`RunBook` is the interface; `SqliteRunBook` keeps it in the ledger's file, where every process
of a data directory meets. A Redis book (one key per name, claimed with a script) serves
machines that share no file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from neo_cli.ledger import connect

FINISHED = ("done", "skipped", "failed")

_DDL = """
create table if not exists schedule_runs (
    name text not null,          -- which schedule ('update')
    slot real not null,          -- the scheduled time, epoch seconds
    owner text not null,         -- host:pid of the process running it
    state text not null,         -- running | done | skipped | failed
    lease_until real not null,   -- a running claim nobody renewed past this is free
    started real not null,
    finished real,
    takeovers integer not null default 0,
    outcome text not null default '{}',
    primary key (name, slot)
);
create table if not exists schedule_since (  -- when a schedule was first seen: the times
    name text primary key, since real not null  -- before it were never missed
);
"""


@dataclass(frozen=True)
class Run:
    """One scheduled time and what became of it."""

    name: str
    slot: float
    owner: str
    state: str
    lease_until: float
    started: float
    finished: float | None = None
    takeovers: int = 0
    outcome: dict[str, Any] = field(default_factory=dict)

    def live(self, now: float) -> bool:
        """Still being run: claimed, unfinished, its lease renewed."""
        return self.state == "running" and self.lease_until > now


class RunBook(Protocol):
    def since(self, name: str, now: float) -> float:
        """When `name` was first seen (recorded now if never)."""

    def claim(self, name: str, slot: float, owner: str, now: float, lease: float) -> Run | None:
        """Claim `slot` for `owner`; the claim, or None when another holds or ran it."""

    def renew(self, name: str, slot: float, owner: str, now: float, lease: float) -> bool:
        """Extend the lease; False when `owner` no longer holds the claim."""

    def finish(
        self, name: str, slot: float, owner: str, state: str, outcome: dict, now: float
    ) -> bool:
        """Record the end of a run `owner` holds; False when it no longer does."""

    def release(self, name: str, slot: float, owner: str) -> None:
        """Give up a claim unfinished (a stop), so the next look takes it over at once."""

    def last(self, name: str) -> Run | None:
        """The run of the latest scheduled time, finished or not."""


class SqliteRunBook:
    """The book in `ledger.db`; a claim is one `BEGIN IMMEDIATE` transaction, which SQLite
    serializes across every process that opens the file."""

    def __init__(self, path: Path, create: bool = True):
        """`create=False` (a status check) creates nothing: a book never written reads empty."""
        self._conn = connect(path, durable=True)
        self._lock = threading.Lock()
        with self._lock:
            if create:
                self._conn.executescript(_DDL)
            self._empty = not self._conn.execute(
                "select 1 from sqlite_master where name = 'schedule_runs'"
            ).fetchone()

    def close(self) -> None:
        self._conn.close()

    def _tx(self, fn):
        with self._lock:
            self._conn.execute("begin immediate")
            try:
                result = fn(self._conn)
            except BaseException:
                self._conn.execute("rollback")
                raise
            self._conn.execute("commit")
            return result

    def since(self, name: str, now: float) -> float:
        def tx(conn: sqlite3.Connection) -> float:
            conn.execute(
                "insert or ignore into schedule_since (name, since) values (?, ?)", (name, now)
            )
            return conn.execute(
                "select since from schedule_since where name = ?", (name,)
            ).fetchone()[0]

        return self._tx(tx)

    def claim(self, name: str, slot: float, owner: str, now: float, lease: float) -> Run | None:
        def tx(conn: sqlite3.Connection) -> Run | None:
            later = conn.execute(
                "select 1 from schedule_runs where name = ? and slot > ?", (name, slot)
            ).fetchone()
            if later:
                return None
            found = _run(
                conn.execute(
                    f"select {_COLUMNS} from schedule_runs where name = ? and slot = ?",
                    (name, slot),
                ).fetchone()
            )
            if found is None:
                conn.execute(
                    "insert into schedule_runs (name, slot, owner, state, lease_until, started)"
                    " values (?, ?, ?, 'running', ?, ?)",
                    (name, slot, owner, now + lease, now),
                )
            elif found.state == "running" and found.lease_until <= now:
                conn.execute(  # its holder stopped renewing: take it over
                    "update schedule_runs set owner = ?, lease_until = ?, started = ?,"
                    " takeovers = takeovers + 1 where name = ? and slot = ?",
                    (owner, now + lease, now, name, slot),
                )
            else:
                return None
            return _run(
                conn.execute(
                    f"select {_COLUMNS} from schedule_runs where name = ? and slot = ?",
                    (name, slot),
                ).fetchone()
            )

        return self._tx(tx)

    def renew(self, name: str, slot: float, owner: str, now: float, lease: float) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "update schedule_runs set lease_until = ? where name = ? and slot = ?"
                    " and owner = ? and state = 'running'",
                    (now + lease, name, slot, owner),
                ).rowcount
            )

        return self._tx(tx)

    def finish(
        self, name: str, slot: float, owner: str, state: str, outcome: dict, now: float
    ) -> bool:
        assert state in FINISHED, state

        def tx(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "update schedule_runs set state = ?, finished = ?, outcome = ?"
                    " where name = ? and slot = ? and owner = ? and state = 'running'",
                    (state, now, json.dumps(outcome), name, slot, owner),
                ).rowcount
            )

        return self._tx(tx)

    def release(self, name: str, slot: float, owner: str) -> None:
        self._tx(
            lambda conn: conn.execute(
                "update schedule_runs set lease_until = 0 where name = ? and slot = ?"
                " and owner = ? and state = 'running'",
                (name, slot, owner),
            )
        )

    def last(self, name: str) -> Run | None:
        if self._empty:
            return None
        with self._lock:
            return _run(
                self._conn.execute(
                    f"select {_COLUMNS} from schedule_runs where name = ?"
                    " order by slot desc limit 1",
                    (name,),
                ).fetchone()
            )


_COLUMNS = "name, slot, owner, state, lease_until, started, finished, takeovers, outcome"


def _run(row: tuple | None) -> Run | None:
    if row is None:
        return None
    *head, outcome = row
    return Run(*head, outcome=json.loads(outcome or "{}"))
