"""The limiter: pace calls to one interface so that no sliding window holds too many.

The API counts calls over a sliding 60-second window, at arrival, per token. A limiter hands out
*slots*: times at which a caller may start a call. Slots are spaced `(60 + margin) / limit`
seconds apart, so any 60-second stretch holds at most `limit * 60 / (60 + margin)` of them — the
margin absorbs the jitter between our clock and the server's (network delay, thread wake-up), and
costs `margin / 60` of the budget (0.6 s = 1%). A call that cannot leave within half the margin
of its slot (a loaded machine) gives that slot up and takes another, so the margin holds: the
limiter checks on waking, and the provider again just before the request is sent (`Slot.send_by`),
since on a busy machine a thread can lose the processor for longer than that in between.

Even spacing (GCRA with a burst of one) rather than a sliding log: a log lets `limit` calls go
at once, and the first call of the next burst then lands on the server's window edge, where a
millisecond of jitter is a refusal.

Where the slot history lives is the backend's business (`Backend`, one file each): in this
process (`memory`, the stub for tests), in a file of the data directory shared by its processes
(`local`), or in Redis for every process on every machine (`redis`). Backends speak in seconds
relative to their own "now" — Redis's clock, for the Redis backend — so clocks that differ
between machines never meet.

`ready()` is what the fast queue asks before it takes a task for an interface: there is room when
the next free slot is within `lookahead` seconds. That keeps a few calls' worth of workers
waiting per interface, never all fifty on one slow interface while another sits idle.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from neo_cli.backoff import Backoff
from neo_cli.errors import LimiterUnavailable, SlotMissed, SlotTooFar

WINDOW = 60.0
CLAIM_TTL = 5.0  # seconds a taken task may take to reach `acquire` before its claim lapses
VIEW_TTL = 0.1  # seconds `ready()` trusts what it last read of the shared state
NEVER = float("inf")

log = logging.getLogger("neo.limiter")

__all__ = ["WINDOW", "Backend", "Limiter", "Slot", "SlotTooFar", "State", "View"]


@dataclass(frozen=True)
class Slot:
    """A slot taken: the seconds waited for it, and the time (on `clock`, the limiter's) by
    which its call must have left."""

    api: str
    waited: float
    send_by: float
    clock: Callable[[], float]

    def leave(self) -> None:
        """Raise SlotMissed when it is past `send_by`: a provider calls it as the last thing
        before its request goes out, so the time the limiter cannot see (building the
        request, waiting for the processor) is checked too."""
        late = self.clock() - self.send_by
        if late > 0:
            raise SlotMissed(self.api, late)


class State(tuple):
    """(next_in, pause_left, reason): seconds until a slot could be granted (>= 0, pauses
    included), seconds of pause left (<= 0: none; inf: stopped), and the pause's reason."""

    __slots__ = ()

    def __new__(cls, next_in: float, pause_left: float, reason: str):
        return super().__new__(cls, (next_in, pause_left, reason))


class Backend(ABC):
    """Where one budget's slot history lives: every limiter of a process shares one backend,
    and every process that shares the backend's store shares the budget."""

    name = "backend"

    @abstractmethod
    def reserve(self, api: str, spacing: float, horizon: float) -> float | None:
        """Atomically take `api`'s next slot if it is within `horizon` seconds; return the
        seconds until it, or None (nothing taken). The slot after it is `spacing` later."""

    @abstractmethod
    def state(self, api: str) -> State:
        """What a caller would meet now."""

    def states(self, apis: Sequence[str]) -> dict[str, State]:
        """`state` of several interfaces at once (one round trip where the store is remote)."""
        return {api: self.state(api) for api in apis}

    @abstractmethod
    def pause(self, api: str, seconds: float, reason: str) -> None:
        """No slot for `api` for `seconds` (never shortens a pause; inf stops it until
        `clear_stops`)."""

    @abstractmethod
    def clear_stops(self) -> None:
        """Lift every stop (a bad token, a missing permission) of this budget: a new run
        tries again, and finds out with one call."""

    def check(self) -> None:  # noqa: B027 - a store on this machine is always there
        """Raise LimiterUnavailable when the store cannot be reached."""

    def describe(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class View:
    """What a process knows of its budget: every interface read in one go, trusted for
    `VIEW_TTL` seconds, and kept up to date meanwhile by what this process itself learns (the
    slots it takes, the refusals it meets). The queue's gate asks `ready()` of every interface
    on every dequeue, and fifty workers poll: they read this, not the store."""

    def __init__(self, backend: Backend, apis: Sequence[str], clock: Callable[[], float]):
        self.backend, self.apis, self.clock = backend, tuple(apis), clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        # api -> [next slot at, paused until, reason], on this process's clock
        self._known: dict[str, list] = {}

    def get(self, api: str) -> State:
        with self._lock:
            now, at = self.clock(), self._read_at
            # (A clock that went back by more than a second makes the read stale too.)
            if at is None or not -1.0 < now - at < VIEW_TTL or api not in self._known:
                if api not in self.apis:
                    self.apis += (api,)
                states = self.backend.states(self.apis)
                # Relative to the end of the read: what took time errs towards "later".
                now = self.clock()
                self._known = {a: [now + n, now + left, r] for a, (n, left, r) in states.items()}
                self._read_at = now
            next_at, until, reason = self._known[api]
        return State(max(0.0, max(next_at, until) - now), until - now, reason)

    def learned(self, api: str, state: State | None = None, next_at: float | None = None) -> None:
        """This process just read `state` fresh, or took a slot that moves the next to
        `next_at`: fold it in without another read."""
        now = self.clock()
        with self._lock:
            known = self._known.get(api)
            if known is None:
                return
            if state is not None:
                known[:] = [now + state[0], now + state[1], state[2]]
            if next_at is not None:
                known[0] = max(known[0], next_at)

    def invalidate(self) -> None:
        with self._lock:
            self._read_at = None


class Limiter:
    """Hands out call slots for one interface; shared by every worker of a process, and
    through its backend by every process on the same budget."""

    def __init__(
        self,
        api: str,
        limit: int,
        backend: Backend,
        *,
        margin: float = 0.6,
        lookahead: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        view: View | None = None,
    ):
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.api = api
        self.limit = limit
        self.backend = backend
        self.spacing = (WINDOW + margin) / limit
        # A caller that wakes this much after its slot gives the slot up and takes another:
        # a call that leaves late lands nearer the calls after it than the spacing allows,
        # and on a loaded machine a thread can oversleep by more than the whole margin.
        self.max_late = max(margin / 2, 0.01)
        self.lookahead = max(lookahead, self.spacing)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._rejections = 0
        self.late = 0  # slots given up: the caller woke, or its call left, too late for them
        self._claims: deque[float] = deque()
        self.view = view or View(backend, [api], clock)
        self._down = Backoff(1.0, 30.0)

    # -- reading the shared state --------------------------------------------------------------

    def _state(self, fresh: bool = False) -> State:
        if fresh:
            state = self.backend.state(self.api)
            self.view.learned(self.api, state=state)
            return state
        return self.view.get(self.api)

    def next_free(self) -> float:
        """The earliest time (this process's clock) a new slot could be granted."""
        return self.clock() + self._state(fresh=True)[0]

    def paused(self) -> tuple[float, str]:
        """(until, reason) of the current pause, on this process's clock; until <= now when
        not paused, inf when stopped. An unreachable store reads as a pause of its own."""
        now = self.clock()
        try:
            _, left, reason = self._state(fresh=True)
        except LimiterUnavailable as exc:
            return now + self._down.delay(self._down.tries + 1), str(exc)
        return now + left, reason

    def pause_until(self, until: float, reason: str) -> None:
        """No slot before `until` (this process's clock), for every process on the budget."""
        try:
            self.backend.pause(self.api, until - self.clock(), reason)
        except LimiterUnavailable as exc:
            log.warning("%s: could not record a pause (%s): %s", self.api, reason, exc)
        self.view.invalidate()

    # -- the fast queue's gate -----------------------------------------------------------------

    def ready(self) -> bool:
        """True when a new task for this interface would get a slot within the lookahead,
        counting the tasks already taken here that have not asked for their slot yet (without
        them, every worker polling at the same moment would take one). False while the
        store is unreachable: a task taken then could not be called anyway."""
        now = self.clock()
        with self._lock:
            while self._claims and self._claims[0] < now - CLAIM_TTL:
                self._claims.popleft()  # taken but never came to acquire: forget it
            claimed = len(self._claims)
        try:
            next_in = self._state()[0]
        except LimiterUnavailable:
            return False
        return next_in + claimed * self.spacing < self.lookahead

    def claim(self) -> None:
        """A worker took a task for this interface; its `acquire` follows shortly."""
        with self._lock:
            self._claims.append(self.clock())

    def _unclaim(self) -> None:
        with self._lock:
            if self._claims:
                self._claims.popleft()

    # -- calling -----------------------------------------------------------------------------

    def acquire(self, max_wait: float | None = None, claimed: bool = True) -> float:
        """Wait for a slot and return the time waited (`take`, for a caller that does not
        check the slot's deadline itself)."""
        return self.take(max_wait, claimed).waited

    def take(self, max_wait: float | None = None, claimed: bool = True) -> Slot:
        """Wait for a slot and return it; raise SlotTooFar rather than wait longer than
        `max_wait` (default: the lookahead plus one slot), or while the store is unreachable
        (fail closed: no slot, no call). `claimed`: the caller's task was counted by
        `claim()` when it was taken (its first call, not its next page)."""
        limit = self.lookahead + self.spacing if max_wait is None else max_wait
        start = self.clock()
        deadline = start + limit
        while True:
            try:
                try:
                    delay = self.backend.reserve(
                        self.api, self.spacing, max(0.0, deadline - self.clock())
                    )
                    if delay is not None:
                        self._down.reset()
                        self.view.learned(self.api, next_at=self.clock() + delay + self.spacing)
                finally:
                    # The claim ends only once its slot is in the view: in between, the
                    # gate would see neither and let one task too many in.
                    if claimed:
                        self._unclaim()
                        claimed = False
                if delay is None:
                    next_in, left, reason = self._state(fresh=True)
                    raise SlotTooFar(
                        self.api, max(next_in, self.spacing), reason if left > 0 else "busy"
                    )
                slot = self.clock() + delay
                if delay <= 0:
                    return self._slot(start, slot)
                if self.sleep(delay) is True:
                    # The sleep is a stop flag's wait (the fast consumer's), and the flag is
                    # set: give the slot up rather than hold `neo stop` for up to a minute.
                    raise SlotTooFar(self.api, max(0.0, slot - self.clock()), "stopping")
                # A pause that began while we slept (a rate-limit reply to another worker,
                # or another machine) wins: the slot stays spent, which only errs on the side
                # of fewer calls.
                paused = self._state(fresh=True)[1] > 0
                if self.clock() - slot > self.max_late:
                    # Overslept (after the read, which takes time too): the slot stays spent,
                    # unused; take the next.
                    self.missed()
                    continue
                if not paused:
                    return self._slot(start, slot)
            except LimiterUnavailable as exc:
                raise SlotTooFar(self.api, self._down.next(), str(exc)) from None

    def _slot(self, start: float, at: float) -> Slot:
        return Slot(self.api, self.clock() - start, at + self.max_late, self.clock)

    def missed(self) -> None:
        """A slot given up because its call could not leave in time for it."""
        with self._lock:
            self.late += 1

    def rejected(self, scope: str = "minute", until: float | None = None) -> float:
        """Record a rate-limit reply and pause every process on the budget; return the pause.

        The API refused a call our pacing allowed, so something else spends this budget too
        (another client on the same token, a call retried by the network). Back off for
        five slots, doubling on each consecutive refusal, up to a whole window."""
        now = self.clock()
        with self._lock:
            self._rejections += 1
            n = self._rejections
        if until is None:
            until = now + Backoff(max(1.0, 5 * self.spacing), WINDOW).delay(n)
        self.pause_until(until, f"API refused a call ({scope} limit)")
        return until - now

    def succeeded(self) -> None:
        """A call went through: the next refusal starts the back-off afresh."""
        if self._rejections:
            with self._lock:
                self._rejections = 0
