"""Opening the DuckDB file, for the one writer and for readers.

DuckDB lets one process hold a file read-write, and while it does, no other process can open it
at all. So the writer opens the file for the length of one flush and closes it (tens of
milliseconds); between flushes anyone may read it — `neo query`, a notebook, the duckdb CLI.
Readers that keep the file open block the writer, which then retries and shows it in
`neo status`; neo's own commands never open it while consumers run: they read the catalog.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from neo_cli.backoff import Backoff
from neo_cli.db.schema import all_ddl
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
    return "Could not set lock" in str(exc) or "Conflicting lock" in str(exc)


class Database:
    """The DuckDB file at `path`."""

    def __init__(self, path: Path, memory_limit: str = "512MB", threads: int = 2):
        self.path = path
        self.config = {"memory_limit": memory_limit, "threads": threads}

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
        try:
            turn = FileLock(self.path.with_name(self.path.name + ".writer"), wait).__enter__()
        except TimeoutError:
            raise DatabaseUnavailable(
                f"database {self.path} is being written by another neo process "
                f"(waited {wait:g}s for its turn)",
                locked=True,
            ) from None
        try:
            conn = self._open(read_only=False)
            try:
                yield conn
            finally:
                conn.close()
        finally:
            turn.__exit__()

    def ensure_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.writer() as conn:
            for ddl in all_ddl():
                conn.execute(ddl)

    @contextmanager
    def reader(
        self, wait: float = 10.0, sleep: Callable[[float], object] = time.sleep
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, waiting up to `wait` seconds for a flush to finish."""
        if not self.path.exists():
            raise DatabaseUnavailable(f"database {self.path} does not exist yet: nothing saved")
        deadline = time.monotonic() + wait
        backoff = Backoff(0.02, 0.5)
        while True:
            try:
                conn = duckdb.connect(str(self.path), read_only=True)
                break
            except (duckdb.Error, OSError) as exc:
                if not is_locked(exc) or time.monotonic() >= deadline:
                    raise DatabaseUnavailable(explain(self.path, exc), is_locked(exc)) from None
                sleep(backoff.next())
        try:
            yield conn
        finally:
            conn.close()
