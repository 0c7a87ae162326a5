"""Downloading one unit: paced calls, and paging past the API's row cap.

The planner sizes units to fit under the cap, but the API returns at most `row_cap` rows a call
(newest first) and does not reliably say when it cut a reply short. So a reply that reaches the
cap, or says `has_more`, is never taken for the whole range: the next call asks for the range up
to the oldest date received (inclusive — the cut may fall inside a date; the saver keeps one copy
of each key), until a reply comes back short. A list without dates (stock_basic) pages with the
API's `offset` parameter instead.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from neo_cli.backoff import Backoff
from neo_cli.dates import next_midnight
from neo_cli.errors import (
    AuthError,
    PermanentError,
    RateLimited,
    SlotMissed,
    SlotTooFar,
    SplitNeeded,
    TransientError,
)
from neo_cli.ledger import Ledger
from neo_cli.limits import Limiter, Limiters
from neo_cli.limits.base import NEVER
from neo_cli.metrics import Recorder
from neo_cli.providers.base import Provider, Reply
from neo_cli.strategies import ALL
from neo_cli.tasktypes import VIP, dataset
from neo_cli.units import Unit

log = logging.getLogger("neo.download")

MAX_PAGES = 100  # a unit needing more has a planning bug; stop rather than loop
MAX_MISSED = 3  # slots a call may give up in a row for leaving late
_cut_below: set[tuple[str, int]] = set()  # (interface, rows) replies cut below [row_caps]


def check(api: str, reply: Reply, asked: tuple[str, ...]) -> None:
    """Raise TransientError for a reply whose shape is wrong (truncated or garbled)."""
    width = len(reply.fields)
    if not width or any(
        not isinstance(row, list | tuple) or len(row) != width for row in reply.items
    ):
        raise TransientError("malformed reply: rows do not match the fields", api)
    missing = [f for f in dataset(api).keys if f not in reply.fields and f in asked]
    if missing:
        raise TransientError(f"malformed reply: missing key fields {', '.join(missing)}", api)


@dataclass
class Calls:
    """The calls one attempt made, and how many of their replies were taken: a call made and
    not taken is the one the attempt's outcome names (retried, rate-limited, dead)."""

    made: int = 0
    taken: int = 0


def fetch(
    provider: Provider,
    limiter: Limiter,
    unit: Unit,
    recorder: Recorder,
    cap: int | None = None,
    calls: Calls | None = None,
) -> Reply:
    """Every row of `unit`, over as many calls as the row cap (`[row_caps]`) needs."""
    calls = calls if calls is not None else Calls()
    d = dataset(unit.api)
    cap = cap or d.row_cap
    params = dict(unit.params)
    fields: tuple[str, ...] | None = None
    items: list[list] = []
    for page in range(MAX_PAGES):
        reply = _paced_call(provider, limiter, unit.api, params, d.fields, recorder, calls, page)
        limiter.succeeded()
        check(unit.api, reply, d.fields)
        calls.taken += 1
        recorder.incr(unit.api, "calls_ok")
        if fields is None:
            fields = reply.fields
        elif reply.fields != fields:
            raise TransientError("malformed reply: fields changed between pages", unit.api)
        items.extend(list(row) for row in reply.items)

        cut = reply.has_more or len(reply.items) >= cap
        if not cut:
            break
        if not reply.items:
            raise TransientError("malformed reply: has_more without rows", unit.api)
        if len(reply.items) < cap and (unit.api, len(reply.items)) not in _cut_below:
            _cut_below.add((unit.api, len(reply.items)))  # said once per process and size
            log.warning(
                "%s: the API cut a reply at %d rows (has_more), below [row_caps] %s = %d; "
                "lower it so plans fit the real cap",
                unit.describe(),
                len(reply.items),
                unit.api,
                cap,
            )
        if len(unit.codes) > 1 and ALL not in unit.codes:
            # Where the API cuts a reply holding several symbols is its own business (by
            # date? by code?): ask for each symbol alone rather than guess.
            raise SplitNeeded(f"a packed reply reached the row cap ({cap})")
        if not d.date_field or "end_date" not in params or unit.api in VIP:
            # No date to split on (stock_basic), or a whole market's statements, many on each
            # announcement day: page with the API's offset parameter.
            params["offset"] = int(params.get("offset", 0)) + len(reply.items)
            continue
        if d.date_field not in fields:
            raise PermanentError(
                f"reply reached the row cap ({cap}) without {d.date_field} to split on",
                unit.api,
            )
        at = fields.index(d.date_field)
        oldest = min(str(row[at]) for row in reply.items if row[at])
        if oldest >= params["end_date"]:
            raise PermanentError(
                f"more than {cap} rows on {oldest}: the API cannot page this call", unit.api
            )
        params["end_date"] = oldest
    else:
        raise PermanentError(f"gave up after {MAX_PAGES} pages", unit.api)
    return Reply(fields or d.fields, items)


