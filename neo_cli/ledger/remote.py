"""The ledger from a download machine: events sent to the one machine that keeps it.

The ledger stays a SQLite file beside the DuckDB file (`--role slow`, or `all`): its
transactions (a unit's state with the catalog and coverage) and its planning queries stay what
they are. A fast consumer on another machine (`--role fast`) never opens it. What it would
write becomes a *ledger task* on the slow queue — on Redis, durable, leased like any task — that
the slow consumer applies; what it would read comes from Redis:

    write                      from a download machine
    attempt failed / note      a ledger task (the attempt count: a Redis counter, read back)
    dead-lettered / empty      a ledger task
    split into units           a ledger task; the slow side records the children, *then*
                               enqueues them (recorded first, as on one machine)
    rows on their way          nothing: the save task carries the unit, and the slow consumer
                               marks it `saving` when it takes the task — so "a save is
                               enqueued before a unit is marked saving" holds by construction
    read                       from Redis
    a batch's symbols          `universe:<batch>`, written by `neo enqueue` before its units
    whole-market refusals      `flags`, written by whoever learns one first

Saves stay idempotent and a unit never moves backwards (`queued`/`retrying` → later states
only), so a ledger task applied late or twice changes nothing it should not.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from neo_cli.ledger.sqlite import VIP_REFUSED, Ledger
from neo_cli.units import Unit

if TYPE_CHECKING:
    from neo_cli.pipeline import Pipeline

log = logging.getLogger("neo.ledger")

LEDGER_KIND = "ledger"  # the kind of the slow queue's ledger tasks

ATTEMPTS_TTL = 30 * 86_400  # a unit's attempt counter outlives any retry schedule
FLAGS_TTL = 5.0  # seconds a read of the refusals is reused


class RemoteLedger:
    """What a download needs of the ledger, on a machine without it."""

    remote = True

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        storage = pipeline.slow.storage
        self.conn = storage.conn
        self.key = storage.shared_key
        self._flags: dict[str, str] = {}
        self._flags_at = float("-inf")

    def _send(self, op: str, *args: Any) -> None:
        self.pipeline.slow.enqueue(self.pipeline.ledger_task.s(LEDGER_KIND, op, args))

    def attempt_failed(self, unit: Unit, error: str, error_class: str) -> int:
        key = self.key(f"attempts:{unit.id}")
        pipe = self.conn.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, ATTEMPTS_TTL)
        attempts = int(pipe.execute()[0])
        self._send("attempt_failed", unit.to_dict(), error, error_class)
        return attempts

    def note(self, unit: Unit, error: str, error_class: str) -> None:
        self._send("note", unit.to_dict(), error, error_class)

    def mark_dead(self, unit: Unit, error: str, error_class: str) -> None:
        self._send("mark_dead", unit.to_dict(), error, error_class)

    def mark_empty(self, unit: Unit) -> None:
        self._send("mark_empty", unit.to_dict())

    def mark_saving(self, unit: Unit, save_id: str, rows: int) -> None:
        """Nothing to send: the slow consumer marks it when it takes the save task."""

    def mark_saving_many(self, entries) -> None:
        """Nothing to send, as for `mark_saving`."""

    def split_units(self, unit: Unit, children: list[Unit], enqueue) -> None:
        """The slow side records the children, then enqueues them."""
        self._send("split", unit.to_dict(), [c.to_dict() for c in children])

    def refuse_vip(self, statement: str, message: str) -> bool:
        new = bool(self.conn.hsetnx(self.key("flags"), VIP_REFUSED + statement, message))
        if new:
            self._flags[VIP_REFUSED + statement] = message
            self._send("refuse_vip", statement, message)
        return new

    def vip_refused(self, statement: str) -> str:
        now = time.monotonic()
        if now - self._flags_at > FLAGS_TTL:
            raw = self.conn.hgetall(self.key("flags"))
            self._flags = {k.decode(): v.decode() for k, v in raw.items()}
            self._flags_at = now
        return self._flags.get(VIP_REFUSED + statement, "")

    def universe(self, batch: str) -> set[str]:
        return {c.decode() for c in self.conn.smembers(self.key(f"universe:{batch}"))}

    def close(self) -> None:
        """The connection is the queue's."""


def local_split(ledger: Ledger, unit: Unit, children: list[Unit], enqueue) -> None:
    """On the ledger's machine: record the children first, then enqueue them (a crash in
    between leaves units recovery finds)."""
    ledger.split(unit, children)
    enqueue(children)


def apply(ledger: Ledger, pipeline: Pipeline, op: str, args: list) -> None:
    """A ledger task from a download machine, on the machine that keeps the ledger."""
    if op == "ask":
        answer(pipeline, *args)
    elif op == "split":
        parent, children = Unit.from_dict(args[0]), [Unit.from_dict(c) for c in args[1]]
        local_split(ledger, parent, children, pipeline.enqueue_units)
    elif op == "refuse_vip":
        ledger.refuse_vip(*args)
    elif op in ("attempt_failed", "note", "mark_dead"):
        getattr(ledger, op)(Unit.from_dict(args[0]), *args[1:])
    elif op == "mark_empty":
        ledger.mark_empty(Unit.from_dict(args[0]))
    else:
        log.error("unknown ledger task %r: dropped", op)


