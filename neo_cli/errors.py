"""Every error neo raises on purpose, and the exit code the CLI gives each.

    NeoError                      root; the CLI prints `str(error)` as one red line
    ├── InputError                a bad command-line value, config key or input file   (exit 2)
    ├── AlreadyRunning            neo already runs against this data directory         (exit 4)
    ├── NotRunning                stop/status found nothing running                     (exit 3)
    ├── StartFailed               a consumer did not come up                            (exit 5)
    ├── QueueFull                 enqueue would pass [queue] max_pending                (exit 6)
    ├── DatabaseUnavailable       the DuckDB file is locked, corrupt or unwritable      (exit 7)
    ├── LimiterUnavailable        the shared rate limiter (Redis) cannot be reached     (exit 8)
    ├── QueueUnavailable          the queues on Redis cannot be reached                 (exit 8)
    ├── SlotTooFar                the next call slot is further away than a caller waits
    ├── SplitNeeded               a packed call must be asked again one symbol at a time
    └── ProviderError             anything an API call ends with
        ├── TransientError        worth retrying: timeouts, resets, 5xx, malformed replies
        ├── RateLimited           the API said "too many calls"; pause, retry for free
        └── PermanentError        retrying cannot help: bad parameters, unknown interface
            └── AuthError         bad token or no permission: stop calling this API

Only the CLI and the process mains (supervisor, consumers) turn these into exit codes, from the
one table below; the core raises them with the data a caller needs.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_NOT_RUNNING = 3
EXIT_ALREADY_RUNNING = 4
EXIT_UNHEALTHY = 5
EXIT_QUEUE_FULL = 6
EXIT_DATABASE = 7
EXIT_LIMITER = 8
EXIT_INCOMPLETE = 9  # `neo verify`: the database has holes

# Every process's exit codes: the CLI's commands, the supervisor, the consumers.
EXIT_CODES = {
    EXIT_OK: "success (status: running and healthy; a consumer: stopped when asked)",
    EXIT_FAILURE: "an unexpected failure (its log has the traceback)",
    EXIT_INPUT: "a bad value: command line, config key, settings or input file, metrics port",
    EXIT_NOT_RUNNING: "neo is not running for this data directory",
    EXIT_ALREADY_RUNNING: "neo already runs here, or another writer has this cluster",
    EXIT_UNHEALTHY: "a consumer did not come up, or status found it unhealthy",
    EXIT_QUEUE_FULL: "the queue is full ([queue] max_pending)",
    EXIT_DATABASE: "the DuckDB file cannot be used (locked, corrupt, unwritable)",
    EXIT_LIMITER: "Redis (the limiter's or the queues') cannot be reached",
    EXIT_INCOMPLETE: "neo verify: the database has holes",
}


def describe_exit(code: int) -> str:
    """'exit code 7 (the DuckDB file cannot be used …)', or the signal that killed it."""
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = EXIT_CODES.get(code)
    return f"exit code {code}" + (f" ({meaning})" if meaning else "")


class NeoError(Exception):
    """Raised for any failure neo reports to its user as one line."""

    exit_code = EXIT_FAILURE


class InputError(NeoError):
    """Raised when a value from the command line, a config file or an input file is invalid."""

    exit_code = EXIT_INPUT


class AlreadyRunning(NeoError):
    """Raised when `neo start` finds a live supervisor for the same data directory."""

    exit_code = EXIT_ALREADY_RUNNING

    def __init__(self, pid: int, data_dir: str, message: str = ""):
        super().__init__(message or f"neo is already running (supervisor pid {pid}) for {data_dir}")
        self.pid = pid


class NotRunning(NeoError):
    """Raised when a command needs a running neo and there is none."""

    exit_code = EXIT_NOT_RUNNING


class StartFailed(NeoError):
    """Raised when the consumers did not come up; the message says why."""

    exit_code = EXIT_UNHEALTHY


class QueueFull(NeoError):
    """Raised when enqueuing would push the fast queue past `[queue] max_pending`."""

    exit_code = EXIT_QUEUE_FULL

    def __init__(self, pending: int, adding: int, limit: int):
        super().__init__(
            f"queue full: {pending} tasks pending + {adding} new > max_pending {limit}; "
            "wait for it to drain, use --wait, or raise [queue] max_pending"
        )
        self.pending, self.adding, self.limit = pending, adding, limit


class DatabaseUnavailable(NeoError):
    """Raised when the DuckDB file cannot be opened: locked by another program (`locked`: worth
    waiting for), corrupt, or not writable."""

    exit_code = EXIT_DATABASE

    def __init__(self, message: str, locked: bool = False):
        super().__init__(message)
        self.locked = locked


class ProviderError(NeoError):
    """Raised when an API call fails; `api` is the interface name."""

    def __init__(self, message: str, api: str = ""):
        super().__init__(message)
        self.api = api
        self.message = message


class TransientError(ProviderError):
    """Raised for failures that a later attempt may not meet: timeouts, connection resets,
    5xx replies, malformed or truncated replies."""


class RateLimited(ProviderError):
    """Raised when the API refuses a call for being over a limit.

    `scope` is "minute", "hour" or "day": a minute limit is a short pause, a daily cap stops the
    interface until the next day."""

    def __init__(self, message: str, api: str = "", scope: str = "minute"):
        super().__init__(message, api)
        self.scope = scope


class PermanentError(ProviderError):
    """Raised when the API rejects the call itself (bad parameters, unknown interface): the same
    call will fail again, so it is dead-lettered at once."""


class AuthError(PermanentError):
    """Raised for a bad token (`scope` "token": every interface fails) or a missing permission
    (`scope` "interface": this interface fails): further calls would fail too."""

    def __init__(self, message: str, api: str = "", scope: str = "token"):
        super().__init__(message, api)
        self.scope = scope


class LimiterUnavailable(NeoError):
    """Raised when the shared rate limiter's store (Redis) cannot be reached; `where` names it
    with any password masked. The limiter fails closed: no slot, no call."""

    exit_code = EXIT_LIMITER

    def __init__(self, where: str, why: str = ""):
        super().__init__(f"limiter: Redis unreachable at {where}" + (f" ({why})" if why else ""))
        self.where, self.why = where, why


class QueueUnavailable(NeoError):
    """Raised when the queues' Redis cannot be reached to enqueue; nothing was enqueued.
    (Consumers do not raise it: they wait and reconnect.)"""

    exit_code = EXIT_LIMITER  # one code for "Redis cannot be reached"

    def __init__(self, where: str, why: str = ""):
        super().__init__(f"queue: Redis unreachable at {where}" + (f" ({why})" if why else ""))
        self.where, self.why = where, why


class SlotTooFar(NeoError):
    """Raised by a limiter's `acquire` when the next slot is further away than the caller
    should sleep; `delay` is how long until it. The caller gives its worker back and retries."""

    def __init__(self, api: str, delay: float, reason: str):
        super().__init__(f"{api}: next call slot in {delay:.1f}s ({reason})")
        self.api, self.delay, self.reason = api, delay, reason


class SlotMissed(NeoError):
    """Raised by a provider before it sends a call that could not leave by its slot's
    deadline (a loaded machine kept the thread from it): sent now, it would land nearer the
    calls after it than the limiter's spacing allows. Nothing was sent; take another slot."""

    def __init__(self, api: str, late: float):
        super().__init__(f"{api}: call {late:.2f}s late for its slot, not sent")
        self.api, self.late = api, late


class SplitNeeded(NeoError):
    """Raised when a packed call must be asked for again one symbol at a time."""