def _paced_call(
    provider: Provider,
    limiter: Limiter,
    api: str,
    params: Mapping,
    fields: tuple[str, ...],
    recorder: Recorder,
    calls: Calls,
    page: int,
) -> Reply:
    """One call in a slot of its own. A call that cannot leave by its slot's deadline (the
    machine kept its thread waiting) is not sent, and takes another slot; after
    `MAX_MISSED` in a row it goes anyway, rather than never."""
    missed = 0
    while True:
        # A next page waits its turn however long it takes: giving up would waste the pages
        # already fetched. The first call's task was claimed when it was taken.
        asked = time.monotonic()
        try:
            if page == 0 and not missed:
                slot = limiter.take()
            else:
                slot = limiter.take(max_wait=120.0 if page else None, claimed=False)
        finally:
            recorder.incr(api, "wait_ms", round((time.monotonic() - asked) * 1000))
        sent = True
        try:
            return provider.call(api, params, fields, slot if missed < MAX_MISSED else None)
        except SlotMissed:
            sent = False
            missed += 1
            limiter.missed()
        finally:
            if sent:
                recorder.incr(api, "calls")
                calls.made += 1


@dataclass
class RetryPolicy:
    """At most `max_attempts`; attempt n waits uniform(0, base * 2**(n-1)), capped (full
    jitter), so the retries of a burst of failures spread out instead of returning together."""

    max_attempts: int
    base_delay: float
    max_delay: float
    rng: random.Random

    def delay(self, attempt: int) -> float:
        return Backoff(self.base_delay, self.max_delay, jitter=True, rng=self.rng).delay(attempt)


@dataclass
class Downloader:
    """What a download needs at run time; shared by every fast worker of a process."""

    provider: Provider
    limiters: Mapping[str, Limiter]
    ledger: Ledger
    recorder: Recorder
    retry: RetryPolicy
    row_caps: Mapping[str, int] = field(default_factory=dict)  # [row_caps]
    statements_vip: str = "auto"  # [plan] statements_vip
    universes: dict[str, set[str]] = field(default_factory=dict)  # batch -> planned symbols


def build_downloader(
    settings, ledger: Ledger, recorder: Recorder, limiters: Limiters | None = None
) -> Downloader:
    """The provider, one limiter per interface on the configured backend (shared with every
    other process on the same budget: see neo_cli.limits) and the retry policy the settings
    describe. The provider's own one-off calls (the calendar) are paced by the same limiters."""
    from neo_cli.limits import build_limiters
    from neo_cli.providers import build_provider

    v = settings.values
    limiters = limiters if limiters is not None else build_limiters(settings)
    retry = RetryPolicy(
        v["retry"]["max_attempts"],
        v["retry"]["base_delay"],
        v["retry"]["max_delay"],
        random.Random(),
    )
    return Downloader(
        build_provider(settings, pace=limiters.pace),
        limiters,
        ledger,
        recorder,
        retry,
        settings.row_caps,
        v["plan"]["statements_vip"],
    )


@dataclass
class Outcome:
    """How one attempt at a unit ended: rows to save, a wait before the next attempt, or dead.

    `kind` is what the metrics count it as (`metrics.TASK_OUTCOMES`), or "waiting" for an
    attempt that made no call because its slot is far off (not a failure)."""

    reply: Reply | None = None
    retry_in: float | None = None
    dead: str = ""
    split: list[Unit] | None = None  # a packed call refused: one unit per symbol instead
    kind: str = "done"


