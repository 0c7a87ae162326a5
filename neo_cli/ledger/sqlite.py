"""The ledger: a durable record of every unit of work, and the catalog readers use.

Why it exists: Huey deletes a task before running it and the saver holds frames in memory until
a flush, so a killed consumer silently loses work. The ledger (SQLite, WAL, its own file) records
each unit from enqueue to `saved` or `dead`; whatever is neither, and is in no queue, was lost
and is enqueued again (`recover`). Saves are idempotent, so at-least-once delivery gives
exactly-once rows.

States and who writes them:

    queued    --(fast: save task enqueued)-->  saving  --(slow: flush committed)--> saved
    queued    --(fast: transient error)---->   retrying --> ... --> dead (attempts spent)
    queued    --(fast: permanent error)---->   dead
    saving    --(recovery: save task lost)-->  queued
    queued    --(fast: a packed call refused)--> split (each symbol becomes a unit of its own)

The fast consumer enqueues the save task *before* it marks the unit `saving`, and the slow
consumer marks `saved` only *after* DuckDB committed: a crash between any two steps leaves a unit
in an earlier state, which recovery repeats; none leaves a unit later than its data.

The catalog (`watermarks`, `symbols`, `tables`) is updated in the same transaction as `saved`.
`neo enqueue` and `neo status` read it instead of the DuckDB file, which the slow consumer may be
writing; the slow consumer rebuilds it from DuckDB whenever it starts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from neo_cli.coverage import Range, add, covered_by
from neo_cli.dates import CHINA, fmt, plus
from neo_cli.strategies import ALL
from neo_cli.tasktypes import STATEMENTS, interfaces_of, table_of
from neo_cli.units import Unit

LIVE = ("queued", "retrying", "saving")
STATES = (*LIVE, "saved", "dead", "split", "replaced")
_LIVE_SQL = "(" + ", ".join(f"'{state}'" for state in LIVE) + ")"
VIP_REFUSED = "vip_refused:"  # + statement: a flag saying "per-symbol calls, for good"

_DDL = """
create table if not exists units (
    id text primary key,
    batch text not null,
    api text not null,
    codes text not null,
    params text not null,
    priority integer not null default 0,
    state text not null,
    attempts integer not null default 0,
    rows integer,
    save_id text,
    error text,
    error_class text,
    created real not null,
    updated real not null,
    owner text  -- a live process that works the unit itself (an inline run); null: the queues
);
create index if not exists units_state on units (state, api);
create index if not exists units_batch on units (batch);
create index if not exists units_live on units (api, codes)
    where state in ('queued', 'retrying', 'saving');  -- _LIVE_SQL
