"""Opening the DuckDB file, for the one writer and for readers.

DuckDB lets one process hold a file read-write, and while it does, no other process can open it
at all. So the writer holds the file only while flushes follow one another (`held()`): opening
and closing it cost ~60 ms a flush, more than writing 1,000 rows. It lets go as soon as no
flush is due, at the latest `hold` seconds after opening, and at once when a reader asks —
`Database.reader()` (what `neo query` uses) leaves a request file beside the database, and the
writer does not open it again until that reader is in or gone. Between times anyone may read
it: `neo query`, a notebook, the duckdb CLI. Readers that keep the file open block the writer,
which then retries and shows it in `neo status`; neo's own commands never open it while
consumers run: they read the catalog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from neo_cli.backoff import Backoff
from neo_cli.db.schema import all_ddl, keyed_tables, unkey
from neo_cli.errors import DatabaseUnavailable
from neo_cli.locks import FileLock


def explain(path: Path, exc: Exception) -> str:
    """One line saying why the database could not be opened."""
    text = str(exc)
    held = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", text)
    if held:
        return (
            f"database {path} is locked by another program ({held.group(1)}, pid {held.group(2)})"
        )
    if "not a valid DuckDB database" in text:
        return f"database {path} is not a valid DuckDB file (corrupt, or another kind of file)"
    if "Permission denied" in text or "Read-only file system" in text:
        return f"database {path} is not writable: {text.splitlines()[0]}"
    return f"database {path} could not be opened: {text.splitlines()[0]}"


def is_locked(exc: Exception) -> bool:
    """The file is held by a writer: another process's (a lock), or this process's own (its
    connection's configuration differs), which lets go when asked just the same."""
    text = str(exc)
    return any(
        m in text for m in ("Could not set lock", "Conflicting lock", "different configuration")
    )


log = logging.getLogger("neo.database")
READ_WANTED_FOR = 10.0  # seconds a reader's request keeps the writer out (a dead reader's ends)
# Seconds the file stays closed each time the writer lets go: a reader that only retries (the
# duckdb CLI, a notebook, another program) would otherwise seldom find it free under load.
READER_GAP = 0.05


class Database:
    """The DuckDB file at `path`."""

    def __init__(self, path: Path, memory_limit: str = "512MB", threads: int = 2):
        self.path = path
        self.config = {"memory_limit": memory_limit, "threads": threads}
        self.read_wanted = path.with_name(path.name + ".read")
        self._held: tuple[FileLock, duckdb.DuckDBPyConnection, float] | None = None
        self._held_lock = threading.Lock()
        self._released_at = float("-inf")  # when a held connection was last closed

    def _reader_waiting(self) -> bool:
        try:
            return time.time() - self.read_wanted.stat().st_mtime < READ_WANTED_FOR
        except OSError:
            return False

    @contextmanager
    def held(self, hold: float, wait: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one flush, kept for the next one while it is younger
        than `hold` seconds and no reader asked for the file (`let_go()` closes it). A
        failure inside closes it: the next flush starts from a fresh connection."""
        with self._held_lock:
            if self._held is not None and self._left(hold) == 0:
                self._close_held()
            if self._held is None:
                time.sleep(max(0.0, self._released_at + READER_GAP - time.monotonic()))
                deadline = time.monotonic() + 1.0
                while self._reader_waiting() and time.monotonic() < deadline:
                    time.sleep(0.01)  # a reader asked first: let it in
                turn = self._turn(wait)
                try:
                    conn = self._open(read_only=False)
                except BaseException:
                    turn.__exit__()
                    raise
                self._held = (turn, conn, time.monotonic())
            conn = self._held[1]
            try:
                yield conn
            except BaseException:
                self._close_held()
                raise

    def held_left(self, hold: float) -> float | None:
        """Seconds the held connection may stay open (`held`'s rule: younger than `hold`, no
        reader asking); 0 when it is due to close, None when none is held."""
        with self._held_lock:
            return None if self._held is None else self._left(hold)

    def _left(self, hold: float) -> float:
        """Of the held connection (under `_held_lock`): 0 once `hold` old or a reader asks."""
        if self._reader_waiting():
            return 0.0
        return max(0.0, self._held[2] + hold - time.monotonic())

    def let_go(self) -> None:
        """Close a held connection (checkpointing it), so readers may open the file."""
        with self._held_lock:
            self._close_held()

    def _close_held(self) -> None:
        if self._held is not None:
            turn, conn, _ = self._held
            self._held = None
            try:
                conn.close()
            finally:
                turn.__exit__()
                self._released_at = time.monotonic()

    def _turn(self, wait: float) -> FileLock:
        try:
            return FileLock(self.path.with_name(self.path.name + ".writer"), wait).__enter__()
        except TimeoutError:
            raise DatabaseUnavailable(
                f"database {self.path} is being written by another neo process "
                f"(waited {wait:g}s for its turn)",
                locked=True,
            ) from None

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            if read_only:
                return duckdb.connect(str(self.path), read_only=True)
            return duckdb.connect(str(self.path), config=dict(self.config))
        except (duckdb.Error, OSError) as exc:
            raise DatabaseUnavailable(explain(self.path, exc), locked=is_locked(exc)) from None

    @contextmanager
    def writer(self, wait: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one flush; closed (and checkpointed) on exit.

        neo's writers (the slow consumer, inline runs) take turns through a lock file beside
        the database, waiting up to `wait` seconds: DuckDB itself refuses a second writer at
        once instead of waiting for it."""
        turn = self._turn(wait)
        try:
            conn = self._open(read_only=False)
            try:
                yield conn
            finally:
                conn.close()
        finally:
            turn.__exit__()

    def ensure_schema(self) -> None:
        """Create what is missing; rebuild without its primary key a table an earlier neo
        made with one (once; a failed rebuild leaves it keyed, which works, only slower)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.writer() as conn:
            for ddl in all_ddl():
                conn.execute(ddl)
            keyed = keyed_tables(conn)
            for d in keyed:
                started = time.monotonic()
                try:
                    unkey(conn, d)
                except duckdb.Error as exc:
                    log.warning("%s keeps its primary key: rebuild failed: %s", d.table, exc)
                    continue
                log.info("%s rebuilt without its primary key in %.1fs", d.table,
                         time.monotonic() - started)  # fmt: skip
            if keyed:
                for ddl in all_ddl():  # the views, over the rebuilt tables
                    conn.execute(ddl)

    @contextmanager
    def reader(
        self, wait: float = 10.0, sleep: Callable[[float], object] = time.sleep
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, waiting up to `wait` seconds for a flush to finish."""
        if not self.path.exists():
            raise DatabaseUnavailable(f"database {self.path} does not exist yet: nothing saved")
        deadline = time.monotonic() + wait
        backoff = Backoff(0.02, 0.2)
        asked = False
        try:
            while True:
                try:
                    conn = duckdb.connect(str(self.path), read_only=True)
                    break
                except (duckdb.Error, OSError) as exc:
                    if not is_locked(exc) or time.monotonic() >= deadline:
                        raise DatabaseUnavailable(explain(self.path, exc), is_locked(exc)) from None
                    if not asked:  # the writer lets go at its next flush, and waits for us
                        self.read_wanted.touch()
                        asked = True
                    sleep(backoff.next())
        finally:
            if asked:
                with contextlib.suppress(OSError):
                    os.unlink(self.read_wanted)
        try:
            yield conn
        finally:
            conn.close()
