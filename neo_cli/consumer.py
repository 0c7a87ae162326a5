"""A consumer process: `python -m neo_cli.consumer fast|slow --settings FILE`.

Builds the pipeline, attaches what its queue's tasks need, and hands over to Huey's consumer
(thread workers; Huey's graceful signal is SIGINT). The supervisor starts one of each.

Exit codes (the table in neo_cli.errors): 0 stopped; 2 the settings file is missing or invalid;
7 the database cannot be used (corrupt, unwritable) — the supervisor shows the log tail instead
of restarting in a loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import psutil
from huey import signals as S

from neo_cli import __version__, config, logs
from neo_cli.backoff import Backoff
from neo_cli.db.database import Database
from neo_cli.db.saver import BatchSaver, buffer_limit
from neo_cli.db.writer import catalog
from neo_cli.download import build_downloader
from neo_cli.errors import EXIT_DATABASE, EXIT_INPUT, DatabaseUnavailable, NeoError
from neo_cli.ledger import Ledger
from neo_cli.ledger.remote import RemoteLedger, publish_flags
from neo_cli.limits import build_limiters
from neo_cli.metrics import MetricsStore, Recorder, outcomes
from neo_cli.paths import Paths
from neo_cli.pipeline import Pipeline, SlowRuntime
from neo_cli.queues.leases import LeaseKeeper, owner_id
from neo_cli.recovery import LostDownloads
from neo_cli.runstate import hold
from neo_cli.tasktypes import DATASETS, STATEMENTS

log = logging.getLogger("neo.consumer")


def count_signals(pipeline_huey, recorder: Recorder, queue: str) -> None:
    """The slow queue's task figures come from Huey's signals, not from inside the tasks. (A
    download always returns or retries, whatever became of it, so the fast queue's are counted
    where its outcome is classified: `neo_cli.download.count`.)"""
    scope = f"queue:{queue}"
    pipeline_huey.signal(S.SIGNAL_COMPLETE)(
        lambda signal, task, *a: recorder.incr(scope, "tasks_done")
    )
    pipeline_huey.signal(S.SIGNAL_ERROR)(
        lambda signal, task, *a: recorder.incr(scope, "tasks_failed")
    )


class Throttle:
    """Why downloads must pause now ('' when they need not): the save backlog or low memory.
    Checked on every dequeue, so the answer is cached for `EVERY` seconds: on Redis each look
    is a command per task kind, and the backlog moves by a second's downloads at most."""

    EVERY = 1.0

    def __init__(self, pipeline: Pipeline, max_backlog: int, min_free_mb: int):
        self.pipeline, self.max_backlog, self.min_free = pipeline, max_backlog, min_free_mb
        self._at = 0.0
        self._reason = ""
        self._lock = threading.Lock()

    def __call__(self) -> str:
        now = time.monotonic()
        with self._lock:
            if now - self._at < self.EVERY:
                return self._reason
            self._at = now
        backlog = self.pipeline.slow_backlog()
        reason = ""
        if backlog >= self.max_backlog:
            reason = f"save backlog {backlog} >= [fast] max_save_backlog {self.max_backlog}"
        elif self.min_free:
            free_mb = psutil.virtual_memory().available // 2**20
            if free_mb < self.min_free:
                reason = f"free memory {free_mb} MB < [fast] min_free_memory_mb {self.min_free}"
        self._reason = reason
        return reason