create table if not exists batches (
    id text primary key, task_type text not null, created real not null, units integer not null
);
create table if not exists watermarks (
    api text not null, ts_code text not null, last_date text not null,
    primary key (api, ts_code)
);
create table if not exists symbols (
    ts_code text primary key, name text, list_status text, list_date text, delist_date text
);
create table if not exists tables (api text primary key, rows integer not null, updated real);
create table if not exists batch_symbols (
    batch text not null, ts_code text not null, primary key (batch, ts_code)
);
create table if not exists quarantine (  -- rows set aside in DuckDB's _quarantine: covered
    api text not null, ts_code text not null, day text not null, reason text not null
);
create index if not exists quarantine_api on quarantine (api, ts_code);
create table if not exists flags (  -- what neo learned once and keeps (a refused interface)
    name text primary key, value text not null, updated real not null
);
create table if not exists coverage (  -- what successful calls covered, merged per symbol
    api text not null, ts_code text not null, start text not null, "end" text not null,
    primary key (api, ts_code, start)
);
"""


def connect(path: Path, durable: bool = False) -> sqlite3.Connection:
    """A SQLite connection in WAL mode, shared by threads behind the caller's lock.

    `durable` syncs every commit to disk (enqueue: a task the user was told about must survive
    a power cut); otherwise WAL's NORMAL sync, which can lose the last commits on power loss but
    never corrupts — and every state the ledger could fall back to is one recovery repeats."""
    conn = sqlite3.connect(str(path), timeout=60, check_same_thread=False, isolation_level=None)
    conn.execute("pragma journal_mode=wal")
    conn.execute(f"pragma synchronous={'full' if durable else 'normal'}")
    conn.execute("pragma busy_timeout=60000")
    return conn


@dataclass(frozen=True)
class UnitRecord:
    """A unit as the ledger sees it."""

    unit: Unit
    state: str
    attempts: int
    rows: int | None
    save_id: str | None
    error: str | None
    error_class: str | None
    created: float
    updated: float
    owner: str | None = None


class Ledger:
    """The ledger and catalog in `<data_dir>/ledger.db`."""

    remote = False  # a download machine's stand-in is `neo_cli.ledger.remote.RemoteLedger`

    def __init__(self, path: Path, durable: bool = False, clock=time.time):
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        self._conn = connect(path, durable)
        with self._lock:
            columns = {r[1] for r in self._conn.execute("pragma table_info(units)")}
            if columns and "owner" not in columns:  # a ledger from before owners
                self._conn.execute("alter table units add column owner text")
            fresh = not self._conn.execute(
                "select 1 from sqlite_master where name = 'coverage'"
            ).fetchone()
            self._conn.executescript(_DDL)
        if fresh and columns:
            # A ledger from before coverage: what its saved units covered is what is known.
            with self._tx() as conn:
                saved = [i for (i,) in conn.execute("select id from units where state = 'saved'")]
                self._cover(conn, saved)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("begin immediate")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("rollback")
                raise
            self._conn.execute("commit")

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    @staticmethod
    def _by_ids(conn: sqlite3.Connection, sql: str, ids: Iterable[str], *head: Any) -> int:
        """Run `sql` (with `{ids}` for the placeholders) over ids in chunks; rows changed."""
        ids = list(ids)
        changed = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            changed += conn.execute(sql.format(ids=marks), (*head, *chunk)).rowcount
        return changed

    def _insert(
        self,
        conn: sqlite3.Connection,
        units: Iterable[Unit],
        ignore: bool = False,
        owner: str | None = None,
    ) -> None:
        now = self.clock()
        conn.executemany(
            "insert into units (id, batch, api, codes, params, priority, state, created,"
            " updated, owner) values (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)"
            + (" on conflict (id) do nothing" if ignore else ""),
            [
                (
                    u.id,
                    u.batch,
                    u.api,
                    ",".join(u.codes),
                    json.dumps(u.params),
                    u.priority,
                    now,
                    now,
                    owner,
                )
                for u in units
            ],
        )

    def _ensure(self, conn: sqlite3.Connection, unit: Unit) -> None:
        """Record a unit that reached a worker without a ledger row (see `adding`)."""
        self._insert(conn, [unit], ignore=True)

    # -- enqueue ----------------------------------------------------------------------------

    def live_codes(self, api: str) -> set[str]:
        """Symbols with a unit still on its way to `api`'s table, through any interface that
        fills it (for "already queued")."""
        out: set[str] = set()
        apis = interfaces_of(table_of(api))
        for (codes,) in self._rows(
            f"select codes from units where api in ({','.join('?' * len(apis))})"
            f" and state in {_LIVE_SQL}",
            apis,
        ):
            out.update(c for c in codes.split(",") if c)
        return out

    def live_count(self, api: str | None = None) -> int:
        """Units still on their way (of one interface, or all)."""
        sql = f"select count(*) from units where state in {_LIVE_SQL}"
        return self._rows(sql + " and api = ?", (api,))[0][0] if api else self._rows(sql)[0][0]

    @contextmanager
    def adding(
        self,
        batch: str,
        task_type: str,
        units: list[Unit],
        universe: Iterable[str] = (),
        owner: str | None = None,
    ) -> Iterator[None]:
        """Record `units` in one transaction that commits only if the body (which enqueues
        them) returns: a unit is never recorded without its task, and a task enqueued without
        its record (a crash after the queue commit) is recorded by the worker that runs it.
        `universe`: the symbols a whole-market unit of this batch may save rows for. `owner`:
        the live process that works these units itself (recovery leaves them to it)."""
        with self._tx() as conn:
            conn.execute(
                "insert into batches (id, task_type, created, units) values (?, ?, ?, ?) "
                "on conflict (id) do update set units = units + excluded.units",
                (batch, task_type, self.clock(), len(units)),
            )
            conn.executemany(
                "insert or ignore into batch_symbols (batch, ts_code) values (?, ?)",
                [(batch, code) for code in universe],
            )
            self._insert(conn, units, owner=owner)
            self._replace_dead(conn, units)
            yield

    def _replace_dead(self, conn: sqlite3.Connection, units: list[Unit]) -> None:
        """Dead letters whose range a new unit asks for again are replaced by it, not doubled
        (the new unit's own fate is what counts now)."""
        wanted: dict[str, list[tuple[set[str], Range]]] = {}
        for u in units:
            span = covered_by(u.params)
            if span is not None:
                wanted.setdefault(table_of(u.api), []).append((set(u.codes), span))
        replaced = []
        for table, asks in wanted.items():
            apis = interfaces_of(table)
            for uid, codes, params in conn.execute(
                "select id, codes, params from units where state = 'dead'"
                f" and api in ({','.join('?' * len(apis))})",
                apis,
            ):
                span = covered_by(json.loads(params))
                mine = set(codes.split(","))
                if span is not None and any(
                    (mine & theirs or ALL in mine or ALL in theirs)
                    and lo <= span[1]
                    and span[0] <= hi
                    for theirs, (lo, hi) in asks
                ):
                    replaced.append(uid)
        self._by_ids(
            conn,
            "update units set state = 'replaced', updated = ? where id in ({ids})",
            replaced,
            self.clock(),
        )

    def owners(self) -> set[str]:
        """Owners of units still on their way."""
        return {
            o
            for (o,) in self._rows(
                f"select distinct owner from units where state in {_LIVE_SQL} and owner is not null"
            )
        }

    def disown(self, owner: str) -> None:
        """`owner` is gone: its units belong to the queues from now on."""
        with self._tx() as conn:
            conn.execute("update units set owner = null where owner = ?", (owner,))

    def universe(self, batch: str) -> set[str]:
        return {
            c for (c,) in self._rows("select ts_code from batch_symbols where batch = ?", (batch,))
        }

    @contextmanager
    def reviving(self, unit_ids: Iterable[str]) -> Iterator[None]:
        """Dead units sent back, attempts counted afresh; commits only if the body (which
        enqueues them) returns, like `adding`."""
        with self._tx() as conn:
            self._by_ids(
                conn,
                "update units set state = 'queued', attempts = 0, save_id = null, owner = null,"
                " updated = ? where state = 'dead' and id in ({ids})",
                unit_ids,
                self.clock(),
            )
            yield

    # -- fast consumer ----------------------------------------------------------------------

    def split(self, unit: Unit, children: list[Unit]) -> None:
        """Replace a packed unit with one unit per symbol, in one transaction."""
        with self._tx() as conn:
            self._ensure(conn, unit)
            (owner,) = conn.execute("select owner from units where id = ?", (unit.id,)).fetchone()
            self._insert(conn, children, owner=owner)  # the parent's owner works them too
            conn.execute(
                "update units set state = 'split', updated = ? where id = ?",
                (self.clock(), unit.id),
            )

    def split_units(self, unit: Unit, children: list[Unit], enqueue) -> None:
        """Record the split first, then enqueue the children: a crash in between leaves
        units recovery finds (the same call a download machine sends as a ledger task)."""
        self.split(unit, children)
        enqueue(children)

    def attempt_failed(self, unit: Unit, error: str, error_class: str) -> int:
        """Count a failed attempt; return the attempts made so far."""
        with self._tx() as conn:
            self._ensure(conn, unit)
            conn.execute(
                "update units set attempts = attempts + 1, state = 'retrying', error = ?,"
                " error_class = ?, updated = ? where id = ? and state in ('queued','retrying')",
                (error, error_class, self.clock(), unit.id),
            )
            row = conn.execute("select attempts from units where id = ?", (unit.id,)).fetchone()
        return row[0] if row else 0

    def note(self, unit: Unit, error: str, error_class: str) -> None:
        """Record why a unit waits (a rate-limit pause) without counting an attempt."""
        with self._tx() as conn:
            self._ensure(conn, unit)
            conn.execute(
                "update units set error = ?, error_class = ?, updated = ? where id = ?",
                (error, error_class, self.clock(), unit.id),
            )

    def mark_saving(self, unit: Unit, save_id: str, rows: int) -> None:
        """The unit's `rows` are on their way to the database (save task `save_id`)."""
        self.mark_saving_many([(unit, save_id, rows)])

    def mark_saving_many(self, entries: Iterable[tuple[Unit, str, int]]) -> None:
        """`mark_saving` for many (unit, save id, rows) in one transaction: the downloads
        whose saves were enqueued together (`neo_cli.queues.groupcommit`)."""
        entries = list(entries)
        now = self.clock()
        with self._tx() as conn:
            self._insert(conn, [u for u, _, _ in entries], ignore=True)  # see `_ensure`
            conn.executemany(
                "update units set state = 'saving', save_id = ?, rows = ?, error = null,"
                " error_class = null, updated = ? where id = ? and state in ('queued','retrying')",
                [(save_id, rows, now, u.id) for u, save_id, rows in entries],
            )

    def mark_empty(self, unit: Unit) -> None:
        """The API had no rows for the unit: nothing to save, so it is saved."""
        self._advance_unit(unit, "saved", None, 0)

    def _advance_unit(self, unit: Unit, state: str, save_id: str | None, rows: int) -> None:
        with self._tx() as conn:
            self._ensure(conn, unit)
            changed = conn.execute(
                "update units set state = ?, save_id = ?, rows = ?, error = null,"
                " error_class = null, updated = ? where id = ? and state in ('queued','retrying')",
                (state, save_id, rows, self.clock(), unit.id),
            ).rowcount
            if changed and state == "saved":
                self._cover(conn, [unit.id])

    # -- coverage -----------------------------------------------------------------------------

    def _cover(self, conn: sqlite3.Connection, unit_ids: Iterable[str]) -> None:
        """Record the ranges the calls of these (saved) units covered, merged per symbol.
        A whole-market day covers every symbol its batch was planned for."""
        added: dict[tuple[str, str], list[Range]] = {}
        ids = list(unit_ids)
        universes: dict[str, list[str]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for api, codes, params, batch in conn.execute(
                "select api, codes, params, batch from units where state != 'dead' and id in"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            ):
                span = covered_by(json.loads(params))
                if span is None:
                    continue
                symbols = [c for c in codes.split(",") if c]
                if symbols == [ALL]:
                    if batch not in universes:
                        universes[batch] = [
                            c
                            for (c,) in conn.execute(
                                "select ts_code from batch_symbols where batch = ?", (batch,)
                            )
                        ]
                    symbols = universes[batch]
                for code in symbols:  # coverage is the table's, whichever interface filled it
                    added.setdefault((table_of(api), code), []).append(span)
        # A day is covered only once it is over, or once its bar is saved: a call made on the
        # day itself may come before the day's bar or a late announcement is published.
        now = datetime.fromtimestamp(self.clock(), CHINA).date()
        today, yesterday = fmt(now), fmt(now - timedelta(days=1))
        for (api, code), spans in list(added.items()):
            if any(hi >= today for _, hi in spans):
                mark = conn.execute(
                    "select last_date from watermarks where api = ? and ts_code = ?", (api, code)
                ).fetchone()
                last = today if mark and mark[0] >= today and api not in STATEMENTS else yesterday
                added[(api, code)] = [(lo, min(hi, last)) for lo, hi in spans]
        for (api, code), spans in added.items():
            # Only the ranges the spans can reach are read (a symbol's coverage can hold
            # hundreds): the last to start by the first span, and those starting up to a
            # weekend after the last. The ones before and after cannot touch what changes.
            first, last = min(lo for lo, _ in spans), max(hi for _, hi in spans)
            old = conn.execute(
                'select start, "end" from coverage where api = ? and ts_code = ? and start <= ?'
                " order by start desc limit 1",
                (api, code, first),
            ).fetchall()
            old += conn.execute(
                'select start, "end" from coverage where api = ? and ts_code = ? and start > ?'
                " and start <= ? order by start",
                (api, code, first, plus(last, 3)),
            ).fetchall()
            merged = old
            for span in spans:
                merged = add(merged, span, trading=api not in STATEMENTS)
            # Only the ranges that changed are written: a symbol's coverage can hold hundreds.
            gone, came = set(old) - set(merged), set(merged) - set(old)
            conn.executemany(
                "delete from coverage where api = ? and ts_code = ? and start = ?",
                [(api, code, lo) for lo, _ in gone],
            )
            conn.executemany(
                'insert into coverage (api, ts_code, start, "end") values (?, ?, ?, ?)',
                [(api, code, lo, hi) for lo, hi in came],
            )

    def remember(self, name: str, value: str) -> bool:
        """Keep a fact learned once (`vip_refused:income`); True if it is new."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    "insert or ignore into flags (name, value, updated) values (?, ?, ?)",
                    (name, value, self.clock()),
                ).rowcount
            )

    def flag(self, name: str) -> str:
        """The fact kept under `name`, or ''."""
        found = self._rows("select value from flags where name = ?", (name,))
        return found[0][0] if found else ""

    def quarantined(self, api: str) -> dict[str, list[tuple[str, str]]]:
        """{symbol: [(date, reason), …]} of `api`'s rows set aside as bad."""
        out: dict[str, list[tuple[str, str]]] = {}
        for code, day, reason in self._rows(
            "select ts_code, day, reason from quarantine where api = ? order by ts_code, day",
            (api,),
        ):
            out.setdefault(code, []).append((day, reason))
        return out

    def refuse_vip(self, statement: str, message: str) -> bool:
        """The account may not call `statement`'s whole-market interface: remember it for
        good; True the first time."""
        return self.remember(VIP_REFUSED + statement, message)

    def vip_refused(self, statement: str) -> str:
        """Why `statement`'s whole-market interface is not used (the API's refusal), or ''."""
        return self.flag(VIP_REFUSED + statement)

    def coverage(self, api: str) -> dict[str, list[Range]]:
        """{symbol: its covered ranges, in order} for one interface."""
        out: dict[str, list[Range]] = {}
        for code, lo, hi in self._rows(
            'select ts_code, start, "end" from coverage where api = ? order by ts_code, start',
            (api,),
        ):
            out.setdefault(code, []).append((lo, hi))
        return out

    def mark_dead(self, unit: Unit, error: str, error_class: str) -> None:
        with self._tx() as conn:
            self._ensure(conn, unit)
            conn.execute(
                "update units set state = 'dead', error = ?, error_class = ?, updated = ?"
                " where id = ? and state != 'saved'",
                (error, error_class, self.clock(), unit.id),
            )

    # -- slow consumer: one transaction per committed flush ----------------------------------

    def _advance(
        self,
        conn: sqlite3.Connection,
        watermarks: Mapping[str, Mapping[str, str]],
        symbols: Iterable[tuple[str, str, str, str, str]],
        table_rows: Mapping[str, int] | None,
    ) -> None:
        for api, marks in watermarks.items():
            conn.executemany(
                "insert into watermarks (api, ts_code, last_date) values (?, ?, ?)"
                " on conflict (api, ts_code) do update set"
                " last_date = max(last_date, excluded.last_date)",
                [(api, code, day) for code, day in marks.items()],
            )
        conn.executemany(
            "insert or replace into symbols (ts_code, name, list_status, list_date,"
            " delist_date) values (?, ?, ?, ?, ?)",
            list(symbols),
        )
        for api, n in (table_rows or {}).items():
            conn.execute(
                "insert or replace into tables (api, rows, updated) values (?, ?, ?)",
                (api, n, self.clock()),
            )

    def record_flush(
        self,
        unit_ids: Iterable[str],
        watermarks: Mapping[str, Mapping[str, str]],
        symbols: Iterable[tuple[str, str, str, str, str]] = (),
        table_rows: Mapping[str, int] | None = None,
        set_aside: Mapping[str, Iterable[tuple[str, str, str]]] | None = None,
    ) -> None:
        """After a DuckDB commit: mark units saved, record what their calls covered (rows set
        aside as bad included: asking again would bring the same rows), and move the catalog
        forward."""
        unit_ids = list(unit_ids)
        with self._tx() as conn:
            self._advance(conn, watermarks, symbols, table_rows)  # first: _cover reads it
            self._cover(conn, unit_ids)
            for api, rows in (set_aside or {}).items():
                conn.executemany(
                    "insert into quarantine (api, ts_code, day, reason) values (?, ?, ?, ?)",
                    [(api, code, day, reason) for code, day, reason in rows],
                )
            self._by_ids(
                conn,
                "update units set state = 'saved', error = null,"
                " error_class = null, updated = ? where id in ({ids})"
                " and state != 'dead'",
                unit_ids,
                self.clock(),
            )

    def rebuild_catalog(
        self,
        watermarks: Mapping[str, Mapping[str, str]],
        symbols: Iterable[tuple[str, str, str, str, str]],
        table_rows: Mapping[str, int],
    ) -> None:
        """Replace the catalog with what the database really holds, in one transaction:
        a reader never sees it empty."""
        with self._tx() as conn:
            for table in ("watermarks", "symbols", "tables"):
                conn.execute(f"delete from {table}")
            self._advance(conn, watermarks, symbols, table_rows)

    # -- catalog reads ------------------------------------------------------------------------

    def watermarks(self, api: str) -> dict[str, str]:
        return dict(self._rows("select ts_code, last_date from watermarks where api = ?", (api,)))

    def symbols(self, statuses: Iterable[str] = ("L",)) -> list[tuple[str, str, str]]:
        """(ts_code, list_date, delist_date) of the symbols with the given list_status."""
        st = list(statuses)
        return [
            (c, ld or "", dd or "")
            for c, ld, dd in self._rows(
                "select ts_code, list_date, delist_date from symbols where list_status in"
                f" ({','.join('?' * len(st))}) order by ts_code",
                st,
            )
        ]

    def table_rows(self) -> dict[str, int]:
        return dict(self._rows("select api, rows from tables"))

    # -- recovery, inspection, dead letters --------------------------------------------------

    def live_units(self, states: Iterable[str] = LIVE) -> list[UnitRecord]:
        st = list(states)
        return self._records(f"state in ({','.join('?' * len(st))})", st)

    def live_ids(self, states: Iterable[str] = LIVE) -> set[str]:
        """Ids of the queues' units (no owner) in `states`: the cheap read for a sweep that
        rarely finds any."""
        st = list(states)
        sql = f"select id from units where state in ({','.join('?' * len(st))}) and owner is null"
        return {uid for (uid,) in self._rows(sql, st)}

    def requeued(self, unit_ids: Iterable[str]) -> None:
        """Units whose task was enqueued again: back to queued, keeping their attempts."""
        with self._tx() as conn:
            self._by_ids(
                conn,
                "update units set state = 'queued', save_id = null, owner = null, updated = ?"
                f" where state in {_LIVE_SQL} and id in ({{ids}})",
                unit_ids,
                self.clock(),
            )

    def purge(self, unit_ids: Iterable[str]) -> int:
        with self._tx() as conn:
            return self._by_ids(
                conn, "delete from units where state = 'dead' and id in ({ids})", unit_ids
            )

    def dead(self, api: str | None = None) -> list[UnitRecord]:
        if api:
            return self._records("state = 'dead' and api = ?", [api])
        return self._records("state = 'dead'", [])

    def get(self, unit_id: str) -> UnitRecord | None:
        found = self._records("id = ?", [unit_id])
        return found[0] if found else None

    def find(self, prefix: str, limit: int = 10) -> list[UnitRecord]:
        """Units whose id starts with `prefix` (ids are long; users type the start)."""
        return self._records("id like ? order by id limit ?", [prefix + "%", limit])

    def batch(self, batch_id: str) -> tuple[str, float, dict[str, int]] | None:
        """(task_type, created, {state: count}) of one enqueue."""
        head = self._rows("select task_type, created from batches where id = ?", (batch_id,))
        if not head:
            return None
        counts = dict(
            self._rows(
                "select state, count(*) from units where batch = ? group by state", (batch_id,)
            )
        )
        return head[0][0], head[0][1], counts

    def prune(self, keep_days: int) -> int:
        """Forget units that finished (saved, split, replaced) more than `keep_days` ago, and
        batches left with no unit. What they covered stays in `coverage`; dead letters stay
        until the user deals with them. Returns the units forgotten."""
        before = self.clock() - keep_days * 86_400
        with self._tx() as conn:
            gone = conn.execute(
                "delete from units where state in ('saved', 'split', 'replaced') and updated < ?",
                (before,),
            ).rowcount
            if gone:
                conn.execute(
                    "delete from batches where created < ? and not exists"
                    " (select 1 from units u where u.batch = batches.id)",
                    (before,),
                )
                conn.execute(
                    "delete from batch_symbols where batch not in (select id from batches)"
                )
        return gone

    def state_counts(self) -> dict[str, dict[str, int]]:
        """{api: {state: count}} over every unit recorded."""
        out: dict[str, dict[str, int]] = {}
        for api, state, n in self._rows("select api, state, count(*) from units group by 1, 2"):
            out.setdefault(api, {})[state] = n
        return out

    def _records(self, where: str, params: list[Any]) -> list[UnitRecord]:
        rows = self._rows(
            "select id, batch, api, codes, params, priority, state, attempts, rows, save_id,"
            f" error, error_class, created, updated, owner from units where {where}",
            params,
        )
        return [
            UnitRecord(
                unit=Unit(
                    api=api,
                    params=json.loads(params_),
                    codes=tuple(c for c in codes.split(",") if c),
                    batch=batch,
                    priority=prio,
                    id=uid,
                ),
                state=state,
                attempts=attempts,
                rows=n,
                save_id=save_id,
                error=error,
                error_class=error_class,
                created=created,
                updated=updated,
                owner=owner,
            )
            for (
                uid,
                batch,
                api,
                codes,
                params_,
                prio,
                state,
                attempts,
                n,
                save_id,
                error,
                error_class,
                created,
                updated,
                owner,
            ) in rows
        ]