def publish_universe(pipeline: Pipeline, batch: str, codes: list[str], keep_days: int) -> None:
    """`neo enqueue`, queues on Redis: a whole-market batch's symbols, where every download
    machine reads them, before any of its units is on the queue."""
    storage = pipeline.fast.storage
    if not codes or not getattr(storage, "has_leases", False):
        return
    key = storage.shared_key(f"universe:{batch}")
    pipe = storage.conn.pipeline(transaction=True)
    pipe.sadd(key, *codes)
    pipe.expire(key, keep_days * 86_400)
    pipe.execute()


def publish_flags(pipeline: Pipeline, ledger: Ledger, statements) -> None:
    """At the slow consumer's start: refusals the ledger learned before, where every download
    machine reads them."""
    storage = pipeline.slow.storage
    for statement in statements:
        why = ledger.vip_refused(statement)
        if why:
            storage.conn.hsetnx(storage.shared_key("flags"), VIP_REFUSED + statement, why)


# -- asking the ledger's machine (neo enqueue, neo dlq on a download machine) ------------------

ASK_TIMEOUT = 600.0  # seconds a command waits for the ledger's machine to answer


def ask(settings, op: str, payload: dict) -> Any:
    """Have the machine with the ledger do `op` (its slow consumer takes the request off the
    slow queue) and return its answer; its error is raised here with its exit code."""
    import json
    import uuid

    from neo_cli.errors import NeoError, NotRunning
    from neo_cli.pipeline import Pipeline

    pipeline = Pipeline(settings)
    storage = pipeline.slow.storage
    try:
        writers = [c for c in storage.consumers() if c.get("queue") == "slow" and not c["lost"]]
    except Exception as exc:  # noqa: BLE001 - the queues' Redis away
        raise storage.unavailable(exc) from None
    if not writers:
        raise NotRunning(
            f"no slow consumer runs in cluster {storage.cluster!r}: start the machine with the "
            "database (neo start --role slow) first"
        )
    reply = storage.shared_key(f"reply:{uuid.uuid4().hex}")
    pipeline.slow.enqueue(pipeline.ledger_task.s(LEDGER_KIND, "ask", [reply, op, payload]))
    deadline = time.monotonic() + ASK_TIMEOUT
    while time.monotonic() < deadline:
        got = storage.conn.blpop([reply], timeout=2)  # under the socket timeout
        if got:
            answer = json.loads(got[1])
            if "error" in answer:
                error = NeoError(answer["error"])
                error.exit_code = answer["code"]
                raise error
            return answer["ok"]
    raise NotRunning(f"the ledger's machine ({writers[0]['id']}) did not answer in time")


def _answer(pipeline: Pipeline, op: str, payload: dict) -> Any:
    from neo_cli import deadletters
    from neo_cli.enqueue import enqueue
    from neo_cli.planner import Request
    from neo_cli.tasktypes import task_type

    settings = pipeline.settings
    if op == "enqueue":
        request = Request(
            task_type=task_type(payload["task_type"]),
            symbols=payload.get("symbols"),
            start=_date(payload.get("start")),
            end=_date(payload.get("end")),
            full=payload.get("full", False),
            priority=payload.get("priority", 0),
            listed_only=payload.get("listed_only", False),
        )
        done = enqueue(settings, request, wait=payload.get("wait", False))
        return {
            "batch": done.batch,
            "ids": done.ids,
            "queued": done.plan.queued,
            "current": done.plan.current,
        }
    if op == "dlq_list":
        return [_record(r) for r in deadletters.list_dead(settings, payload.get("api"))]
    if op in ("dlq_retry", "dlq_purge"):
        act = deadletters.retry if op == "dlq_retry" else deadletters.purge
        return act(settings, payload["ids"], payload["all"], payload.get("api"))
    raise ValueError(f"unknown request {op!r}")


def answer(pipeline: Pipeline, reply: str, op: str, payload: dict) -> None:
    """On the ledger's machine: do what a download machine asked; the answer (or the error,
    with its exit code) goes to its reply key."""
    import json

    from neo_cli.errors import NeoError

    try:
        body: dict[str, Any] = {"ok": _answer(pipeline, op, payload)}
    except NeoError as exc:
        body = {"error": str(exc), "code": exc.exit_code}
    except Exception as exc:  # noqa: BLE001 - the asker must hear of it, not wait forever
        log.exception("request %s failed", op)
        body = {"error": f"on the ledger's machine: {type(exc).__name__}: {exc}", "code": 1}
    conn = pipeline.slow.storage.conn
    pipe = conn.pipeline(transaction=True)
    pipe.rpush(reply, json.dumps(body))
    pipe.expire(reply, int(ASK_TIMEOUT))
    pipe.execute()


def _date(text: str | None):
    from neo_cli.dates import parse

    return parse(text) if text else None


def _record(r) -> dict:
    return {
        "unit": r.unit.to_dict(),
        "state": r.state,
        "attempts": r.attempts,
        "rows": r.rows,
        "save_id": r.save_id,
        "error": r.error,
        "error_class": r.error_class,
        "created": r.created,
        "updated": r.updated,
    }


def record_of(d: dict):
    from neo_cli.ledger.sqlite import UnitRecord

    return UnitRecord(**{**d, "unit": Unit.from_dict(d["unit"])})


def forget_attempts(pipeline: Pipeline, unit_ids: list[str]) -> None:
    """`neo dlq retry`: the download machines' attempt counters start again too."""
    storage = pipeline.fast.storage
    if unit_ids and getattr(storage, "has_leases", False):
        storage.conn.delete(*(storage.shared_key(f"attempts:{uid}") for uid in unit_ids))
