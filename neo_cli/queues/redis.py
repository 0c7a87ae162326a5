"""The queue on Redis (many machines): neo's contract (`neo_cli.queues.base`) with leases.

Huey's own Redis storage pops a task destructively (`BRPOP`/`BZPOPMIN`): a consumer that dies
holding it loses it (huey docs; coleifer/huey#743). Here a dequeue is one Lua script that takes
the best task among the kinds the gate allows *and* records a lease — (task, owner, deadline
on the Redis server's clock) — so nothing is ever only in a worker's memory. The owner renews
its leases while it lives (`renew`), a finished task ends its lease (`ack`), and any process
may `reap`: a lease past its deadline puts its task back on its queue. A SIGKILLed consumer's
work is therefore back within a lease plus a reap interval, while everything else runs on.

Keys, under `neo:{<cluster>}:<queue>` (the braces keep one cluster's keys in one hash slot):

    q:<kind>   sorted set  task id -> -priority * 2**40 + sequence (best first, then FIFO)
    s:<kind>   sorted set  task id -> when it is due (retries, delays)
    data       hash        task id -> the serialized task, while it waits
    prio       hash        task id -> priority, while it is scheduled
    seq        counter     enqueue order
    leases     sorted set  task id -> lease deadline
    held       hash        task id -> the serialized task, while a worker holds it
    holder     hash        task id -> "owner<TAB>kind<TAB>score"
    owner:<o>  set         the task ids owner o holds

Due scheduled tasks move to their queues inside the script that finds them, so none is ever in
flight between two keys; the same id enqueued twice is one task.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from huey.storage import RedisStorage

from neo_cli.backoff import Backoff
from neo_cli.config import mask_url
from neo_cli.errors import QueueUnavailable
from neo_cli.queues.base import Describe, Item, NeoStorage

log = logging.getLogger("neo.queue")

SHIFT = 2**40  # sequence numbers below this; priorities from -1000 to 1000 stay exact
LEASE = 30.0  # seconds a lease lasts without renewal

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# ARGV: prefix, owner, lease seconds, kinds... -> {data, kind} or false
DEQUEUE = (
    _NOW
    + """
local P = ARGV[1]
local best, kind, score
for i = 4, #ARGV do
  local top = redis.call('ZRANGE', P .. ':q:' .. ARGV[i], 0, 0, 'WITHSCORES')
  if top[1] and (not score or tonumber(top[2]) < score) then
    best, kind, score = top[1], ARGV[i], tonumber(top[2])
  end
end
if not best then return false end
redis.call('ZREM', P .. ':q:' .. kind, best)
local data = redis.call('HGET', P .. ':data', best)
if not data then return false end
redis.call('HDEL', P .. ':data', best)
redis.call('ZADD', P .. ':leases', now + tonumber(ARGV[3]), best)
redis.call('HSET', P .. ':held', best, data)
redis.call('HSET', P .. ':holder', best,
           ARGV[2] .. '\\t' .. kind .. '\\t' .. string.format('%.17g', score))
redis.call('SADD', P .. ':owner:' .. ARGV[2], best)
return {data, kind}
"""
)

# ARGV: prefix, task id
ACK = """
local P = ARGV[1]
local holder = redis.call('HGET', P .. ':holder', ARGV[2])
if not holder then return 0 end
local owner = string.match(holder, '^([^\\t]*)')
redis.call('SREM', P .. ':owner:' .. owner, ARGV[2])
redis.call('HDEL', P .. ':held', ARGV[2])
redis.call('HDEL', P .. ':holder', ARGV[2])
redis.call('ZREM', P .. ':leases', ARGV[2])
return 1
"""

# ARGV: prefix, owner, lease seconds -> leases renewed
RENEW = (
    _NOW
    + """
local P = ARGV[1]
local ids = redis.call('SMEMBERS', P .. ':owner:' .. ARGV[2])
local n = 0
for _, id in ipairs(ids) do
  n = n + redis.call('ZADD', P .. ':leases', 'XX', 'CH', now + tonumber(ARGV[3]), id)
end
return n
"""
)

# ARGV: prefix, most -> tasks put back
REAP = (
    _NOW
    + """