def attempt(rt: Downloader, unit: Unit) -> Outcome:
    """Try `unit` once, classify the result and count it; the ledger is updated for
    failures."""
    calls = Calls()
    outcome = _attempt(rt, unit, calls)
    count(rt.recorder, unit.api, calls, outcome.kind)
    return outcome


def count(recorder: Recorder, api: str, calls: Calls, kind: str) -> None:
    """The one place a download's outcome is counted: the attempt by its kind, and the call
    whose reply was not taken (if one was) by what became of the attempt."""
    if kind != "waiting":
        recorder.incr(api, kind)
    failed = calls.made - calls.taken
    if failed:
        ended = kind if kind in ("rate_limited", "dead") else "retried"
        recorder.incr(api, f"calls_{ended}", failed)


def _attempt(rt: Downloader, unit: Unit, calls: Calls) -> Outcome:
    limiter = rt.limiters[unit.api]
    try:
        if unit.api in VIP and rt.statements_vip == "auto" and rt.ledger.vip_refused(VIP[unit.api]):
            return _per_symbol(rt, unit, "the account may not call it (found earlier)")
        reply = fetch(rt.provider, limiter, unit, rt.recorder, rt.row_caps.get(unit.api), calls)
        if unit.codes == (ALL,):
            reply = _planned_only(rt, unit, reply)
        return Outcome(reply=reply)
    except SlotTooFar as exc:
        # The interface is paused or its slots are taken: come back when a slot is near
        # (an interface stopped for good is looked at again every AUTH_RETRY seconds).
        return Outcome(retry_in=min(exc.delay, AUTH_RETRY), kind="waiting")
    except RateLimited as exc:
        return Outcome(retry_in=_rate_limited(rt, limiter, unit, exc), kind="rate_limited")
    except AuthError as exc:
        if unit.api in VIP and exc.scope == "interface" and rt.statements_vip == "auto":
            return _vip_refused(rt, unit, exc)
        return Outcome(retry_in=_stop_calling(rt, unit, exc), kind="retried")
    except SplitNeeded as exc:
        return _split(unit, str(exc))
    except PermanentError as exc:
        if len(unit.codes) > 1 and ALL not in unit.codes:
            # One bad symbol must not take the others down with it.
            return _split(unit, exc.message)
        rt.ledger.attempt_failed(unit, exc.message, "permanent")
        return _dead(rt, unit, exc.message, "permanent")
    except TransientError as exc:
        return _transient(rt, unit, exc.message, "transient")
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the unit
        log.error("%s: unexpected error\n%s", unit.describe(), traceback.format_exc())
        return _transient(rt, unit, f"{type(exc).__name__}: {exc}", "internal")


def _split(unit: Unit, why: str) -> Outcome:
    log.info("%s: %s; asking for each symbol alone", unit.describe(), why)
    return Outcome(
        split=[
            Unit(unit.api, {**unit.params, "ts_code": code}, (code,), unit.batch, unit.priority)
            for code in unit.codes
        ]
    )


def _vip_refused(rt: Downloader, unit: Unit, exc: AuthError) -> Outcome:
    """A permission reply to `income_vip` & co. under `statements_vip = "auto"`: the account
    lacks the points, not the statement. Remember it for good (every process reads it) and
    ask per symbol; the interface is not stopped."""
    if rt.ledger.refuse_vip(VIP[unit.api], exc.message):
        log.warning(
            "%s refused (%s): %s statements use one call per symbol from now on",
            unit.api,
            exc.message,
            VIP[unit.api],
        )
    return _per_symbol(rt, unit, "the account may not call it")


def _per_symbol(rt: Downloader, unit: Unit, why: str) -> Outcome:
    """A whole market's statements as one unit per symbol of the batch, same dates."""
    statement = VIP[unit.api]
    params = {k: v for k, v in unit.params.items() if k != "offset"}
    if not _universe(rt, unit):  # split into nothing would lose the window
        return _transient(
            rt, unit, f"batch {unit.batch}: its symbols are not recorded yet", "transient"
        )
    children = [
        Unit(statement, {**params, "ts_code": code}, (code,), unit.batch, unit.priority)
        for code in sorted(_universe(rt, unit))
    ]
    log.info("%s: %s; %d per-symbol task(s) instead", unit.describe(), why, len(children))
    return Outcome(split=children)


