"""The supervisor: starts the fast and slow consumers, restarts one that dies, stops both, and
runs the scheduled update on a thread of its own (`neo_cli.schedule`).

One loop, ticking a few times a second, over the things that can happen: a stop was asked for
(a signal handler only sets a flag), a consumer exited, a consumer became ready (its heartbeat
appeared in the metrics store), a back-off delay ran out. Every change is written to the state
file that `neo status` and `neo start` read.

Restart policy (supervisord restarts at once and forever, which turns a crash loop into a CPU
loop; this does not): a consumer that exits unexpectedly is restarted after an exponential
back-off with jitter, capped; the back-off starts over once a consumer has stayed up for
`stable_after` seconds; a consumer that fails `max_quick_failures` times in a row without staying
up `min_uptime` seconds is marked *failed*, with its last exit code and the tail of its log, and
left alone. Before a consumer is (re)started, work its predecessor lost is enqueued again.

The clock, the sleep and the process factory are attributes, so tests can replay a scripted
history through this same loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from neo_cli import config, logs
from neo_cli.config import Settings
from neo_cli.errors import NeoError, describe_exit
from neo_cli.exporter import Exporter
from neo_cli.ledger import Ledger
from neo_cli.metrics import MetricsStore
from neo_cli.paths import Paths
from neo_cli.pipeline import Pipeline
from neo_cli.recovery import recover
from neo_cli.runstate import SUPERVISOR_MARK, SupervisorLock, write_state
from neo_cli.schedule.book import SqliteRunBook
from neo_cli.schedule.scheduler import Scheduler
from neo_cli.schedule.scheduler import for_settings as scheduler_for
from neo_cli.schedule.update import Schedule
from neo_cli.spawn import spawn_module

log = logging.getLogger("neo.supervisor")

QUEUES = ("fast", "slow")
ROLE_QUEUES = {"all": QUEUES, "fast": ("fast",), "slow": ("slow",)}


@dataclass(frozen=True)
class RestartPolicy:
    base_delay: float = 1.0
    max_delay: float = 60.0
    min_uptime: float = 10.0  # a run shorter than this is a quick failure
    stable_after: float = 60.0  # a run this long resets the back-off
    max_quick_failures: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        v = settings.values["supervisor"]
        return cls(
            v["restart_base_delay"],
            v["restart_max_delay"],
            v["min_uptime"],
            v["stable_after"],
            v["max_quick_failures"],
        )

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential in the failures so far, jittered by ±50% so restarts don't march."""
        raw = min(self.max_delay, self.base_delay * 2 ** max(0, failures - 1))
        return raw * rng.uniform(0.5, 1.5)


class Child(Protocol):
    pid: int

    def poll(self) -> int | None: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


