"""The batch saver: the slow consumer's buffer between save tasks and the DuckDB file.

Save tasks add frames under a lock and return at once. One flusher thread — the only code in neo
that writes the database — takes everything buffered when any table's buffer reaches
`batch_size` rows or its oldest frame is `batch_timeout` seconds old, and writes it in one
transaction. Only after that commit does the ledger mark the units saved, in one transaction with
the catalog. A flush that fails (the file locked by a reader, disk full) keeps its frames, backs
off and tries again; it is never dropped, and while it keeps failing `healthy` is False so the
slow queue stops taking more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neo_cli.db.database import Database
from neo_cli.db.writer import Part, WriteResult, write
from neo_cli.errors import DatabaseUnavailable
from neo_cli.ledger import Ledger
from neo_cli.metrics import Recorder
from neo_cli.tasktypes import dataset, table_of

log = logging.getLogger("neo.saver")


def buffer_limit(batch_size: int) -> int:
    """Rows the slow consumer holds (buffered and being flushed) before it stops taking save
    tasks: five batches, and at least 50,000 rows, so a flush that finds a backlog writes it
    in one transaction (a commit to a keyed table costs as much as 1,000 rows do)."""
    return max(5 * batch_size, 50_000)


@dataclass
class _Group:
    parts: list[Part] = field(default_factory=list)
    rows: int = 0
    since: float = 0.0  # when its oldest part arrived
    last: float = 0.0  # when its newest part arrived


class BatchSaver:
    def __init__(
        self,
        database: Database,
        ledger: Ledger,
        recorder: Recorder,
        *,
        batch_size: int,
        batch_timeout: float,
        idle_flush: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        hold: float = 1.0,
    ):
        self.database = database
        self.ledger = ledger
        self.recorder = recorder
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.idle_flush = batch_timeout if idle_flush is None else min(idle_flush, batch_timeout)
        self.clock = clock
        self.sleep = sleep
        self.retry_base, self.retry_max = retry_base, retry_max
        self.hold = hold  # most seconds the file stays open across back-to-back flushes
        self._cond = threading.Condition()
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._buffered = 0
        self._flushing = 0
        self._stopping = False
        self._failures = 0
        self._retry_at = 0.0
        self.last_error = ""
        self._thread: threading.Thread | None = None
        self._counted: dict[str, int] = {}  # rows per table, on connection `_counted_on`
        self._counted_on: object = None

    # -- called by save tasks ---------------------------------------------------------------

    def add(self, api: str, fields: tuple[str, ...], items: list[list[Any]], unit_id: str) -> None:
        """Buffer one unit's rows; `api` is the interface that fetched them (its table's)."""
        with self._cond:
            group = self._groups[table_of(api)]
            if not group.parts:
                group.since = self.clock()
            group.last = self.clock()
            group.parts.append(Part(tuple(fields), items, unit_id))
            group.rows += len(items)
            self._buffered += len(items)
            if group.rows >= self.batch_size:
                self._cond.notify()

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory: buffered, plus those of a flush still being written."""
        return self._buffered + self._flushing

    @property
    def flushing_rows(self) -> int:
        """Rows of the flush being written now (0 between flushes)."""
        return self._flushing

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    # -- the flusher --------------------------------------------------------------------------

    def _due_in(self, now: float) -> float:
        """Seconds until the next flush is due (0 = now); inf when nothing is buffered.

        A table's rows are due at `batch_size` rows, or `batch_timeout` after the oldest
        arrived — or `idle_flush` after the newest, when no more are coming: batching pays
        under load, and an idle saver has no reason to sit on rows."""
        due = float("inf")
        for g in self._groups.values():
            if g.parts:
                if g.rows >= self.batch_size:
                    return 0.0 if not self._failures else max(0.0, self._retry_at - now)
                due = min(due, g.since + self.batch_timeout - now, g.last + self.idle_flush - now)
        if self._failures:
            due = max(due, self._retry_at - now)
        return max(due, 0.0)

    def _take(self) -> dict[str, _Group]:
        taken = {api: g for api, g in self._groups.items() if g.parts}
        self._groups = defaultdict(_Group)
        self._flushing = self._buffered
        self._buffered = 0
        return taken

    def _put_back(self, taken: dict[str, _Group]) -> None:
        """Return a failed flush's rows ahead of newer ones, keeping when they arrived, so
        the retry is due when the back-off ends, not a whole batch_timeout later."""
        for api, old in taken.items():
            group = self._groups[api]
            group.since = min(old.since, group.since) if group.parts else old.since
            group.last = max(old.last, group.last)
            group.parts[:0] = old.parts
            group.rows += old.rows
            self._buffered += old.rows

    def start(self) -> BatchSaver:
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()
        return self

    HOLD_POLL = 0.02  # seconds between looks for a reader asking, while the file is held

    def _run(self) -> None:
        """Flush when due. While rows keep coming the file stays open between flushes until
        it is `hold` seconds old or a reader asks: closing it checkpoints the WAL, which cost
        a quarter of the flusher's time when it closed after every flush that found less
        than a batch waiting (under load, the next batch was arriving while it closed)."""
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._due_in(self.clock())
                    if wait <= 0:
                        break
                    left = self.database.held_left(self.hold)
                    if left == 0:
                        break
                    poll = 1.0 if left is None else min(left, self.HOLD_POLL)
                    self._cond.wait(timeout=min(wait, poll))
                if self._stopping:
                    return
            if wait > 0:
                self.database.let_go()
            else:
                self._flush(keep=True)

    def flush(self) -> bool:
        """Write everything buffered now; True when it was written (or nothing was due). The
        file is closed after it unless another flush is due at once."""
        return self._flush(keep=False)

    def _flush(self, keep: bool) -> bool:
        """`flush`; with `keep`, the file stays open for the flusher to close (`_run`)."""
        with self._cond:
            taken = self._take()
        if not taken:
            return True
        started = self.clock()
        try:
            results = self._write({api: g.parts for api, g in taken.items()})
        except Exception as exc:  # noqa: BLE001 - any failure keeps the data and retries
            reason = (
                str(exc) if isinstance(exc, DatabaseUnavailable) else f"{type(exc).__name__}: {exc}"
            )
            with self._cond:
                self._flushing = 0
                self._put_back(taken)
                self._failures += 1
                delay = min(self.retry_max, self.retry_base * 2 ** (self._failures - 1))
                self._retry_at = self.clock() + delay
                self.last_error = reason
            self.recorder.incr("saver", "batch_failures")
            self.recorder.observe("saver", "flush_seconds", self.clock() - started)
            for api in taken:
                self.recorder.incr(api, "batch_failures")
            self.recorder.gauge("db_error", reason)
            log.warning(
                "flush of %d rows failed (%s); retrying in %.0fs",
                sum(g.rows for g in taken.values()),
                reason,
                delay,
            )
            return False
        with self._cond:
            self._flushing = 0
            self._failures = 0
            self.last_error = ""
            more = self._due_in(self.clock()) == 0
            coming = self._buffered > 0  # rows have come during the flush: more will follow
        # The file stays open for a flush already due, or (the flusher's) for one that rows
        # are on their way to; with nothing buffered it is closed before the ledger says
        # saved, so whoever waits for that finds the file free.
        if not (more or (keep and coming)):
            self.database.let_go()
        self.recorder.gauge("db_error", "")
        self._record({api: g.parts for api, g in taken.items()}, results, self.clock() - started)
        return True

    def _write(self, taken: dict[str, list[Part]]) -> dict[str, WriteResult]:
        results: dict[str, WriteResult] = {}
        with self.database.held(self.hold) as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                for api, parts in taken.items():
                    results[api] = write(conn, dataset(api), parts)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if conn is not self._counted_on:  # opened afresh: another writer may have been in
                self._counted, self._counted_on = {}, conn
            for api, r in results.items():
                table = dataset(api).table
                if table in self._counted:  # a count(*) a flush, kept by arithmetic instead
                    self._counted[table] += r.rows - r.replaced
                else:
                    [(self._counted[table],)] = conn.execute(
                        f"SELECT count(*) FROM {table}"
                    ).fetchall()
            self._table_rows = {api: self._counted[dataset(api).table] for api in taken}
        return results

    def _record(
        self, taken: dict[str, list[Part]], results: dict[str, WriteResult], seconds: float
    ) -> None:
        unit_ids = [p.unit_id for parts in taken.values() for p in parts]
        symbols = [s for r in results.values() for s in r.symbols]
        marks = {api: r.watermarks for api, r in results.items() if r.watermarks}
        set_aside = {api: r.set_aside for api, r in results.items() if r.set_aside}
        # The rows are committed: the ledger must say so, or the units stay "saving" until a
        # restart re-downloads them. Keep trying (the flusher waits meanwhile, so nothing
        # else is written past an unrecorded flush); give up only when stopping.
        attempt = 0
        while True:
            try:
                self.ledger.record_flush(unit_ids, marks, symbols, self._table_rows, set_aside)
                break
            except Exception as exc:  # noqa: BLE001
                attempt += 1
                if self._stopping and attempt >= 3:
                    log.error(
                        "ledger update after flush failed (%s); its %d units will be "
                        "downloaded again at the next start",
                        exc,
                        len(unit_ids),
                    )
                    break
                log.warning("ledger update after flush failed (%s), attempt %d", exc, attempt)
                self.sleep(min(30.0, 0.5 * 2**attempt))
        rows = 0
        for api, r in results.items():
            self.recorder.incr(api, "rows", r.rows)
            self.recorder.incr(api, "replaced", r.replaced)
            self.recorder.incr(api, "quarantined", r.quarantined)
            self.recorder.incr(api, "batches")
            rows += r.rows
        self.recorder.incr("saver", "batches")
        self.recorder.observe("saver", "flush_seconds", seconds)
        log.info(
            "flushed %d rows for %d units in %.3fs (%s)",
            rows,
            len(unit_ids),
            seconds,
            ", ".join(f"{a}={r.rows}" for a, r in results.items()),
        )

    def close(self, deadline: float = 30.0) -> bool:
        """Stop the flusher and write what is left; False if it could not be written."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        try:
            return self._drain(deadline)
        finally:
            self.database.let_go()

    def _drain(self, deadline: float) -> bool:
        end = self.clock() + deadline
        while True:
            with self._cond:
                empty = not self._buffered and not any(g.parts for g in self._groups.values())
                retry_at = self._retry_at
            if empty:
                return True
            if self.clock() >= end:
                log.error(
                    "could not write %d buffered rows before stopping: %s; "
                    "their units will be downloaded again at the next start",
                    self._buffered,
                    self.last_error,
                )
                return False
            self.sleep(max(0.0, min(retry_at - self.clock(), end - self.clock(), 5.0)))
            self.flush()