def run_fast(settings: config.Settings, pipeline: Pipeline, recorder: Recorder) -> int:
    v = settings.values
    # A download machine (--role fast) has no ledger: it sends what it would write to the
    # machine that keeps it (neo_cli.ledger.remote).
    remote = v["supervisor"]["role"] == "fast"
    ledger = RemoteLedger(pipeline) if remote else Ledger(pipeline.paths.ledger)
    # A worker waiting for its call slot (up to a minute at a low limit) wakes when the
    # consumer is told to stop, gives the slot up and lets its task be rescheduled.
    stopping = threading.Event()
    downloader = build_downloader(
        settings, ledger, recorder, build_limiters(settings, sleep=stopping.wait)
    )
    limiters, provider = downloader.limiters, downloader.provider
    pipeline.attach_fast(
        downloader,
        Throttle(pipeline, v["fast"]["max_save_backlog"], v["fast"]["min_free_memory_mb"]),
    )
    recorder.probes["paused"] = limiters.pauses
    huey = pipeline.fast
    lost = None
    if not huey.storage.has_leases:  # on Redis the slow consumer sweeps, for every machine
        lost = LostDownloads(
            pipeline,
            ledger,
            lambda: {t.id for t in list(huey._tasks_in_flight)},
            v["fast"]["lost_sweep_seconds"],
        ).start()
    try:
        return serve(
            huey,
            v["fast"]["workers"],
            recorder,
            max_delay=0.25,
            stopping=stopping,
            role=v["supervisor"]["role"],
        )
    finally:
        if lost is not None:
            lost.stop()
        provider.close()
        ledger.close()


def run_slow(settings: config.Settings, pipeline: Pipeline, recorder: Recorder) -> int:
    v = settings.values
    database = Database(pipeline.paths.database, memory_limit=v["slow"]["memory_limit"])
    ledger = Ledger(pipeline.paths.ledger)
    if not prepare(database, ledger, recorder):
        return EXIT_DATABASE
    saver = BatchSaver(
        database,
        ledger,
        recorder,
        batch_size=v["slow"]["batch_size"],
        batch_timeout=v["slow"]["batch_timeout"],
        idle_flush=v["slow"]["idle_flush"],
        hold=v["slow"]["hold_seconds"],
    ).start()
    pipeline.attach_slow(
        SlowRuntime(saver, recorder, ledger),
        max_buffered_rows=buffer_limit(v["slow"]["batch_size"]),
    )
    recorder.probes["buffered_rows"] = lambda: saver.buffered_rows
    lost = None
    if pipeline.fast.storage.has_leases:
        # Queues on Redis: downloads run on any machine, leased; this one, which keeps the
        # ledger, looks for any the queue lost (in no queue and under no lease, twice).
        publish_flags(pipeline, ledger, STATEMENTS)
        lost = LostDownloads(
            pipeline, ledger, lambda: set(), v["fast"]["lost_sweep_seconds"]
        ).start()
    try:
        return serve(
            pipeline.slow,
            v["slow"]["workers"],
            recorder,
            max_delay=0.5,
            role=v["supervisor"]["role"],
            summary=lambda: ledger_summary(ledger, recorder),
        )
    finally:
        if lost is not None:
            lost.stop()
        saver.close()
        ledger.close()


def ledger_summary(ledger: Ledger, recorder: Recorder) -> dict:
    """For `neo status` on machines without the ledger: units on their way, dead letters and
    rows saved, per interface."""
    counts = ledger.state_counts()
    totals = recorder.store.totals() if recorder.store is not None else {}
    return {
        "units_in_progress": ledger.live_count(),
        "dead_lettered": {api: s.get("dead", 0) for api, s in counts.items() if s.get("dead")},
        "rows_saved": {scope: n for (scope, name), n in totals.items() if name == "rows"},
        "table_rows": ledger.table_rows(),
    }


def prepare(database: Database, ledger: Ledger, recorder: Recorder) -> bool:
    """Create the schema and rebuild the catalog from what the database holds. A lock held by
    another program is waited out; a corrupt or unwritable file ends the consumer."""
    backoff = Backoff(1.0, 30.0)
    while True:
        try:
            database.ensure_schema()
            with database.writer() as conn:
                ledger.rebuild_catalog(*catalog(conn, list(DATASETS.values())))
            recorder.gauge("db_error", "")
            return True
        except DatabaseUnavailable as exc:
            recorder.gauge("db_error", str(exc))
            recorder.flush()
            if not exc.locked:
                log.error("%s", exc)
                print(f"neo slow consumer: {exc}", file=sys.stderr)
                return False
            delay = backoff.next()
            log.warning("%s; retrying in %.0fs", exc, delay)
            time.sleep(delay)