@dataclass
class Consumer:
    """What the supervisor knows of one consumer; its fields are the state file's."""

    queue: str
    state: str = "starting"  # starting | running | backoff | failed | stopping | stopped
    pid: int | None = None
    started: float | None = None  # wall clock of the current run
    restarts: int = 0
    quick_failures: int = 0
    last_exit: int | None = None
    reason: str = ""
    killed: bool = False  # its last stop outlasted the stop timeout and it was killed
    restart_at: float | None = None
    log: str = ""
    _proc: Any = field(default=None, repr=False)
    _spawned: float = field(default=0.0, repr=False)  # monotonic time of the current run

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        policy: RestartPolicy | None = None,
        spawn: Callable[[str], Child] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rng: random.Random | None = None,
        tick: float = 0.2,
    ):
        self.settings = settings
        self.paths = Paths(settings.data_dir)
        self.policy = policy or RestartPolicy.from_settings(settings)
        self.spawn = spawn or self._spawn_process
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.rng = rng or random.Random()
        self.tick = tick
        self.role = settings.values["supervisor"]["role"]
        self.consumers = {
            q: Consumer(q, log=str(self.paths.log_file(q))) for q in ROLE_QUEUES[self.role]
        }
        self.stop_requested: float | None = None  # the stop timeout, once asked
        self.state = "starting"
        self.started = wall()
        self._pipeline: Pipeline | None = None
        self._ledger: Ledger | None = None
        self._metrics: MetricsStore | None = None
        self._book: SqliteRunBook | None = None
        self.scheduler: Scheduler | None = None
        self.exporter: Exporter | None = None
        self._rotate_at = 0.0

    # -- processes -----------------------------------------------------------------------------

    def _spawn_process(self, queue: str) -> Child:
        return spawn_module(
            "neo_cli.consumer",
            [queue, "--settings", str(self.paths.settings_file), "--parent", str(os.getpid())],
            self.paths.logs / f"{queue}.stderr",
            config.child_env(self.settings),
        )

    def _start(self, c: Consumer) -> None:
        if self._pipeline is not None and self._ledger is not None:
            found = recover(
                self._pipeline, self._ledger, fast=c.queue == "fast", slow=c.queue == "slow"
            )
            if found.downloads or found.saves:
                log.warning("%s consumer: %s", c.queue, found)
        c._proc = self.spawn(c.queue)
        c.pid = c._proc.pid
        c._spawned = self.clock()
        c.started = self.wall()
        c.state = "starting"
        c.killed = False
        c.restart_at = None
        log.info("%s consumer started, pid %d", c.queue, c.pid)

    # -- the loop ------------------------------------------------------------------------------

    def request_stop(self, timeout: float) -> None:
        """Called from a signal handler: only record it; the loop does the work."""
        if self.stop_requested is None:
            self.stop_requested = timeout

    def open(self) -> None:
        """Resources the loop uses: the queues, the ledger, the metrics store, the exporter."""
        self._pipeline = Pipeline(self.settings)
        self._metrics = MetricsStore(self.paths.metrics)
        if self.settings.values["metrics"]["port"]:
            self.exporter = self._exporter().start()  # a port taken since `neo start`: exit 2
        if self.role == "fast":
            return  # a download machine: no ledger here (leases bring its lost work back)
        self._ledger = Ledger(self.paths.ledger)
        if Schedule.from_settings(self.settings).enabled:
            self._book = SqliteRunBook(self.paths.ledger)
            self.scheduler = scheduler_for(self.settings, self._book, clock=self.wall)

    def _exporter(self) -> Exporter:
        """/metrics and /api/status; the status data is `neo status --json`'s, collected on
        the exporter's thread with a pipeline of its own."""
        from neo_cli.status import ProcessSampler, collect

        sampler = ProcessSampler()
        pipeline = Pipeline(self.settings)

        def consumers() -> dict[str, dict[str, Any]]:
            usage = sampler.sample([c.pid for c in self.consumers.values() if c.pid], 0)
            return {
                q: {
                    "state": c.state,
                    "restarts": c.restarts,
                    "rss_bytes": (
                        round(usage[c.pid]["rss_mb"] * 2**20) if c.pid in usage else None
                    ),
                }
                for q, c in self.consumers.items()
            }

        return Exporter(self.settings, consumers, lambda: collect(self.settings, sampler, pipeline))

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
        if self._book is not None:
            self._book.close()
        if self._ledger is not None:
            self._ledger.close()
        if self._metrics is not None:
            self._metrics.close()

    def run(self) -> int:
        self.state = "running"
        for c in self.consumers.values():
            self._start(c)
        self._save()
        if self.scheduler is not None:
            self.scheduler.start()  # a time missed while neo was down runs now, once
        else:
            log.info("schedule: none ([schedule] update is empty, or neo start --no-schedule)")
        while self.stop_requested is None:
            if self.step():
                self._save()
            self.sleep(self.tick)
        self.stop(self.stop_requested)
        return 0

    def step(self) -> bool:
        """One pass over everything that may have happened; True when the state changed."""
        changed = False
        if self.clock() >= self._rotate_at:  # captured output grows while its process runs
            self._rotate_at = self.clock() + 30.0
            for name in ("supervisor", *self.consumers):
                logs.rotate_output(self.paths.logs / f"{name}.stderr")
        beats = self._heartbeats()
        for c in self.consumers.values():
            if c.state in ("starting", "running") and c._proc is not None:
                code = c._proc.poll()
                if code is not None:
                    self._exited(c, code)
                    changed = True
                elif c.state == "starting" and beats.get(c.queue, 0) >= (c.started or 0):
                    c.state = "running"
                    c.reason = ""
                    changed = True
                    log.info("%s consumer ready", c.queue)
                elif (
                    c.state == "running"
                    and c.quick_failures
                    and self.clock() - c._spawned >= self.policy.stable_after
                ):
                    c.quick_failures = 0  # it stayed up: the back-off starts over
                    changed = True
            elif c.state == "backoff" and c.restart_at is not None and self.clock() >= c.restart_at:
                c.restarts += 1
                self._start(c)
                changed = True
        return changed

    def _exited(self, c: Consumer, code: int) -> None:
        uptime = self.clock() - c._spawned
        c.last_exit = code
        c.pid = None
        c._proc = None
        what = describe_exit(code)
        if uptime < self.policy.min_uptime:
            c.quick_failures += 1
        else:
            c.quick_failures = 1 if uptime < self.policy.stable_after else 0
        if c.quick_failures >= self.policy.max_quick_failures:
            c.state = "failed"
            tail = log_tail(self.paths.logs / f"{c.queue}.stderr") or log_tail(Path(c.log))
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            c.reason = (
                f"{what}, {c.quick_failures} times in a row within "
                f"{self.policy.min_uptime:.0f}s of starting; not restarting"
                + (f" (last output: {last})" if last else "")
            )
            log.error("%s consumer failed: %s\n%s", c.queue, c.reason, tail)
            return
        delay = self.policy.delay(max(1, c.quick_failures), self.rng)
        c.state = "backoff"
        c.restart_at = self.clock() + delay
        c.reason = f"{what} after {uptime:.1f}s; restarting in {delay:.1f}s"
        log.warning("%s consumer died: %s", c.queue, c.reason)

    def _heartbeats(self) -> dict[str, float]:
        if self._metrics is None:
            return {}
        try:
            gauges = self._metrics.gauges()
        except Exception:  # noqa: BLE001 - a busy metrics file must not stop supervision
            return {}
        return {q: float(g.get("heartbeat", (0, 0))[0] or 0) for q, g in gauges.items()}

    def stop(self, timeout: float) -> None:
        """Graceful stop: SIGINT (Huey finishes running tasks; the saver flushes), then SIGKILL
        whatever is still running after `timeout` seconds. A scheduled update in progress
        ends first; the next start takes it over."""
        self.state = "stopping"
        if self.scheduler is not None:
            self.scheduler.stop(min(timeout, 10.0))
        live = [c for c in self.consumers.values() if c._proc is not None]
        for c in self.consumers.values():
            if c._proc is None:
                c.state = "stopped" if c.state != "failed" else "failed"
        for c in live:
            c.state = "stopping"
            with contextlib.suppress(ProcessLookupError):
                c._proc.send_signal(signal.SIGINT)
        self._save()
        deadline = self.clock() + timeout
        while live and self.clock() < deadline:
            live = [c for c in live if c._proc.poll() is None]
            if live:
                self.sleep(min(self.tick, 0.1))
        for c in live:
            log.warning(
                "%s consumer (pid %s) still running after %.0fs: killing it",
                c.queue,
                c.pid,
                timeout,
            )
            c._proc.kill()
            c._proc.poll()
            c.killed = True
            c.reason = f"killed after the {timeout:.0f}s stop timeout"
        for c in self.consumers.values():
            if c._proc is not None:
                c.last_exit = c._proc.poll()
                c._proc = None
                c.pid = None
                if c.state == "stopping":
                    c.state = "stopped"
        self.state = "stopped"
        self._save()

    def _save(self) -> None:
        write_state(
            self.paths,
            {
                "supervisor": {
                    "pid": os.getpid(),
                    "state": self.state,
                    "started": self.started,
                    "log": str(self.paths.log_file("supervisor")),
                },
                "consumers": {q: c.public() for q, c in self.consumers.items()},
                "updated": self.wall(),
            },
        )


