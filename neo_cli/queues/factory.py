"""Build the Huey instances for the configured storage. The one place that knows which."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from huey import Huey
from huey.serializer import Serializer

from neo_cli.errors import InputError
from neo_cli.queues.sqlite import KindSqliteStorage

_serializer = Serializer()


def describe(data: bytes) -> tuple[str, str]:
    """(kind, task id) of a serialized neo task: its first argument is its kind."""
    message = _serializer.deserialize(data)
    kind = message.args[0] if message.args else ""
    return str(kind), str(message.id)


class NeoHuey(Huey):
    """Huey, telling its storage the kind and id of each task it serializes."""

    def serialize_task(self, task):
        data = super().serialize_task(task)
        hint = getattr(self.storage, "hint", None)
        if hint is not None:
            hint(data, str(task.args[0]) if task.args else "", str(task.id))
        return data


def make_huey(name: str, *, storage: str, path: Path, kinds: Sequence[str], fsync: bool) -> Huey:
    """A Huey instance named `name` (`fast` or `slow`) on the configured storage."""
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
    raise InputError(f"queue storage {storage!r} is not available yet; allowed: 'sqlite'")
