"""`/metrics` (Prometheus text format) and `/api/status` (the JSON of `neo status --json`),
served by the supervisor on `[metrics] port` (0 = off), bound to `[metrics] bind`.

Decided: one exporter per machine, in its supervisor, reading shared state at scrape time
(rq-exporter's way) — not prometheus-client's multiprocess mode, whose files pile up as consumer
pids change and which cannot carry custom collectors. Each machine exports what its own
processes counted (labelled `host`): calls, downloads, waits, rows, flushes. Figures of the
whole queue — depths, dead letters, units in progress, coverage holes, cluster members — come
only from the machine that writes the database (role `all` or `slow`; one per cluster), so a
sum over machines never counts them twice.
"""

from __future__ import annotations

import json
import logging
import platform
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from neo_cli import __version__
from neo_cli.config import Settings
from neo_cli.errors import InputError
from neo_cli.metrics import CALL_OUTCOMES, FLUSH_BUCKETS, TASK_OUTCOMES, MetricsStore
from neo_cli.paths import Paths
from neo_cli.tasktypes import INTERFACES, dataset

log = logging.getLogger("neo.exporter")

WRITER_ROLES = ("all", "slow")
QUEUE_STATES = ("pending", "scheduled", "in_flight")


def family_names() -> set[str]:
    """Every metric name neo exports (as a query names it: counters with `_total`,
    histograms with `_bucket`, `_sum`, `_count`), for the dashboard and alert checks."""
    names = set()
    for kind, name in METRICS:
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "info":
            names.add(f"{name}_info")
        else:
            names.add(name)
    return names


METRICS = (
    ("info", "neo_build"),
    ("gauge", "neo_rate_limit_calls_per_minute"),
    ("counter", "neo_api_calls"),
    ("counter", "neo_downloads"),
    ("counter", "neo_limiter_wait_seconds"),
    ("counter", "neo_rows_saved"),
    ("counter", "neo_rows_replaced"),
    ("counter", "neo_quarantined_rows"),
    ("counter", "neo_flushes"),
    ("histogram", "neo_flush_seconds"),
    ("counter", "neo_save_tasks"),
    ("gauge", "neo_consumer_up"),
    ("counter", "neo_consumer_restarts"),
    ("gauge", "neo_consumer_resident_memory_bytes"),
    ("gauge", "neo_queue_tasks"),
    ("gauge", "neo_interface_queued_tasks"),
    ("gauge", "neo_save_buffered_rows"),
    ("gauge", "neo_units_in_progress"),
    ("gauge", "neo_dead_letters"),
    ("gauge", "neo_table_rows"),
    ("gauge", "neo_interface_stopped"),
    ("gauge", "neo_coverage_holes"),
    ("gauge", "neo_coverage_checked_timestamp_seconds"),
    ("gauge", "neo_cluster_consumers"),
    ("gauge", "neo_healthy"),
)


