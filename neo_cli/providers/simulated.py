"""The simulated provider: the synthetic market behind the API's own rules.

It behaves as the real server does at its edges, so neo's tests can prove its client side:
- each interface's calls-per-minute limit, counted exactly over a sliding 60-second window at
  each call's arrival (a rejected call is not counted), answered with the API's own message;
- latency with jitter, and injected timeouts, 502s and malformed replies, decided after the limit
  check because the real server counts a call that then fails;
- symbols it refuses (`deny_symbols`) and the per-call row cap with `has_more`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from neo_cli.dates import CHINA
from neo_cli.errors import InputError, PermanentError, RateLimited, TransientError
from neo_cli.providers.base import RATE_LIMIT_MESSAGE, Provider, Reply
from neo_cli.providers.market import FIRST_DAY, Market
from neo_cli.tasktypes import INTERFACES, dataset

if TYPE_CHECKING:
    from neo_cli.limits.base import Slot

# The `[provider.simulated]` defaults, for options left out (config.SCHEMA has the same; the
# provider layer may not import the config).
DEFAULTS: dict[str, Any] = {
    "symbols": 300,
    "seed": 20240101,
    "end_date": "",
    "latency_ms": 30.0,
    "jitter_ms": 20.0,
    "timeout_rate": 0.0,
    "error_rate": 0.0,
    "malformed_rate": 0.0,
    "deny_symbols": "",
}
WINDOW_SECONDS = 60.0


def market_end_date(text: str | date) -> date:
    """The `end_date` option as a date: '' is today in Shanghai, else 'YYYYMMDD'."""
    if isinstance(text, date):
        return text
    if not text.strip():
        return datetime.now(CHINA).date()
    try:
        day = datetime.strptime(text.strip(), "%Y%m%d").date()
    except ValueError:
        day = None
    if day is None or day < FIRST_DAY:
        raise InputError(
            f"invalid [provider.simulated] end_date = {text!r}; allowed: '' (today) or a date "
            f"YYYYMMDD from {FIRST_DAY:%Y%m%d}"
        )
    return day


class SimulatedProvider(Provider):
    """Answers calls from a `Market`, enforcing `limits` (api -> calls per minute) itself."""

    name = "simulated"

    def __init__(
        self,
        options: Mapping[str, Any],
        limits: Mapping[str, int],
        *,
        call_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise InputError(
                f"unknown [provider.simulated] option(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(DEFAULTS)}"
            )
        opts = {**DEFAULTS, **options}
        seed = int(opts["seed"])
        self.market = Market(seed, int(opts["symbols"]), market_end_date(opts["end_date"]))
        self.call_timeout = float(call_timeout)
        self._latency = float(opts["latency_ms"]) / 1000
        self._jitter = float(opts["jitter_ms"]) / 1000
        self._timeout_rate = float(opts["timeout_rate"])
        self._error_rate = float(opts["error_rate"])
        self._malformed_rate = float(opts["malformed_rate"])
        self._denied = frozenset(
            code.strip().upper() for code in str(opts["deny_symbols"]).split(",") if code.strip()
        )
        self._limits = dict(limits)
        self._clock, self._sleep = clock, sleep
        self._rng = random.Random(seed) if rng is None else rng
        self._rng_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the windows and the counters
        self._arrivals: dict[str, deque[float]] = {api: deque() for api in INTERFACES}
        self._calls: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()

    def trading_days(self, start: str, end: str) -> list[str]:
        return self.market.trade_dates(start, end)

    def call(
        self,
        api: str,
        params: Mapping[str, Any],
        fields: Sequence[str],
        slot: Slot | None = None,
    ) -> Reply:
        """One call: admitted or refused by the limit, then delayed, perhaps failed, answered."""
        if api not in INTERFACES:
            raise PermanentError(f"请指定正确的接口名: 接口 {api!r} 不存在", api)
        if slot is not None:
            slot.leave()
        self._admit(api)
        delay, fault = self._draw()
        if fault == "timeout":
            self._sleep(self.call_timeout)
            raise TransientError(f"timed out after {self.call_timeout:g}s", api)
        if delay > 0:
            self._sleep(delay)
        if fault == "error":
            raise TransientError("HTTP 502 Bad Gateway", api)
        if fault == "malformed":
            raise TransientError("malformed reply: JSON body ends after 512 bytes", api)
        codes = (c.strip().upper() for c in str(params.get("ts_code") or "").split(","))
        denied = next((c for c in codes if c in self._denied), None)
        if denied:
            raise PermanentError(
                f"参数错误: ts_code {denied} 无权限或不存在 (simulated permanent fault)", api
            )
        return self._reply(api, params, fields)

    def stats(self) -> dict[str, dict[str, int]]:
        """Calls accepted and rejected for being over the limit, per interface."""
        with self._lock:
            return {
                api: {"calls": self._calls[api], "rejected": self._rejected[api]}
                for api in INTERFACES
            }

    def _admit(self, api: str) -> None:
        """Count the call at its arrival, or refuse it when `limit` calls arrived in the last
        60 s. A call exactly 60 s old has left the window."""
        limit = self._limits.get(api)
        with self._lock:
            now = self._clock()  # read under the lock, so arrivals are stored in order
            arrivals = self._arrivals[api]
            while arrivals and arrivals[0] <= now - WINDOW_SECONDS:
                arrivals.popleft()
            if limit is not None and len(arrivals) >= limit:
                self._rejected[api] += 1
                raise RateLimited(RATE_LIMIT_MESSAGE.format(limit=limit), api, "minute")
            arrivals.append(now)
            self._calls[api] += 1

    def _draw(self) -> tuple[float, str | None]:
        """This call's latency and fault. Every call takes the same draws, so a seeded rng
        replays the same sequence of outcomes."""
        with self._rng_lock:
            jitter = self._rng.uniform(-self._jitter, self._jitter)
            timeout = self._rng.random() < self._timeout_rate
            error = self._rng.random() < self._error_rate
            malformed = self._rng.random() < self._malformed_rate
        fault = "timeout" if timeout else "error" if error else "malformed" if malformed else None
        return max(0.0, self._latency + jitter), fault

    def _reply(self, api: str, params: Mapping[str, Any], fields: Sequence[str]) -> Reply:
        """The market's rows, cut to the row cap (the newest rows, as they come first) and to
        the asked fields in the asked order; fields the interface lacks are left out."""
        d = dataset(api)
        names = asked_fields(api, fields)
        items = self.market.items(api, params, names, most=d.row_cap + 1)
        has_more = len(items) > d.row_cap
        return Reply(fields=tuple(names), items=items[: d.row_cap], has_more=has_more)


def asked_fields(api: str, fields: Sequence[str] | str) -> list[str]:
    """The fields a reply carries: those asked that the interface has, in the asked order
    (all of them when none are asked). `fields` may be the HTTP protocol's "a,b,c"."""
    d = dataset(api)
    if isinstance(fields, str):
        fields = fields.split(",")
    names = [f.strip() for f in fields if f.strip()] or d.fields
    return [name for name in names if name in d.fields]