def serve(
    huey,
    workers: int,
    recorder: Recorder,
    max_delay: float,
    stopping=None,
    role: str = "all",
    summary=None,
) -> int:
    """Run Huey's consumer until it is stopped; `stopping` (an Event) is set when it is. On
    a storage with leases, this consumer's are kept alive meanwhile and dead ones reaped."""
    keeper = None
    if huey.storage.has_leases:
        huey.storage.owner = owner_id(huey.name)
        head = {
            "id": huey.storage.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queue": huey.name,
            "role": role,
            "version": __version__,
            "workers": workers,
            "data_dir": str(huey.storage.data_dir),
            "started": time.time(),
        }

        def record() -> dict:
            """Who this is, and its own figures of the last minute (the cluster's are sums);
            the database machine adds what only its ledger and metrics know."""
            window = recorder.recent(started=head["started"])
            done, failures = outcomes(huey.name, window.per_min)
            return {
                **head,
                **(summary() if summary is not None else {}),
                "in_flight": len(huey._tasks_in_flight),
                "done_per_min": done,
                "failed_per_min": sum(failures.values()),
                "failures_per_min": failures,
                "calls_per_min": window.by_scope("calls"),
            }

        keeper = LeaseKeeper(
            huey.storage, huey.storage.owner, huey.storage.lease / 3, record
        ).start()
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="thread",
        initial_delay=0.05,
        backoff=1.15,
        max_delay=max_delay,
        scheduler_interval=1,
        periodic=False,
        check_worker_health=True,
    )
    if stopping is not None:

        def relay() -> None:
            consumer.stop_flag.wait()
            stopping.set()

        threading.Thread(target=relay, name="stop-relay", daemon=True).start()
    recorder.probes["in_flight"] = lambda: len(huey._tasks_in_flight)
    recorder.probes["heartbeat"] = time.time
    log.info("%s consumer up: pid %d, %d workers", huey.name, os.getpid(), workers)
    try:
        consumer.run()
    finally:
        if keeper is not None:
            keeper.stop()
    log.info("%s consumer stopped", huey.name)
    return 0


def watch_parent(parent: int) -> None:
    """A consumer outliving its supervisor would run unsupervised and block the next start:
    when the supervisor is gone, stop gracefully (as if `neo stop` had asked)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.error("supervisor (pid %d) is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)
    parser = argparse.ArgumentParser(prog="neo-consumer")
    parser.add_argument("queue", choices=("fast", "slow"))
    parser.add_argument("--settings", required=True, type=Path)
    parser.add_argument("--parent", type=int, default=0, help="stop when this process is gone")
    args = parser.parse_args(argv)
    try:
        settings = config.restore(json.loads(args.settings.read_text()))
    except (OSError, ValueError, NeoError) as exc:
        print(
            f"neo {args.queue} consumer: bad settings file {args.settings}: {exc}", file=sys.stderr
        )
        return EXIT_INPUT
    paths = Paths(settings.data_dir).ensure()
    logs.to_file(paths, args.queue)
    hold(
        paths,
        args.queue,
        lambda: log.warning("waiting for the previous %s consumer to finish stopping", args.queue),
    )
    pipeline = Pipeline(settings)
    recorder = Recorder(MetricsStore(paths.metrics), args.queue)
    recorder.gauge("pid", os.getpid())
    recorder.gauge("started", time.time())
    if args.queue == "slow":
        count_signals(pipeline.slow, recorder, "slow")
    recorder.start()
    if args.parent:
        watch_parent(args.parent)
    try:
        run = run_fast if args.queue == "fast" else run_slow
        return run(settings, pipeline, recorder)
    finally:
        recorder.gauge("heartbeat", 0)
        recorder.probes.pop("heartbeat", None)
        recorder.stop()


if __name__ == "__main__":
    sys.exit(main())
