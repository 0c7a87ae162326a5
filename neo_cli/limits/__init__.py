"""Client-side rate limiters, one per API interface, on a backend chosen by `[limiter] backend`.

    base.py     Limiter (pacing, pauses, the queue's readiness) and the Backend interface
    memory.py   one process's budget (the stub the tests build on)
    local.py    one budget for every process of a data directory (a SQLite file)
    redis.py    one budget for every process on every machine on one Redis

A budget belongs to a token: `budget_id` fingerprints the provider and its token (never the
token itself), and every backend keys its state by it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping

from neo_cli.errors import LimiterUnavailable, PermanentError, SlotTooFar
from neo_cli.limits.base import Backend, Limiter, View

__all__ = ["Backend", "Limiter", "Limiters", "SlotTooFar", "budget_id", "build_limiters"]

PACE_WAIT = 120.0  # seconds a one-off call (the calendar) waits for its slot before giving up


def budget_id(provider: str, token: str) -> str:
    """A stable fingerprint of whose budget this is; the token cannot be read back from it."""
    return hashlib.sha256(f"neo-budget\0{provider}\0{token}".encode()).hexdigest()[:16]


class Limiters(Mapping[str, Limiter]):
    """Every interface's limiter on one backend."""

    def __init__(self, backend: Backend, limiters: Mapping[str, Limiter]):
        self.backend = backend
        self._by_api = dict(limiters)

    def __getitem__(self, api: str) -> Limiter:
        return self._by_api[api]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_api)

    def __len__(self) -> int:
        return len(self._by_api)

    def pace(self, api: str) -> None:
        """Wait for a slot for a one-off call outside the queues (the trading calendar):
        raise LimiterUnavailable when the store is unreachable, PermanentError when the
        interface is paused for longer than a one-off call should wait."""
        limiter = self._by_api[api]
        deadline = limiter.clock() + PACE_WAIT
        while True:
            try:
                limiter.acquire(max_wait=max(0.0, deadline - limiter.clock()), claimed=False)
                return
            except SlotTooFar as exc:
                if exc.reason.startswith("limiter:"):
                    raise LimiterUnavailable(
                        getattr(self.backend, "where", self.backend.describe())
                    ) from None
                if limiter.clock() + exc.delay > deadline:
                    raise PermanentError(f"{api}: no call slot ({exc.reason})", api) from None
                limiter.sleep(exc.delay)

    def pauses(self) -> dict[str, str]:
        """{api: why} of the interfaces paused now (one read of the shared state); an
        unreachable store pauses them all."""
        out = {}
        for api, limiter in self._by_api.items():
            try:
                _, left, reason = limiter.view.get(api)
            except LimiterUnavailable as exc:
                return dict.fromkeys(self._by_api, str(exc))
            if left > 0:
                out[api] = reason
        return out

    def close(self) -> None:
        self.backend.close()


def make_backend(
    settings,
    *,
    clock: Callable[[], float] | None = None,
    budget: str | None = None,
    timeout: float = 2.0,
) -> Backend:
    """The backend `[limiter] backend` names, for this settings' token. `timeout`: seconds a
    call to a remote store may take before it counts as unreachable."""
    from neo_cli.paths import Paths

    v = settings.values
    if budget is None:
        budget = budget_id(v["provider"]["name"], settings.token)
    kind = v["limiter"]["backend"]
    if kind == "redis":
        from neo_cli.limits.redis import RedisBackend

        return RedisBackend(
            v["queue"]["redis_url"], budget, settings.rate_limits, clock=clock, timeout=timeout
        )
    from neo_cli.limits.local import LocalBackend

    paths = Paths(settings.data_dir).ensure()
    return LocalBackend(paths.limiter, budget, clock or time.time)


def build_limiters(
    settings,
    *,
    backend: Backend | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> Limiters:
    """One limiter per interface of `[rate_limits]`, all on one backend."""
    backend = backend or make_backend(settings)
    lim = settings.values["limiter"]
    view = View(backend, list(settings.rate_limits), clock)
    return Limiters(
        backend,
        {
            api: Limiter(
                api,
                n,
                backend,
                margin=lim["margin_seconds"],
                lookahead=lim["lookahead_seconds"],
                clock=clock,
                sleep=sleep,
                view=view,
            )
            for api, n in settings.rate_limits.items()
        },
    )
