"""The in-process limiter: every fast worker thread of one consumer shares it."""

from __future__ import annotations

from neo_cli.limits.base import Limiter


class LocalLimiter(Limiter):
    """Slots spaced evenly, kept in memory behind a lock."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next = 0.0
        self._paused_until = 0.0
        self._pause_reason = ""

    def _reserve(self, now: float, horizon: float) -> float | None:
        with self._lock:
            slot = max(now, self._next, self._paused_until)
            if slot - now > horizon:
                return None
            self._next = slot + self.spacing
            return slot

    def next_free(self) -> float:
        with self._lock:
            return max(self._next, self._paused_until)

    def pause_until(self, until: float, reason: str) -> None:
        with self._lock:
            if until > self._paused_until:
                self._paused_until, self._pause_reason = until, reason

    def paused(self) -> tuple[float, str]:
        with self._lock:
            return self._paused_until, self._pause_reason
