"""The pid file, the supervisor's lock, and the state file `neo status` reads.

A live supervisor holds an exclusive `flock` on `run/supervisor.lock` for its whole life: the
kernel drops it when the process dies, however it dies, so "is neo running?" never trusts a pid
alone. The pid file is for people and for `neo stop`; when it names a process that is gone, or a
pid now used by some other program (the command line is checked), it is stale and replaced, and
a pid file holding anything but a pid is reported, never silently overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from neo_cli.errors import AlreadyRunning, InputError
from neo_cli.locks import FileLock
from neo_cli.paths import Paths

SUPERVISOR_MARK = "neo_cli.supervisor"


@dataclass
class PidInfo:
    pid: int | None  # what the pid file says (None: no file)
    alive: bool  # that pid is a live neo supervisor for this data directory
    stale: str = ""  # why the file is stale, when it is


def _is_our_supervisor(pid: int, paths: Paths) -> bool:
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    joined = " ".join(cmdline)
    return SUPERVISOR_MARK in joined and str(paths.root) in joined


def read_pid(paths: Paths) -> PidInfo:
    try:
        text = paths.pid_file.read_text()
    except FileNotFoundError:
        return PidInfo(None, False)
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first.isdigit():
        raise InputError(
            f"pid file {paths.pid_file} holds {text.strip()[:40]!r}, not a pid; "
            "check no neo is running for this data directory, then delete the file"
        )
    pid = int(first)
    if _is_our_supervisor(pid, paths):
        return PidInfo(pid, True)
    if psutil.pid_exists(pid):
        return PidInfo(pid, False, f"pid {pid} now belongs to another program")
    return PidInfo(pid, False, f"process {pid} is gone")


class SupervisorLock:
    """Held by the supervisor from start to exit."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.paths.run / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = read_pid(self.paths)
            raise AlreadyRunning(info.pid or 0, str(self.paths.root)) from None
        self._fd = fd
        write_atomic(self.paths.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if read_pid(self.paths).pid == os.getpid():
                self.paths.pid_file.unlink(missing_ok=True)
        except InputError:
            pass
        os.close(self._fd)
        self._fd = None


def lock_is_held(paths: Paths, name: str = "supervisor") -> bool:
    """True while some process holds `run/<name>.lock` (the supervisor's, or a consumer's)."""
    path = paths.run / f"{name}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def hold(paths: Paths, name: str, on_wait=None) -> int:
    """Take `run/<name>.lock` for the life of this process, waiting while another holds it.

    Each consumer holds one: a consumer still draining after its supervisor died finishes
    before its successor starts, so two never call the API or write the database at once."""
    fd = os.open(paths.run / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait:
            on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


class Owner:
    """A name and a lock held for the life of a process that works units itself (an inline
    run): while the lock is held the owner is alive, and the kernel drops it however the
    process dies, so recovery can tell live work from lost work."""

    def __init__(self, paths: Paths, kind: str):
        (paths.run / "owners").mkdir(mode=0o700, exist_ok=True)
        self.paths = paths
        self.name = f"{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        self._fd: int | None = hold(paths, f"owners/{self.name}")

    def release(self) -> None:
        if self._fd is not None:
            (self.paths.run / "owners" / f"{self.name}.lock").unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Owner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def owner_alive(paths: Paths, name: str) -> bool:
    return lock_is_held(paths, f"owners/{name}")


def planning(paths: Paths) -> FileLock:
    """Held while a plan is made and recorded: two enqueues (or inline runs) at once never
    plan the same units, because the second one sees the first's units as already queued."""
    return FileLock(paths.run / "plan.lock")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_state(paths: Paths, state: dict[str, Any]) -> None:
    write_atomic(paths.state_file, json.dumps(state, indent=2, sort_keys=True))


def running_settings(paths: Paths) -> dict[str, Any] | None:
    """The settings (public values) of the supervisor running for `paths`, or None when none
    runs or its file is being written."""
    if not (paths.run.exists() and lock_is_held(paths)):
        return None
    try:
        return json.loads(paths.settings_file.read_text())
    except (OSError, ValueError):
        return None


def read_state(paths: Paths) -> dict[str, Any] | None:
    try:
        return json.loads(paths.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
