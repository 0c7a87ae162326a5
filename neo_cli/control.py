"""Starting and stopping neo in the background: what `neo start` and `neo stop` call."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from neo_cli import config
from neo_cli.config import Settings
from neo_cli.db.database import Database
from neo_cli.errors import AlreadyRunning, NotRunning, StartFailed, describe_exit
from neo_cli.exporter import check_port
from neo_cli.limits import make_backend
from neo_cli.paths import Paths
from neo_cli.pipeline import Pipeline
from neo_cli.runstate import lock_is_held, read_pid, read_state, write_atomic
from neo_cli.spawn import spawn_module
from neo_cli.supervisor import SUPERVISOR_MARK, log_tail


@dataclass
class Preflight:
    paths: Paths
    notes: list[str] = field(default_factory=list)


def preflight(settings: Settings) -> Preflight:
    """Everything that can be refused before a process is spawned."""
    paths = Paths(settings.data_dir).ensure()
    backend = make_backend(settings)
    try:
        backend.check()  # raises LimiterUnavailable (Redis unreachable) before anything is made
    except BaseException:
        backend.close()
        raise
    pipeline = Pipeline(settings)  # the queue storage is usable (raises on one that is not)
    role = settings.values["supervisor"]["role"]
    info = read_pid(paths)  # raises on a pid file holding garbage
    if lock_is_held(paths):
        raise AlreadyRunning(info.pid or 0, str(paths.root))
    deadline = time.monotonic() + 30
    while any(lock_is_held(paths, q) for q in ("fast", "slow")):
        # Consumers of a supervisor that died stop by themselves, finishing what they hold.
        if time.monotonic() > deadline:
            raise AlreadyRunning(
                0,
                str(paths.root),
                f"consumers of a previous run for {paths.root} are still stopping; "
                "see `neo logs fast`",
            )
        time.sleep(0.5)
    check_port(settings)  # [metrics] port free (in use: one line, exit 2)
    notes = redis_notes(pipeline, role) if pipeline.fast.storage.has_leases else []
    if info.pid is not None and not info.alive:
        paths.pid_file.unlink(missing_ok=True)
        notes.append(f"removed a stale pid file ({info.stale})")
    if role != "fast" and paths.database.exists():
        with Database(paths.database).writer():
            pass  # raises DatabaseUnavailable: corrupt, unwritable, held by another program
    try:
        # A new run tries the API again: a stop (bad token, no permission) seen by an earlier
        # run is lifted here, and found again with one call if nothing was fixed.
        backend.clear_stops()
    finally:
        backend.close()
    return Preflight(paths, notes)


# What a Redis that holds the queues must be set to, and what each other value risks.
REDIS_NEEDS = {
    "maxmemory-policy": (
        "noeviction",
        "under memory pressure Redis may evict queued tasks; set maxmemory-policy noeviction",
    ),
    "appendonly": (
        "yes",
        "a Redis restart loses every queued task; set appendonly yes (appendfsync everysec)",
    ),
}


def redis_notes(pipeline: Pipeline, role: str) -> list[str]:
    """Refuse a second writer for the cluster's database; warn of Redis settings that can
    lose queued work."""
    storage = pipeline.fast.storage
    consumers = storage.consumers()  # Redis away: QueueUnavailable, as enqueue gives
    found = storage.server_config(REDIS_NEEDS)
    if role in ("all", "slow"):
        writers = [c for c in consumers if c.get("queue") == "slow" and not c["lost"]]
        if writers:
            w = writers[0]
            raise AlreadyRunning(
                int(w.get("pid", 0)),
                "",
                f"a slow consumer already writes cluster {storage.cluster!r}'s database: "
                f"{w['id']} (heartbeat {w['age']:.0f}s ago, data dir {w.get('data_dir', '?')});"
                " one writer per [queue] cluster — start this machine with --role fast",
            )
    notes = []
    for key, (want, risk) in REDIS_NEEDS.items():
        value = found.get(key, "")
        if value and value != want:
            notes.append(f"Redis at {storage.where}: {key} is {value!r}: {risk}")
    return notes


def start_background(
    settings: Settings,
    stop_timeout: float,
    sleep: Callable[[float], object] = time.sleep,
) -> tuple[dict, list[str]]:
    """Detach a supervisor and return its state once both consumers are up."""
    ready_timeout = settings.values["supervisor"]["ready_timeout"]
    pre = preflight(settings)
    paths = pre.paths
    handoff = paths.run / f"settings.{os.getpid()}.json"
    write_atomic(handoff, json.dumps(settings.public()))
    proc = spawn_module(
        SUPERVISOR_MARK,
        [
            "--settings",
            str(handoff),
            "--home",
            str(paths.root),
            "--stop-timeout",
            str(stop_timeout),
        ],
        paths.logs / "supervisor.stderr",
        config.child_env(settings),
    )
    deadline = time.monotonic() + ready_timeout
    try:
        while time.monotonic() < deadline:
            code = proc.poll()
            state = read_state(paths)
            fresh = state is not None and state.get("supervisor", {}).get("pid") == proc.pid
            if fresh:
                consumers = state["consumers"]
                failed = [c for c in consumers.values() if c["state"] == "failed"]
                if failed:
                    _stop_quietly(proc, paths)
                    queue = failed[0]["queue"]
                    raise StartFailed(
                        f"{queue} consumer failed: {failed[0]['reason']}; see "
                        f"`neo logs {queue}` and {paths.logs / (queue + '.stderr')}"
                    )
                if all(c["state"] == "running" for c in consumers.values()):
                    return state, pre.notes
            if code is not None:
                tail = log_tail(paths.logs / "supervisor.stderr") or log_tail(
                    paths.log_file("supervisor")
                )
                raise StartFailed(
                    f"supervisor: {describe_exit(code)}"
                    + (f": {tail.splitlines()[-1]}" if tail else "")
                )
            sleep(0.2)
        _stop_quietly(proc, paths)
        raise StartFailed(
            f"consumers not ready after {ready_timeout:.0f}s; see {paths.logs} (stopped again)"
        )
    finally:
        handoff.unlink(missing_ok=True)


def _stop_quietly(proc: subprocess.Popen, paths: Paths) -> None:
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        proc.kill()


@dataclass
class Stopped:
    pid: int
    killed: list[str]
    seconds: float


def stop(
    settings: Settings, timeout: float, sleep: Callable[[float], object] = time.sleep
) -> Stopped:
    """Ask the supervisor to stop gracefully; past `timeout` it kills what is left."""
    paths = Paths(settings.data_dir)
    info = read_pid(paths) if paths.run.exists() else None
    if not paths.run.exists() or not lock_is_held(paths) or info is None or not info.alive:
        if info is not None and info.pid is not None and not info.alive:
            paths.pid_file.unlink(missing_ok=True)
            raise NotRunning(
                f"neo is not running for {paths.root} (removed a stale pid file: {info.stale})"
            )
        raise NotRunning(f"neo is not running for {paths.root}")
    write_atomic(paths.run / "stop.json", json.dumps({"timeout": timeout}))
    t0 = time.monotonic()
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise NotRunning(f"neo is not running for {paths.root} (it just exited)") from None
    deadline = t0 + timeout + 15
    while lock_is_held(paths):
        if time.monotonic() > deadline:
            # The supervisor itself is stuck: take everything down by hand.
            _kill_all(paths, info.pid)
            break
        sleep(0.1)
    state = read_state(paths) or {}
    killed = [q for q, c in state.get("consumers", {}).items() if c.get("killed")]
    return Stopped(info.pid, killed, time.monotonic() - t0)


def _kill_all(paths: Paths, supervisor_pid: int) -> None:
    state = read_state(paths) or {}
    pids = [c.get("pid") for c in state.get("consumers", {}).values() if c.get("pid")]
    for pid in [*pids, supervisor_pid]:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
