"""Where a run keeps its files: everything under the one data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from neo_cli.errors import InputError


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def queues(self) -> Path:
        return self.root / "queues"

    def queue_file(self, name: str) -> Path:
        return self.queues / f"{name}.db"

    @property
    def database(self) -> Path:
        return self.root / "neo.duckdb"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.db"

    @property
    def limiter(self) -> Path:
        return self.root / "limiter.db"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pid_file(self) -> Path:
        return self.run / "supervisor.pid"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def settings_file(self) -> Path:
        return self.run / "settings.json"

    def ensure(self) -> Paths:
        """Create the directories (owner-only), or say in one line why it cannot be done."""
        try:
            for d in (self.root, self.queues, self.logs, self.run):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.run / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            if self.root.is_file():
                raise InputError(f"data directory {self.root} is a file, not a directory") from None
            raise InputError(
                f"data directory {self.root} is not writable ({exc.strerror}); "
                "set [paths] data_dir or NEO_HOME to a directory you can write"
            ) from None
        return self
