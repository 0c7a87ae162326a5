"""What `neo status` shows, gathered from the state file, the queues, the ledger and the metrics
store — never from the DuckDB file, which the slow consumer may be writing.

`collect()` returns plain data (the `--json` schema, version 2; `/api/status` serves the same);
the CLI renders it. Version 2: `failed_per_min` counts failures (named in `failures_per_min`),
rates are over the last `metrics.RATE_SECONDS`, `totals` and `version` are new.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

from neo_cli import __version__
from neo_cli.config import Settings
from neo_cli.errors import LimiterUnavailable, QueueUnavailable
from neo_cli.ledger import LIVE, Ledger
from neo_cli.limits import make_backend
from neo_cli.metrics import CALL_OUTCOMES, MetricsStore, Window, outcomes
from neo_cli.paths import Paths
from neo_cli.queues.counts import sqlite_counts
from neo_cli.runstate import lock_is_held, read_state, running_settings
from neo_cli.schedule import scheduler
from neo_cli.schedule.book import SqliteRunBook
from neo_cli.schedule.update import Schedule
from neo_cli.tasktypes import INTERFACES, VIP, VIP_OF

if TYPE_CHECKING:
    from neo_cli.pipeline import Pipeline

SCHEMA_VERSION = 2
STALE_AFTER = 10.0  # seconds without a heartbeat before a consumer's gauges are ignored


class ProcessSampler:
    """CPU % needs two readings; `--watch` keeps one sampler across refreshes."""

    def __init__(self):
        self._procs: dict[int, psutil.Process] = {}
        self._first_reading = float("-inf")  # time.monotonic() of the latest first reading

    def watch(self, pids: list[int]) -> None:
        """Take the first reading of processes not seen before: work done between this and
        `sample()` shortens the wait for the second."""
        fresh = [p for p in pids if p not in self._procs]
        for pid in fresh:
            try:
                self._procs[pid] = psutil.Process(pid)
                self._procs[pid].cpu_percent(None)
            except psutil.Error:
                pass
        if fresh:
            self._first_reading = time.monotonic()

    def sample(self, pids: list[int], first_wait: float = 0.05) -> dict[int, dict[str, Any]]:
        """{pid: cpu_percent, rss_mb}, the CPU % over at least `first_wait` seconds."""
        self.watch(pids)
        left = self._first_reading + first_wait - time.monotonic()
        if left > 0:
            time.sleep(left)
        out = {}
        for pid in pids:
            proc = self._procs.get(pid)
            if proc is None:
                continue
            try:
                with proc.oneshot():
                    out[pid] = {
                        "cpu_percent": round(proc.cpu_percent(None), 1),
                        "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                    }
            except psutil.Error:
                self._procs.pop(pid, None)
        return out


def limiter_view(settings: Settings, paths: Paths) -> tuple[dict[str, str], dict[str, str]]:
    """({backend, error}, {api: why it is paused}) read from the shared limiter itself, so a
    pause or stop seen by any process on the budget shows, consumers running or not. Quick:
    never more than half a second on an unreachable Redis; creates nothing."""
    kind = settings.values["limiter"]["backend"]
    view = {"backend": kind, "error": ""}
    if kind == "local" and not paths.limiter.exists():
        return view, {}
    paused: dict[str, str] = {}
    backend = make_backend(settings, timeout=0.5)
    try:
        view["backend"] = backend.describe()
        for api in INTERFACES:
            _, left, reason = backend.state(api)
            if left > 0:
                paused[api] = reason
    except LimiterUnavailable as exc:
        view["error"] = str(exc)
    finally:
        backend.close()
    return view, paused


def process_ids(state: dict[str, Any]) -> list[int]:
    """The supervisor's and the consumers' pids in the state file."""
    procs = [state.get("supervisor", {}), *state.get("consumers", {}).values()]
    return [p["pid"] for p in procs if p.get("pid")]


def queues_for(settings: Settings) -> Pipeline | None:
    """What `collect` reads the queues through: on Redis, the storages (kept by a caller that
    collects again, for their connections); on SQLite nothing — it reads the files itself,
    without Huey (see neo_cli.queues.counts). None, too, before the data directory exists."""
    if settings.values["queue"]["storage"] == "sqlite" or not settings.data_dir.exists():
        return None
    from neo_cli.pipeline import Pipeline

    return Pipeline(settings)


def collect(
    settings: Settings, sampler: ProcessSampler | None = None, pipeline: Pipeline | None = None
) -> dict[str, Any]:
    paths = Paths(settings.data_dir)
    now = time.time()
    running = paths.run.exists() and lock_is_held(paths)
    state = read_state(paths) if running else None
    sampler = sampler or ProcessSampler()
    if state:  # the first CPU reading now: the queries below take the time CPU % needs
        sampler.watch(process_ids(state))
    # A health check must not create what it checks: no data directory, nothing queued.
    if pipeline is None:
        pipeline = queues_for(settings)
    on_file = pipeline is None and settings.values["queue"]["storage"] == "sqlite"

    # Rates of each queue's counters since its consumer started, when that was recent.
    consumers = state.get("consumers", {}) if state else {}
    gauges: dict[str, dict[str, tuple[Any, float]]] = {}
    windows = {q: Window({}, 0.0) for q in ("fast", "slow")}
    totals: dict[tuple[str, str], int] = {}
    if paths.metrics.exists():
        store = MetricsStore(paths.metrics)
        try:
            gauges, totals = store.gauges(), store.totals()
            for q in windows:
                windows[q] = store.recent(
                    started=consumers.get(q, {}).get("started"), process=q if running else ""
                )
        finally:
            store.close()
    fast_w = windows["fast"]

    def live_gauge(process: str, name: str, default: Any = None) -> Any:
        g = gauges.get(process, {})
        beat = g.get("heartbeat", (0, 0))[0] or 0
        if not running or now - float(beat) > STALE_AFTER:
            return default
        return g.get(name, (default, 0))[0]

    queues = {}
    by_kind: dict[str, dict[str, tuple[int, int]]] = {}
    queue_error = ""
    cluster: list[dict[str, Any]] = []
    for name in ("fast", "slow"):
        huey = getattr(pipeline, name, None)
        counts: dict[str, tuple[int, int]] = {}
        if on_file:
            counts = sqlite_counts(paths.queue_file(name), name)
        elif huey is not None and not queue_error:
            try:
                counts = huey.storage.counts_by_kind()
                if name == "fast":
                    cluster = huey.storage.consumers()
            except QueueUnavailable as exc:  # the queues' Redis away: say so
                queue_error = str(exc)
        by_kind[name] = counts
        done, failures = outcomes(name, windows[name].per_min)
        done_total, failed_total = outcomes(name, lambda s, n: totals.get((s, n), 0))
        queues[name] = {
            "pending": sum(p for p, _ in counts.values()),
            "scheduled": sum(s for _, s in counts.values()),
            "in_flight": live_gauge(name, "in_flight", 0),
            "done_per_min": done,
            "failed_per_min": sum(failures.values()),
            "failures_per_min": failures,
            "throttled": live_gauge(name, "throttled", "") or "",
            "totals": {"done": done_total, "failed": failed_total},
        }
    # On Redis every consumer publishes its own figures: the cluster's are their sums.
    live_fast = [c for c in cluster if c.get("queue") == "fast" and not c["lost"]]
    live_slow = [c for c in cluster if c.get("queue") == "slow" and not c["lost"]]
    if cluster:
        for name, members in (("fast", live_fast), ("slow", live_slow)):
            q = queues[name]
            q["in_flight"] = sum(c.get("in_flight", 0) for c in members)
            q["done_per_min"] = sum(c.get("done_per_min", 0) for c in members)
            q["failures_per_min"] = {
                k: sum(c.get("failures_per_min", {}).get(k, 0) for c in members)
                for k in q["failures_per_min"]
            }
            q["failed_per_min"] = sum(q["failures_per_min"].values())
    slow_buffer = live_gauge("slow", "buffered_rows", 0)
    queues["slow"]["buffered_rows"] = slow_buffer

    ledger_counts: dict[str, dict[str, int]] = {}
    table_rows: dict[str, int] = {}
    in_progress = 0
    vip_refused: dict[str, str] = {}
    if paths.ledger.exists():
        ledger = Ledger(paths.ledger)
        try:
            ledger_counts = ledger.state_counts()
            table_rows = ledger.table_rows()
            # = ledger.live_count(), from the counts just read: one scan of the units, not two
            in_progress = sum(n for c in ledger_counts.values() for s, n in c.items() if s in LIVE)
            vip_refused = {api: ledger.vip_refused(api) for api in VIP_OF}
        finally:
            ledger.close()

    writers = [c for c in live_slow if "units_in_progress" in c]
    if writers and not paths.ledger.exists():  # a download machine: the writer's figures
        w = writers[0]
        in_progress = w["units_in_progress"]
        table_rows = w.get("table_rows", {})
        ledger_counts = {api: {"dead": n} for api, n in w.get("dead_lettered", {}).items()}
        totals = {**totals, **{(api, "rows"): n for api, n in w.get("rows_saved", {}).items()}}

    limiter, paused = limiter_view(settings, paths)
    if not limiter["error"]:
        paused = {**(live_gauge("fast", "paused", {}) or {}), **paused}
    limits = settings.rate_limits
    types = {}
    eta = 0.0
    for api in INTERFACES:
        calls = fast_w.per_min(api, "calls")
        if cluster:
            calls = sum(c.get("calls_per_min", {}).get(api, 0) for c in live_fast)
        pending, scheduled = by_kind["fast"].get(api, (0, 0))
        if api in VIP and not (
            calls or pending + scheduled or paused.get(api) or ledger_counts.get(api)
        ):
            continue  # a whole-market statement interface never used here: no line for it
        batches = totals.get((api, "batches"), 0)
        failures = totals.get((api, "batch_failures"), 0)
        rate = calls if calls else limits[api]
        if pending + scheduled:
            eta = max(eta, (pending + scheduled) / rate * 60)
        types[api] = {
            "pending": pending,
            "scheduled": scheduled,
            "calls_per_min": calls,
            "limit_per_min": limits[api],
            "rejected_per_min": fast_w.per_min(api, "calls_rate_limited"),
            "retries_per_min": fast_w.per_min(api, "retried"),
            "dead_per_min": fast_w.per_min(api, "dead"),
            "calls_total": totals.get((api, "calls"), 0),
            "calls_by_outcome": {o: totals.get((api, f"calls_{o}"), 0) for o in CALL_OUTCOMES},
            "limiter_wait_seconds_total": round(totals.get((api, "wait_ms"), 0) / 1000, 3),
            "rows_saved": totals.get((api, "rows"), 0),
            "table_rows": table_rows.get(api, 0),
            "quarantined": totals.get((api, "quarantined"), 0),
            "save_success_rate": (batches / (batches + failures)) if batches + failures else None,
            "dead_lettered": ledger_counts.get(api, {}).get("dead", 0),
            "paused": paused.get(api, ""),
        }
        if api in VIP_OF:  # whole-market statements: refused, so one call per symbol
            types[api]["vip_refused"] = vip_refused.get(api, "")

    processes = {}
    if state:
        sup = state.get("supervisor", {})
        entries = {
            "supervisor": {
                "state": sup.get("state", "unknown"),
                "pid": sup.get("pid"),
                "started": sup.get("started"),
                "restarts": 0,
                "reason": "",
            }
        }
        for q, c in state.get("consumers", {}).items():
            entries[q] = {
                "state": c["state"],
                "pid": c.get("pid"),
                "started": c.get("started"),
                "restarts": c.get("restarts", 0),
                "reason": c.get("reason", ""),
                "last_exit": c.get("last_exit"),
            }
        usage = sampler.sample([e["pid"] for e in entries.values() if e.get("pid")])
        for e in entries.values():
            e["uptime"] = (
                round(now - e["started"], 1) if e.get("started") and e.get("pid") else None
            )
            e.update(usage.get(e.get("pid"), {"cpu_percent": None, "rss_mb": None}))
        processes = entries
    else:
        processes = {
            q: {
                "state": "stopped",
                "pid": None,
                "started": None,
                "restarts": 0,
                "reason": "",
                "uptime": None,
                "cpu_percent": None,
                "rss_mb": None,
            }
            for q in ("supervisor", "fast", "slow")
        }

    schedule = schedule_view(settings, paths, running, now)
    stopped_apis = [api for api, reason in paused.items() if str(reason).startswith("stopped")]
    healthy = (
        running
        and not stopped_apis
        and not limiter["error"]
        and not queue_error
        and all(p["state"] == "running" for name, p in processes.items() if name != "supervisor")
    )
    db_error = live_gauge("slow", "db_error", "") or ""
    return {
        "schema": SCHEMA_VERSION,
        "version": __version__,
        "time": now,
        "data_dir": str(paths.root),
        "running": running,
        "healthy": bool(healthy and not db_error),
        "database_error": db_error,
        "queue_error": queue_error,
        "cluster": cluster,
        "limiter": limiter,
        "queues": queues,
        "task_types": types,
        "processes": processes,
        "eta_seconds": round(eta, 1) if eta else 0,
        "units_in_progress": in_progress,
        "schedule": schedule,
        # The last whole-market `neo verify`: symbols with holes per interface, and when.
        "coverage": (gauges.get("verify", {}).get("coverage", (None, 0))[0] or {}),
    }


def schedule_view(settings: Settings, paths: Paths, running: bool, now: float) -> dict[str, Any]:
    """The daily update: the running supervisor's schedule (it may have been started with
    --no-schedule), else the configured one; its next time and the last run's outcome."""
    schedule = Schedule.from_settings(settings)
    values = running_settings(paths) if running else None
    if values is not None:  # (a supervisor still writing it: the configured one will do)
        schedule = Schedule.from_values(values.get("schedule", {}))
    book = SqliteRunBook(paths.ledger, create=False) if paths.ledger.exists() else None
    try:
        return scheduler.view(schedule, book, now, active=running)
    finally:
        if book is not None:
            book.close()
