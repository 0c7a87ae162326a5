"""The Redis backend: one budget for every process on every machine pointed at one Redis.

Each slot is one atomic Lua script that reads the time from the Redis server (`TIME`), so
clocks that differ between machines never meet: a script answers "your slot is in 0.84 s", and
the caller sleeps that long on its own clock. One script call per slot (two when the caller
sleeps and then checks that no pause began meanwhile), and none for `ready()`, which trusts a
read for 0.1 s.

Keys: `neo:limiter:{<fingerprint>}:<api>`, a hash (`next`, `paused`, `reason`, `stopped`), where
the fingerprint is a hash of the provider and its token — never the token itself — so two tokens
never share a budget and one token always does, whatever data directory or machine it is used
from. The braces make every key of a budget one hash slot (Redis Cluster). Keys expire a window
after they stop mattering; a stop (bad token) stays until a new run clears it.

A Redis restart loses the slot history (or brings back an old one from a snapshot): calls made in
the last minute are unknown. The slot script reads the server's `run_id` (it changes on every
restart) and keeps it beside the budget; history written under another run, or a client that
last took a slot under another run, makes the first script to notice pause every interface of
the budget for one full window rather than guess what was spent. (A process that first meets
the budget right after a restart that lost everything cannot tell it from a first use; the
others notice at their next slot.) While Redis is unreachable the limiter fails closed — no
slot, no call — and tries again with back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from neo_cli.backoff import Backoff
from neo_cli.config import check_redis_url
from neo_cli.config import mask_url as masked
from neo_cli.errors import LimiterUnavailable
from neo_cli.limits.base import NEVER, WINDOW, Backend, State

_NOW = """
local function now_of(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function f(x) return string.format('%.17g', x) end
local function keep(key, now, nxt, paused)
  local last = math.max(nxt, paused)
  redis.call('PEXPIRE', key, math.ceil((last - now + 60) * 1000))
end
"""

# KEYS[1] the api's hash, KEYS[2] the budget's epoch key, KEYS[3..] every api hash of the
# budget; ARGV spacing, horizon, now ('' = the server's clock), the run_id this client last saw
# ('' = none) -> {delay or false, the server's run_id}.
#
# The server's run_id (INFO, allowed in scripts) changes on every restart. History written under
# another run (a snapshot brought back) or a client that saw another run (history lost with a
# restart) means the calls of the last minute are unknown: the first script to notice pauses
# every interface of the budget for one window, once per restart.
RESERVE = (
    _NOW
    + """
local now = now_of(ARGV[3])
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local epoch = redis.call('GET', KEYS[2])
if epoch ~= run_id then redis.call('SET', KEYS[2], run_id) end
if (epoch and epoch ~= run_id) or (ARGV[4] ~= '' and ARGV[4] ~= run_id) then
  if redis.call('SET', KEYS[2] .. ':restarted:' .. run_id, '1', 'NX', 'EX', 3600) then
    local untl = now + tonumber(ARGV[5])
    for i = 3, #KEYS do
      local s = redis.call('HMGET', KEYS[i], 'next', 'paused')
      if untl > (tonumber(s[2]) or 0) then
        redis.call('HSET', KEYS[i], 'paused', f(untl), 'reason', ARGV[6])
        keep(KEYS[i], now, tonumber(s[1]) or 0, untl)
      end
    end
  end
end
local s = redis.call('HMGET', KEYS[1], 'next', 'paused', 'stopped')
if s[3] then return {false, run_id} end
local paused = tonumber(s[2]) or 0
local slot = math.max(now, tonumber(s[1]) or 0, paused)
if slot - now > tonumber(ARGV[2]) then return {false, run_id} end
local nxt = slot + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'next', f(nxt))
keep(KEYS[1], now, nxt, paused)
return {f(slot - now), run_id}
"""
)

# KEYS[1] api hash; ARGV now -> {next_in, pause_left, reason} ('inf' when stopped)
STATE = (
    _NOW
    + """
local now = now_of(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'next', 'paused', 'reason', 'stopped')
if s[4] then return {'inf', 'inf', s[4]} end
local paused = tonumber(s[2]) or 0
return {f(math.max(0, math.max(tonumber(s[1]) or 0, paused) - now)), f(paused - now), s[3] or ''}
"""
)

# KEYS api hashes; ARGV now -> {next_in, pause_left, reason} for each key, flattened
STATES = (
    _NOW
    + """
