"""The in-memory backend: one process's budget, behind a lock. The stub the tests build on,
and what a process uses when nothing else may share its budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from neo_cli.limits.base import NEVER, Backend, Limiter, State


class MemoryBackend(Backend):
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._paused: dict[str, tuple[float, str]] = {}

    def reserve(self, api: str, spacing: float, horizon: float) -> float | None:
        with self._lock:
            now = self.clock()
            until = self._paused.get(api, (0.0, ""))[0]
            slot = max(now, self._next.get(api, 0.0), until)
            if slot - now > horizon:
                return None
            self._next[api] = slot + spacing
            return slot - now

    def state(self, api: str) -> State:
        with self._lock:
            now = self.clock()
            until, reason = self._paused.get(api, (0.0, ""))
            free = max(self._next.get(api, 0.0), until)
            return State(max(0.0, free - now), until - now, reason)

    def pause(self, api: str, seconds: float, reason: str) -> None:
        with self._lock:
            until = self.clock() + seconds
            if until > self._paused.get(api, (0.0, ""))[0]:
                self._paused[api] = (until, reason)

    def clear_stops(self) -> None:
        with self._lock:
            for api, (until, _) in list(self._paused.items()):
                if until == NEVER:
                    del self._paused[api]


def memory_limiter(api: str, limit: int, **kwargs) -> Limiter:
    """A limiter on a fresh in-memory backend (the backend follows the limiter's clock)."""
    clock = kwargs.get("clock", time.time)
    return Limiter(api, limit, MemoryBackend(clock), **kwargs)