class NeoCollector:
    """Builds every family at scrape time from the metrics store, the supervisor's view of
    its consumers (`consumers()`) and, on the writer, the status data (`status()`)."""

    def __init__(
        self,
        settings: Settings,
        consumers: Callable[[], dict[str, dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
        host: str | None = None,
    ):
        self.settings = settings
        self.paths = Paths(settings.data_dir)
        self.consumers = consumers
        self.status = status
        self.host = host or socket.gethostname()
        self.writer = settings.values["supervisor"]["role"] in WRITER_ROLES

    def describe(self) -> list:
        return []  # no fixed set: families appear as their data does (registry needs no check)

    def collect(self) -> Iterator:
        yield InfoMetricFamily(
            "neo_build",
            "neo's version (a mixed-version cluster shows as several)",
            value={"version": __version__, "python": platform.python_version(), "host": self.host},
        )
        limit = GaugeMetricFamily(
            "neo_rate_limit_calls_per_minute",
            "[rate_limits]: calls per minute allowed per interface",
            labels=["interface"],
        )
        for api, n in self.settings.rate_limits.items():
            limit.add_metric([api], n)
        yield limit
        yield from self._counted()
        yield from self._processes()
        if self.writer:
            yield from self._queue_wide(self.status())

    # -- what this machine's processes counted (metrics.db totals) ------------------------------

    def _counted(self) -> Iterator:
        totals: dict[tuple[str, str], int] = {}
        if self.paths.metrics.exists():
            store = MetricsStore(self.paths.metrics)
            try:
                totals = store.totals()
            finally:
                store.close()

        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*labels, "host"])

        calls = counter("neo_api_calls", "API calls by how they ended", ["interface", "outcome"])
        downloads = counter(
            "neo_downloads",
            "download attempts by outcome: done, retried, rate_limited, dead",
            ["interface", "outcome"],
        )
        wait = counter(
            "neo_limiter_wait_seconds", "time calls waited for a limiter slot", ["interface"]
        )
        for api in INTERFACES:
            for o in CALL_OUTCOMES:
                calls.add_metric([api, o, self.host], totals.get((api, f"calls_{o}"), 0))
            for o in TASK_OUTCOMES:
                downloads.add_metric([api, o, self.host], totals.get((api, o), 0))
            wait.add_metric([api, self.host], totals.get((api, "wait_ms"), 0) / 1000)
        yield from (calls, downloads, wait)

        rows = counter("neo_rows_saved", "rows written, by table", ["table"])
        replaced = counter("neo_rows_replaced", "rows written over a saved row", ["table"])
        bad = counter("neo_quarantined_rows", "rows set aside in _quarantine", ["table"])
        for api in INTERFACES:
            table = dataset(api).table
            if api != table:
                continue  # whole-market statements (income_vip) save into their statement's
            rows.add_metric([table, self.host], totals.get((api, "rows"), 0))
            replaced.add_metric([table, self.host], totals.get((api, "replaced"), 0))
            bad.add_metric([table, self.host], totals.get((api, "quarantined"), 0))
        yield from (rows, replaced, bad)

        flushes = counter("neo_flushes", "flushes of the save buffer, by outcome", ["outcome"])
        flushes.add_metric(["ok", self.host], totals.get(("saver", "batches"), 0))
        flushes.add_metric(["failed", self.host], totals.get(("saver", "batch_failures"), 0))
        yield flushes
        hist = HistogramMetricFamily(
            "neo_flush_seconds", "time a flush took (one DuckDB transaction)", labels=["host"]
        )
        running, buckets = 0, []
        for b in FLUSH_BUCKETS:
            running += totals.get(("saver", f"flush_seconds:le={b}"), 0)
            buckets.append((str(b), running))
        running += totals.get(("saver", "flush_seconds:le=+Inf"), 0)
        buckets.append(("+Inf", running))
        hist.add_metric(
            [self.host], buckets, totals.get(("saver", "flush_seconds:sum_us"), 0) / 1e6
        )
        yield hist
        tasks = counter("neo_save_tasks", "slow queue tasks by outcome", ["outcome"])
        tasks.add_metric(["done", self.host], totals.get(("queue:slow", "tasks_done"), 0))
        tasks.add_metric(["failed", self.host], totals.get(("queue:slow", "tasks_failed"), 0))
        yield tasks

    # -- this machine's consumers --------------------------------------------------------------

    def _processes(self) -> Iterator:
        up = GaugeMetricFamily(
            "neo_consumer_up", "1 while the consumer runs", labels=["role", "host"]
        )
        restarts = CounterMetricFamily(
            "neo_consumer_restarts",
            "restarts by the supervisor since it started",
            labels=["role", "host"],
        )
        rss = GaugeMetricFamily(
            "neo_consumer_resident_memory_bytes", "resident memory", labels=["role", "host"]
        )
        for role, c in self.consumers().items():
            up.add_metric([role, self.host], 1 if c.get("state") == "running" else 0)
            restarts.add_metric([role, self.host], c.get("restarts", 0))
            if c.get("rss_bytes") is not None:
                rss.add_metric([role, self.host], c["rss_bytes"])
        yield from (up, restarts, rss)

    # -- the whole queue, from its one writer ---------------------------------------------------

    def _queue_wide(self, data: dict[str, Any]) -> Iterator:
        depth = GaugeMetricFamily(
            "neo_queue_tasks", "tasks on each queue by state", labels=["queue", "state"]
        )
        for q, v in data["queues"].items():
            for state in QUEUE_STATES:
                depth.add_metric([q, state], v.get(state) or 0)
        yield depth
        yield GaugeMetricFamily(
            "neo_save_buffered_rows",
            "rows in the slow consumer's buffer, not flushed yet",
            value=data["queues"]["slow"].get("buffered_rows", 0),
        )
        yield GaugeMetricFamily(
            "neo_units_in_progress",
            "units planned and not yet saved or dead-lettered",
            value=data["units_in_progress"],
        )
        dead = GaugeMetricFamily(
            "neo_dead_letters", "units in the dead-letter queue", labels=["interface"]
        )
        stopped = GaugeMetricFamily(
            "neo_interface_stopped",
            "1 when calls to the interface stopped (bad token, no permission)",
            labels=["interface"],
        )
        table_rows = GaugeMetricFamily(
            "neo_table_rows", "rows in each table after the last flush", labels=["table"]
        )
        queued = GaugeMetricFamily(
            "neo_interface_queued_tasks",
            "download tasks waiting for each interface (pending and scheduled)",
            labels=["interface"],
        )
        for api, v in data["task_types"].items():
            queued.add_metric([api], v["pending"] + v["scheduled"])
            dead.add_metric([api], v["dead_lettered"])
            stopped.add_metric([api], 1 if str(v["paused"]).startswith("stopped") else 0)
            if dataset(api).table == api:
                table_rows.add_metric([api], v["table_rows"])
        yield from (queued, dead, stopped, table_rows)
        coverage = data.get("coverage") or {}
        holes = GaugeMetricFamily(
            "neo_coverage_holes",
            "symbols with holes in their coverage, at the last whole-market `neo verify`",
            labels=["interface"],
        )
        for api, n in coverage.get("symbols_with_holes", {}).items():
            holes.add_metric([api], n)
        yield holes
        if coverage.get("checked"):
            yield GaugeMetricFamily(
                "neo_coverage_checked_timestamp_seconds",
                "when the last whole-market `neo verify` ran",
                value=coverage["checked"],
            )
        members = GaugeMetricFamily(
            "neo_cluster_consumers",
            "consumers registered on the queues' Redis, alive or lost",
            labels=["state"],
        )
        cluster = data.get("cluster") or []
        members.add_metric(["alive"], sum(1 for c in cluster if not c["lost"]))
        members.add_metric(["lost"], sum(1 for c in cluster if c["lost"]))
        yield members
        yield GaugeMetricFamily(
            "neo_healthy", "1 when `neo status` would exit 0", value=1 if data["healthy"] else 0
        )