local P = ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', now, 'LIMIT', 0,
                           tonumber(ARGV[2]))
local back = 0
for _, id in ipairs(expired) do
  local holder = redis.call('HGET', P .. ':holder', id)
  local data = redis.call('HGET', P .. ':held', id)
  if holder and data and redis.call('HEXISTS', P .. ':data', id) == 0 then
    local owner, kind, score = string.match(holder, '^([^\\t]*)\\t([^\\t]*)\\t(.*)$')
    redis.call('HSET', P .. ':data', id, data)
    redis.call('ZADD', P .. ':q:' .. kind, tonumber(score), id)
    redis.call('SREM', P .. ':owner:' .. owner, id)
    back = back + 1
  elseif holder then
    local owner = string.match(holder, '^([^\\t]*)')
    redis.call('SREM', P .. ':owner:' .. owner, id)
  end
  redis.call('HDEL', P .. ':held', id)
  redis.call('HDEL', P .. ':holder', id)
  redis.call('ZREM', P .. ':leases', id)
end
return back
"""
)

# ARGV: prefix, due (epoch seconds), kinds... -> moved
DUE = """
local P = ARGV[1]
local moved = 0
for i = 3, #ARGV do
  local s = P .. ':s:' .. ARGV[i]
  local due = redis.call('ZRANGEBYSCORE', s, '-inf', ARGV[2], 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local prio = tonumber(redis.call('HGET', P .. ':prio', id) or '0')
    local seq = redis.call('INCR', P .. ':seq')
    redis.call('ZADD', P .. ':q:' .. ARGV[i], -prio * 1099511627776 + seq, id)
    redis.call('HDEL', P .. ':prio', id)
    redis.call('ZREM', s, id)
    moved = moved + 1
  end
end
return moved
"""


def _guarded(method):
    """Redis away: one QueueUnavailable naming it, not redis-py's own errors."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except QueueUnavailable:
            raise
        except self._errors() as exc:
            raise self.unavailable(exc) from None

    return call


def _epoch(ts: datetime) -> float:
    """Huey's times are naive UTC: read them as UTC, whatever this machine's zone."""
    return (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts).timestamp()


class KindRedisStorage(NeoStorage, RedisStorage):
    has_leases = True

    def __init__(
        self,
        name: str,
        *,
        describe: Describe,
        kinds: Sequence[str],
        url: str,
        cluster: str = "neo",
        lease: float = LEASE,
        timeout: float = 5.0,
    ):
        import redis

        self._setup(describe, kinds)
        self._redis = redis
        self.where = mask_url(url)
        pool = redis.ConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        super().__init__(name, connection_pool=pool, blocking=False)
        self.cluster = cluster
        self.prefix = f"neo:{{{cluster}}}:{name}"
        self.lease = lease
        self.owner = ""  # set by the consumer that dequeues: host:pid:queue
        self._dequeue = self.conn.register_script(DEQUEUE)
        self._ack = self.conn.register_script(ACK)
        self._renew = self.conn.register_script(RENEW)
        self._reap = self.conn.register_script(REAP)
        self._due = self.conn.register_script(DUE)
        self._down = Backoff(0.5, 15.0)
        self._retry_at = 0.0  # monotonic: while Redis is down, no dequeue before this
        self._present_lock = threading.Lock()
        self._present_at = float("-inf")
        self._present_kinds: set[str] = set()

    PRESENT_TTL = 0.2  # seconds a look at which kinds have tasks serves every worker

    def _present(self) -> set[str]:
        """The kinds with a task waiting, looked up (one round trip) at most every
        PRESENT_TTL for all of this process's workers: fifty idle workers polling the dequeue
        script cost 40% of a core; this costs a few round trips a second."""
        now = time.monotonic()
        with self._present_lock:
            if now - self._present_at < self.PRESENT_TTL:
                return self._present_kinds
            self._present_at = now
        cards = self._cards("q")
        self._present_kinds = {k for k, n in zip(self.kinds, cards, strict=True) if n}
        return self._present_kinds

    def shared_key(self, part: str) -> str:
        """A key of the whole cluster, not of one queue (`neo:{<cluster>}:<part>`)."""
        return f"neo:{{{self.cluster}}}:{part}"

    def _key(self, part: str) -> str:
        return f"{self.prefix}:{part}"

    def unavailable(self, exc: Exception) -> QueueUnavailable:
        return QueueUnavailable(self.where, type(exc).__name__)

    def check(self) -> None:
        """Raise QueueUnavailable unless Redis answers."""
        try:
            self.conn.ping()
        except self._errors() as exc:
            raise self.unavailable(exc) from None

    def _errors(self) -> tuple[type[BaseException], ...]:
        r = self._redis
        return (r.ConnectionError, r.TimeoutError, r.ResponseError, OSError)

    # -- enqueue -----------------------------------------------------------------------------

    def enqueue(self, data, priority=None):
        kind, tid, _ = self.describe(data)
        self.enqueue_many([(data, priority, kind, tid)])

    def enqueue_many(self, items: Iterable[Item]) -> int:
        rows = list(items)
        if not rows:
            return 0
        try:
            last = self.conn.incrby(self._key("seq"), len(rows))
            pipe = self.conn.pipeline(transaction=True)
            pipe.hset(self._key("data"), mapping={tid: data for data, _, _, tid in rows})
            by_kind: dict[str, dict[str, float]] = {}
            for n, (_, priority, kind, tid) in enumerate(rows, start=last - len(rows) + 1):
                by_kind.setdefault(kind, {})[tid] = -(priority or 0) * SHIFT + n
            for kind, scores in by_kind.items():
                pipe.zadd(self._key(f"q:{kind}"), scores)
            pipe.execute()
            with self._present_lock:  # this process's workers see them at once
                self._present_kinds = self._present_kinds | set(by_kind)
        except self._errors() as exc:
            raise self.unavailable(exc) from None
        return len(rows)

    @_guarded
    def add_to_schedule(self, data, ts):
        kind, tid, priority = self.describe(data)
        pipe = self.conn.pipeline(transaction=True)
        pipe.hset(self._key("data"), tid, data)
        pipe.hset(self._key("prio"), tid, priority or 0)
        pipe.zadd(self._key(f"s:{kind}"), {tid: _epoch(ts)})
        pipe.execute()

    def read_schedule(self, ts):
        """Move the due tasks to their queues (in Redis, atomically); none for Huey to enqueue.
        Redis away: nothing is due until it is back (the dequeue says so in the log)."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return []
        try:
            moved = self._due(args=[self.prefix, repr(_epoch(ts)), *self.kinds])
        except self._errors():
            return []
        if moved:
            with self._present_lock:
                self._present_at = float("-inf")  # look again: they are waiting now
        return []

    # -- dequeue and leases ------------------------------------------------------------------

    def dequeue(self):
        if self._retry_at and time.monotonic() < self._retry_at:
            return None
        try:
            present = self._present()
            kinds = [k for k in self.allowed_kinds() if k in present]
            if not kinds:
                return None
            found = self._dequeue(args=[self.prefix, self.owner, self.lease, *kinds])
        except self._errors() as exc:
            delay = self._down.next()
            self._retry_at = time.monotonic() + delay
            log.warning("queue %s: Redis unreachable at %s (%s); again in %.1fs",
                        self.name, self.where, type(exc).__name__, delay)  # fmt: skip
            return None
        if self._retry_at:
            self._retry_at = 0.0
            self._down.reset()
            log.info("queue %s: Redis at %s reachable again", self.name, self.where)
        if not found:
            return None
        data, kind = found
        self.taken(kind.decode() if isinstance(kind, bytes) else kind)
        return data

    @_guarded
    def ack(self, tid: str) -> None:
        self._ack(args=[self.prefix, tid])

    @_guarded
    def renew(self, owner: str) -> int:
        return int(self._renew(args=[self.prefix, owner, self.lease]))

    @_guarded
    def reap(self, most: int = 10_000) -> int:
        return int(self._reap(args=[self.prefix, most]))

    @_guarded
    def leased_ids(self) -> set[str]:
        now = self.conn.time()
        live = self.conn.zrangebyscore(self._key("leases"), now[0] + now[1] / 1e6, "+inf")
        return {t.decode() for t in live}

    # -- the cluster's consumers ------------------------------------------------------------

    @_guarded
    def server_time(self) -> float:
        seconds, micros = self.conn.time()
        return seconds + micros / 1e6

    @_guarded
    def server_config(self, keys) -> dict[str, str]:
        """The Redis server's values of `keys` ('' where CONFIG is not allowed to say)."""
        return {k: self.conn.config_get(k).get(k, "") for k in keys}

    @_guarded
    def register(self, owner: str, record: dict) -> None:
        """This consumer is alive: its record, with a heartbeat on the server's clock."""
        self.conn.hset(
            self.shared_key("consumers"),
            owner,
            json.dumps({**record, "heartbeat": self.server_time()}),
        )

    @_guarded
    def deregister(self, owner: str) -> None:
        self.conn.hdel(self.shared_key("consumers"), owner)

    @_guarded
    def consumers(self) -> list[dict]:
        """Every consumer registered in the cluster, with `age` (seconds since its last
        heartbeat) and `lost` (no heartbeat for a lease: its leases expire, its work goes back).
        Records silent for a day are forgotten."""
        now = self.server_time()
        out = []
        for owner, raw in self.conn.hgetall(self.shared_key("consumers")).items():
            record = json.loads(raw)
            age = now - float(record.get("heartbeat", 0))
            if age > 86_400:
                self.conn.hdel(self.shared_key("consumers"), owner)
                continue
            out.append({**record, "age": round(age, 1), "lost": age > self.lease})
        return sorted(out, key=lambda r: (r.get("host", ""), r.get("queue", ""), r.get("pid", 0)))

    # -- counts and ids ----------------------------------------------------------------------

    def _cards(self, *parts: str) -> list[int]:
        """The size of each kind's sorted set in each of `parts` ("q", "s"), in that order:
        one round trip."""
        pipe = self.conn.pipeline(transaction=False)
        for part in parts:
            for kind in self.kinds:
                pipe.zcard(self._key(f"{part}:{kind}"))
        return pipe.execute()

    @_guarded
    def counts_by_kind(self) -> dict[str, tuple[int, int]]:
        cards = self._cards("q", "s")
        pending, scheduled = cards[: len(self.kinds)], cards[len(self.kinds) :]
        return {
            kind: (p, s)
            for kind, p, s in zip(self.kinds, pending, scheduled, strict=True)
            if p or s
        }

    @_guarded
    def backlog(self) -> int:
        return sum(self._cards("q", "s"))  # one round trip (the throttle asks every second)

    @_guarded
    def queue_size(self) -> int:
        return sum(self._cards("q"))

    @_guarded
    def schedule_size(self) -> int:
        return sum(self._cards("s"))

    @_guarded
    def queued_ids(self) -> set[str]:
        pipe = self.conn.pipeline(transaction=False)
        for part in ("q", "s"):
            for kind in self.kinds:
                pipe.zrange(self._key(f"{part}:{kind}"), 0, -1)
        return {t.decode() for ids in pipe.execute() for t in ids}

    def _items(self, part: str, limit: int | None) -> list[bytes]:
        ids = [
            t for kind in self.kinds for t in self.conn.zrange(self._key(f"{part}:{kind}"), 0, -1)
        ]
        ids = ids[:limit] if limit else ids
        return [d for d in self.conn.hmget(self._key("data"), ids) if d] if ids else []

    @_guarded
    def enqueued_items(self, limit=None):
        return self._items("q", limit)

    @_guarded
    def scheduled_items(self, limit=None):
        return self._items("s", limit)

    def _flush(self, part: str) -> None:
        ids = [
            t for kind in self.kinds for t in self.conn.zrange(self._key(f"{part}:{kind}"), 0, -1)
        ]
        pipe = self.conn.pipeline(transaction=True)
        for kind in self.kinds:
            pipe.delete(self._key(f"{part}:{kind}"))
        if ids:
            pipe.hdel(self._key("data"), *ids)
        pipe.execute()

    @_guarded
    def flush_queue(self):
        self._flush("q")

    @_guarded
    def flush_schedule(self):
        self._flush("s")
