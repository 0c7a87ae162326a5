"""The limiter contract: pace calls to one interface so no sliding window holds too many.

The API counts calls over a sliding 60-second window, at arrival. A limiter hands out *slots*:
times at which a caller may start a call. Slots are spaced `(60 + margin) / limit` seconds apart,
so any 60-second stretch holds at most `limit * 60 / (60 + margin)` of them — the margin absorbs
the jitter between our clock and the server's (network delay, thread wake-up), and costs
`margin / 60` of the budget (0.6 s = 1%). Even spacing also means a restarted consumer can start
at full pace at once: the calls its predecessor made were spaced the same way.

`ready()` is what the fast queue asks before it takes a task for an interface: there is room when
the next free slot is within `lookahead` seconds. That keeps a few calls' worth of workers
waiting per interface, never all fifty on one slow interface while another sits idle.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

WINDOW = 60.0
CLAIM_TTL = 5.0  # seconds a taken task may take to reach `acquire` before its claim lapses


class SlotTooFar(Exception):
    """Raised by `acquire` when the next slot is further away than the caller should sleep;
    `delay` is how long until it. The caller gives its worker back and retries later."""

    def __init__(self, api: str, delay: float, reason: str):
        super().__init__(f"{api}: next call slot in {delay:.1f}s ({reason})")
        self.api, self.delay, self.reason = api, delay, reason


class Limiter(ABC):
    """Hands out call slots for one interface; shared by every worker that calls it."""

    def __init__(
        self,
        api: str,
        limit: int,
        *,
        margin: float = 0.6,
        lookahead: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ):
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.api = api
        self.limit = limit
        self.spacing = (WINDOW + margin) / limit
        self.lookahead = max(lookahead, self.spacing)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._rejections = 0
        self._claims: deque[float] = deque()

    # -- the backend's part ------------------------------------------------------------------

    @abstractmethod
    def _reserve(self, now: float, horizon: float) -> float | None:
        """Take the next slot if it is before `now + horizon`; return its time, or None."""

    @abstractmethod
    def next_free(self) -> float:
        """The earliest time a new slot could be granted (pauses included)."""

    @abstractmethod
    def pause_until(self, until: float, reason: str) -> None:
        """No slot before `until`."""

    @abstractmethod
    def paused(self) -> tuple[float, str]:
        """(until, reason) of the current pause; until <= now when not paused."""

    # -- shared behaviour ----------------------------------------------------------------------

    def ready(self) -> bool:
        """True when a new task for this interface would get a slot within the lookahead,
        counting the tasks already taken that have not asked for their slot yet (without
        them, every worker polling at the same moment would take one)."""
        now = self.clock()
        with self._lock:
            while self._claims and self._claims[0] < now - CLAIM_TTL:
                self._claims.popleft()  # taken but never came to acquire: forget it
            claimed = len(self._claims)
        return max(self.next_free(), now) + claimed * self.spacing - now < self.lookahead

    def skip_slot(self) -> None:
        """Spend the next slot without calling: the one a predecessor may just have used."""
        self._reserve(self.clock(), float("inf"))

    def claim(self) -> None:
        """A worker took a task for this interface; its `acquire` follows shortly."""
        with self._lock:
            self._claims.append(self.clock())

    def _unclaim(self) -> None:
        with self._lock:
            if self._claims:
                self._claims.popleft()

    def acquire(self, max_wait: float | None = None, claimed: bool = True) -> float:
        """Wait for a slot and return the time waited; raise SlotTooFar rather than wait
        longer than `max_wait` (default: the lookahead plus one slot). `claimed`: the caller's
        task was counted by `claim()` when it was taken (its first call, not its next page)."""
        limit = self.lookahead + self.spacing if max_wait is None else max_wait
        if claimed:
            self._unclaim()
        start = self.clock()
        deadline = start + limit
        while True:
            now = self.clock()
            slot = self._reserve(now, max(0.0, deadline - now))
            if slot is None:
                until, reason = self.paused()
                delay = max(self.next_free() - now, self.spacing)
                raise SlotTooFar(self.api, delay, reason if until > now else "busy")
            if slot > now:
                self.sleep(slot - now)
            # A pause that began while we slept (a rate-limit reply to another worker) wins:
            # the slot stays spent, which only errs on the side of fewer calls.
            until, _ = self.paused()
            if until <= slot:
                return self.clock() - start

    def rejected(self, scope: str = "minute", until: float | None = None) -> float:
        """Record a rate-limit reply and pause; return the pause in seconds.

        The API refused a call our pacing allowed, so something else spends this budget too
        (another client on the same token, a call retried by the network). Back off for
        five slots, doubling on each consecutive refusal, up to a whole window."""
        now = self.clock()
        with self._lock:
            self._rejections += 1
            n = self._rejections
        if until is None:
            base = max(1.0, 5 * self.spacing)
            until = now + min(WINDOW, base * 2 ** (n - 1))
        self.pause_until(until, f"API refused a call ({scope} limit)")
        return until - now

    def succeeded(self) -> None:
        """A call went through: the next refusal starts the back-off afresh."""
        if self._rejections:
            with self._lock:
                self._rejections = 0