class Exporter:
    """The HTTP server on its own thread: `/metrics`, `/api/status`, and `/` saying so."""

    def __init__(
        self,
        settings: Settings,
        consumers: Callable[[], dict[str, dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
    ):
        self.bind, self.port = address(settings)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NeoCollector(settings, consumers, status))
        self.status = status
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Exporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        body, kind = generate_latest(exporter.registry), CONTENT_TYPE_LATEST
                    elif path == "/api/status":
                        body = json.dumps(exporter.status()).encode()
                        kind = "application/json"
                    elif path == "/":
                        body, kind = b"neo: /metrics, /api/status\n", "text/plain"
                    else:
                        self.send_error(404, "neo serves /metrics and /api/status")
                        return
                except Exception as exc:  # noqa: BLE001 - a bad scrape must not stop serving
                    log.exception("%s failed", path)
                    self.send_error(500, f"{type(exc).__name__}: {exc}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug(format, *args)

        self._server = listen(self.bind, self.port, Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="exporter", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics and /api/status", self.bind, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


def address(settings: Settings) -> tuple[str, int]:
    m = settings.values["metrics"]
    return m["bind"], m["port"]


def listen(bind: str, port: int, handler=BaseHTTPRequestHandler) -> HTTPServer:
    """The server socket, or one line saying why it cannot be had."""
    server_class = _HTTPServer6 if ":" in bind else HTTPServer
    try:
        return server_class((bind, port), handler)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise InputError(
            f"invalid [metrics] port = {port} on {bind}: {why}; allowed: a free port from 1 to "
            "65535 (neo start --metrics-port), or 0 for none"
        ) from None


def check_port(settings: Settings) -> None:
    """At `neo start`: a port in use is one line now, not a supervisor that exits later."""
    bind, port = address(settings)
    if port:
        listen(bind, port).server_close()