def serve(settings: Settings, stop_timeout: float, foreground: bool = False) -> int:
    """Run a supervisor in this process until it is told to stop (SIGTERM, SIGINT)."""
    paths = Paths(settings.data_dir).ensure()
    lock = SupervisorLock(paths)
    lock.acquire()
    try:
        logs.to_file(paths, "supervisor", also_stderr=foreground)
        (paths.run / "stop.json").unlink(missing_ok=True)
        from neo_cli.runstate import write_atomic

        write_atomic(paths.settings_file, json.dumps(settings.public()))
        sup = Supervisor(settings)

        def on_signal(signum, frame):
            sup.request_stop(_requested_timeout(paths, stop_timeout))

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sup.open()
        try:
            return sup.run()  # starting each consumer recovers what its predecessor lost
        finally:
            sup.close()
    finally:
        lock.release()


def _requested_timeout(paths: Paths, default: float) -> float:
    try:
        return float(json.loads((paths.run / "stop.json").read_text())["timeout"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def main(argv: list[str] | None = None) -> int:
    """`python -m neo_cli.supervisor --settings FILE --home DIR` (what `neo start` detaches)."""
    import argparse

    os.umask(0o077)
    parser = argparse.ArgumentParser(prog=SUPERVISOR_MARK)
    parser.add_argument("--settings", required=True, type=Path)
    parser.add_argument("--home", required=True)  # on the command line so pid checks see it
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        settings = config.restore(json.loads(args.settings.read_text()))
        return serve(settings, args.stop_timeout)
    except NeoError as exc:
        print(f"neo supervisor: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
