"""A job every few seconds on a thread of its own, until stopped (the lease keeper, the
lost-download sweep). A failure is logged — the first, the tenth, then every hundredth in a
row — and the next round tries again; the first success after failures says so."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    def __init__(self, name: str, every: float, job: Callable[[], object], log: logging.Logger):
        self.name, self.every, self.job, self.log = name, every, job, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failing = 0  # rounds in a row that failed

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.job()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                self.failing += 1
                if self.failing in (1, 10) or self.failing % 100 == 0:
                    self.log.warning(
                        "%s failed (%s: %s), %d time(s) in a row; trying again",
                        self.name,
                        type(exc).__name__,
                        exc,
                        self.failing,
                    )
                continue
            if self.failing:
                self.log.info("%s works again after %d failure(s)", self.name, self.failing)
            self.failing = 0

    def start(self) -> Periodic:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
