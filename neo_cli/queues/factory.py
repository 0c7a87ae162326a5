"""Build the Huey instances for the configured storage. The one place that knows which."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from huey import Huey
from huey.serializer import Serializer

from neo_cli.errors import InputError
from neo_cli.queues.redis import KindRedisStorage
from neo_cli.queues.sqlite import KindSqliteStorage

_serializer = Serializer()


def describe(data: bytes) -> tuple[str, str, int]:
    """(kind, task id, priority) of a serialized neo task: its first argument is its kind."""
    message = _serializer.deserialize(data)
    kind = message.args[0] if message.args else ""
    return str(kind), str(message.id), int(message.priority or 0)


class NeoHuey(Huey):
    """Huey, telling its storage the kind and id of each task it serializes."""

    def execute(self, task, timestamp=None):
        """Run a task, then end its lease (storages with leases): done, failed, retried or
        rescheduled alike, it is no longer this worker's. A worker that dies before this
        leaves the lease to expire, and the task goes back on its queue."""
        result = super().execute(task, timestamp)
        self.storage.ack(task.id)
        return result

    def is_revoked(self, task, timestamp=None, peek=True):
        """Never: neo revokes no task (a paused interface keeps its tasks queued, a dead letter
        is a ledger state). Huey would otherwise read two revoke keys from the storage before
        every task — a query per task on each queue, 13% of the download consumer's samples
        and 27% of the save consumer's (py-spy, bench/overhead.py)."""
        return False

    def delete(self, key):
        """Skip the revoke flag Huey clears after every task (`r:<task id>`): neo sets none
        (see `is_revoked`), and clearing it is a write transaction per task on each queue."""
        if key.startswith("r:"):
            return False
        return super().delete(key)

    def serialize_task(self, task):
        data = super().serialize_task(task)
        hint = getattr(self.storage, "hint", None)
        if hint is not None:
            hint(data, str(task.args[0]) if task.args else "", str(task.id), task.priority or 0)
        return data


def make_huey(
    name: str,
    *,
    storage: str,
    path: Path,
    kinds: Sequence[str],
    fsync: bool,
    redis_url: str = "",
    cluster: str = "neo",
    lease: float = 30.0,
) -> Huey:
    """A Huey instance named `name` (`fast` or `slow`) on the configured storage."""
    if storage == "redis":
        return NeoHuey(
            name,
            results=False,
            storage_class=KindRedisStorage,
            url=redis_url,
            cluster=cluster,
            lease=lease,
            describe=describe,
            kinds=kinds,
        )
    if storage == "sqlite":
        return NeoHuey(
            name,
            results=False,
            storage_class=KindSqliteStorage,
            filename=str(path),
            fsync=fsync,
            journal_mode="wal",
            timeout=30,
            describe=describe,
            kinds=kinds,
        )
    raise InputError(f"unknown queue storage {storage!r}; allowed: 'sqlite', 'redis'")