local now = now_of(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local s = redis.call('HMGET', KEYS[i], 'next', 'paused', 'reason', 'stopped')
  if s[4] then
    out[#out + 1] = 'inf'; out[#out + 1] = 'inf'; out[#out + 1] = s[4]
  else
    local paused = tonumber(s[2]) or 0
    out[#out + 1] = f(math.max(0, math.max(tonumber(s[1]) or 0, paused) - now))
    out[#out + 1] = f(paused - now)
    out[#out + 1] = s[3] or ''
  end
end
return out
"""
)

# KEYS[1] api hash; ARGV seconds ('inf' = stop), reason, now
PAUSE = (
    _NOW
    + """
if ARGV[1] == 'inf' then
  redis.call('HSET', KEYS[1], 'stopped', ARGV[2])
  redis.call('PERSIST', KEYS[1])
  return 1
end
local now = now_of(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'next', 'paused', 'stopped')
local untl = now + tonumber(ARGV[1])
if untl <= (tonumber(s[2]) or 0) then return 0 end
redis.call('HSET', KEYS[1], 'paused', f(untl), 'reason', ARGV[2])
if not s[3] then keep(KEYS[1], now, tonumber(s[1]) or 0, untl) end
return 1
"""
)

RESTART_REASON = "Redis restarted: its record of recent calls is gone; waiting one window"


class RedisBackend(Backend):
    name = "redis"

    def __init__(
        self,
        url: str,
        budget: str,
        apis: Iterable[str],
        *,
        clock: Callable[[], float] | None = None,
        timeout: float = 2.0,
        client=None,
    ):
        """`clock` None: the Redis server's clock (production); tests pass a fake one."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url, self.where = check_redis_url(url), masked(url)
        self.budget, self.apis = budget, tuple(apis)
        self.clock = clock
        self._redis = redis
        # No silent retries inside redis-py: a failed call must reach us, so that a restart
        # is noticed and the limiter fails closed instead of calling on a history it lost.
        self.client = client or redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._reserve = self.client.register_script(RESERVE)
        self._state = self.client.register_script(STATE)
        self._states = self.client.register_script(STATES)
        self._pause = self.client.register_script(PAUSE)
        self._run_id = ""  # the server's run_id when this client last took a slot
        self._down = Backoff(0.5, 15.0)
        self._retry_at = 0.0  # monotonic: while down, no network before this

    # -- keys and plumbing ---------------------------------------------------------------------

    def key(self, name: str) -> str:
        """`neo:limiter:{<budget>}:<api>` (or `:epoch`); the braces keep a budget in one slot."""
        return f"neo:limiter:{{{self.budget}}}:{name}"

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    def _call(self, fn: Callable[[], object]) -> object:
        if self._retry_at and time.monotonic() < self._retry_at:
            raise LimiterUnavailable(self.where, "retrying shortly")
        try:
            out = fn()
        except (self._redis.ConnectionError, self._redis.TimeoutError, OSError) as exc:
            self._retry_at = time.monotonic() + self._down.next()
            raise LimiterUnavailable(self.where, type(exc).__name__) from None
        except self._redis.ResponseError as exc:  # LOADING, MISCONF, NOAUTH, READONLY …
            self._retry_at = time.monotonic() + self._down.next()
            raise LimiterUnavailable(self.where, str(exc).split("\n")[0][:80]) from None
        if self._retry_at:
            self._retry_at = 0.0
            self._down.reset()
        return out

    # -- the backend ---------------------------------------------------------------------------

    def reserve(self, api: str, spacing: float, horizon: float) -> float | None:
        keys = [self.key(api), self.key("epoch"), *(self.key(a) for a in self.apis)]
        args = [spacing, horizon, self._now(), self._run_id, WINDOW, RESTART_REASON]
        delay, run_id = self._call(lambda: self._reserve(keys=keys, args=[str(a) for a in args]))
        self._run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
        return None if delay is None else float(delay)

    def state(self, api: str) -> State:
        next_in, left, reason = self._call(
            lambda: self._state(keys=[self.key(api)], args=[self._now()])
        )
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        return State(float(next_in), float(left), reason)

    def states(self, apis) -> dict[str, State]:
        apis = list(apis)
        flat = self._call(
            lambda: self._states(keys=[self.key(a) for a in apis], args=[self._now()])
        )
        out = {}
        for i, api in enumerate(apis):
            next_in, left, reason = flat[3 * i : 3 * i + 3]
            reason = reason.decode() if isinstance(reason, bytes) else str(reason)
            out[api] = State(float(next_in), float(left), reason)
        return out

    def pause(self, api: str, seconds: float, reason: str) -> None:
        amount = "inf" if seconds == NEVER else repr(max(0.0, seconds))
        self._call(lambda: self._pause(keys=[self.key(api)], args=[amount, reason, self._now()]))

    def clear_stops(self) -> None:
        self._call(lambda: [self.client.hdel(self.key(api), "stopped") for api in self.apis])

    def check(self) -> None:
        self._retry_at = 0.0
        self._call(self.client.ping)

    def describe(self) -> str:
        return f"redis ({self.where})"

    def close(self) -> None:
        self.client.close()