def _universe(rt: Downloader, unit: Unit) -> set[str]:
    """The symbols a whole-market unit's batch was planned for. Not cached while empty: the
    enqueue that records it may not have committed yet when its first task runs."""
    keep = rt.universes.get(unit.batch)
    if not keep:
        keep = rt.ledger.universe(unit.batch)
        if keep:
            rt.universes[unit.batch] = keep
    return keep


def _planned_only(rt: Downloader, unit: Unit, reply: Reply) -> Reply:
    """A whole-market reply holds every symbol that traded that day. Keep the symbols the plan
    was made for: a row saved for any other would move its last saved date past a history
    never fetched, and an incremental run would never fetch it."""
    keep = _universe(rt, unit)
    if not keep:
        raise TransientError(f"batch {unit.batch}: its symbols are not recorded yet", unit.api)
    if not reply.items and unit.api not in VIP:
        # An empty market day cannot be right: never record one as done. (A range with no
        # announcement in it can.)
        day = unit.params.get("trade_date", "")
        raise TransientError(
            f"no rows for the whole market on {day} (not published yet?)", unit.api
        )
    at = reply.fields.index("ts_code")
    return Reply(reply.fields, [row for row in reply.items if row[at] in keep], reply.has_more)


AUTH_RETRY = 300.0  # seconds between a stopped unit's looks at whether calls may resume


def _stop_calling(rt: Downloader, unit: Unit, exc: AuthError) -> float:
    """A bad token fails every call, a missing permission every call to one interface: stop
    calling (the queue's gate then leaves those tasks queued, none burnt), say so loudly, and
    keep the unit — it is not at fault. A restart with a working token resumes."""
    stopped = list(rt.limiters) if exc.scope == "token" else [unit.api]
    for api in stopped:
        rt.limiters[api].pause_until(NEVER, f"stopped: {exc.message}")
    what = "every interface" if exc.scope == "token" else unit.api
    log.error(
        "STOPPED %s: the API says %r. Tasks stay queued; fix the token or the account's "
        "permissions, then `neo stop` and `neo start`.",
        what,
        exc.message,
    )
    rt.ledger.note(unit, exc.message, f"auth ({exc.scope})")
    rt.recorder.incr(unit.api, "auth_errors")
    return AUTH_RETRY


def _rate_limited(rt: Downloader, limiter: Limiter, unit: Unit, exc: RateLimited) -> float:
    """Pause the interface (a minute limit briefly; hourly and daily caps until they reset)
    and retry without spending an attempt."""
    if exc.scope == "day":
        pause = limiter.rejected("day", until=next_midnight(limiter.clock()))
    elif exc.scope == "hour":
        now = limiter.clock()
        pause = limiter.rejected("hour", until=now - now % 3600 + 3600)
    else:
        pause = limiter.rejected("minute")
    rt.ledger.note(unit, exc.message, f"rate-limited ({exc.scope})")
    log.warning(
        "%s: rate-limited by the API (%s limit); %s paused for %.0fs",
        unit.describe(),
        exc.scope,
        unit.api,
        pause,
    )
    return pause


def _transient(rt: Downloader, unit: Unit, message: str, kind: str) -> Outcome:
    attempts = rt.ledger.attempt_failed(unit, message, kind)
    if attempts >= rt.retry.max_attempts:
        return _dead(rt, unit, f"{message} (after {attempts} attempts)", kind)
    delay = rt.retry.delay(attempts)
    log.info("%s: %s; attempt %d, retrying in %.1fs", unit.describe(), message, attempts, delay)
    return Outcome(retry_in=delay, kind="retried")


def _dead(rt: Downloader, unit: Unit, message: str, kind: str) -> Outcome:
    rt.ledger.mark_dead(unit, message, kind)
    log.warning("%s: dead-lettered (%s): %s", unit.describe(), kind, message)
    return Outcome(dead=message, kind="dead")
