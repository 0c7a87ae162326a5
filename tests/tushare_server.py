"""A real HTTP server on 127.0.0.1 that speaks the Tushare Pro protocol, answering from a `Market`.

In-process:     with tushare_server(token="t", limits={"daily": 500}) as server: ... server.url
As a process:   python tests/tushare_server.py --port-file F --token T --limits daily=500 ...
                (or `ServerProcess`), which writes its port to F once listening, runs until
                SIGTERM/SIGINT, then writes `stats()` as JSON to --stats-file.

The protocol, as the real API speaks it:
    POST /  or  POST /dataapi/<api_name>
      {"api_name": "daily", "token": "...", "params": {"ts_code": "..."}, "fields": "a,b"}
    200 {"request_id": "<uuid>", "code": 0, "msg": "",
         "data": {"fields": [...], "items": [[...], ...], "has_more": false}}
    200 {"request_id": "<uuid>", "code": 40203, "msg": "抱歉，您每分钟最多访问该接口500次，…",
         "data": null}

Checks run in this order: request shape, token, interface, permission, limits (minute, hour,
day; a refused call is not counted), then an injected fault (the call was counted, as on the real
server), then the parameters. Error codes:

     2002  bad token                     40101  unknown interface
    40203  no permission / over a limit  40001  bad parameter
    -2001  system busy (injected)        40100  request not understood (not JSON, no api_name)

Limits count calls over sliding windows of the injectable clock (60 s, 1 h, 1 d); a call exactly
one window old has left it, as in neo's limiter. The real hour and day caps are per clock hour
and calendar day; a sliding window is stricter, so a client that passes here passes there.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import random
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from neo_cli.errors import PermanentError
from neo_cli.providers.base import BAD_TOKEN_MESSAGE, NO_PERMISSION_MESSAGE, RATE_LIMIT_MESSAGE
from neo_cli.providers.market import FIRST_DAY, Market
from neo_cli.tasktypes import INTERFACES, dataset

DEFAULT_TOKEN = "test-token"
DEFAULT_SYMBOLS, DEFAULT_END_DATE, DEFAULT_MARKET_SEED = 40, "20261120", 20240101

OK, BAD_TOKEN, UNKNOWN_API, BAD_PARAMS, REFUSED, BUSY, BAD_REQUEST = (
    0,
    2002,
    40101,
    40001,
    40203,
    -2001,
    40100,
)
_DOC = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
LIMIT_MESSAGES = {
    "minute": RATE_LIMIT_MESSAGE,
    "hour": "抱歉，您每小时最多访问该接口{limit}次，" + _DOC,
    "day": "抱歉，您每天最多访问该接口{limit}次，" + _DOC,
}
WINDOWS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
BUSY_MESSAGE = "系统繁忙，请稍后再试"

# One draw per accepted call picks at most one fault, by cumulative probability in this order.
FAULTS = ("reset", "http_500", "http_502", "malformed", "busy", "slow")

TRADE_CAL = "trade_cal"
TRADE_CAL_FIELDS = ("exchange", "cal_date", "pretrade_date", "is_open")
EXCHANGES = ("SSE", "SZSE", "BSE")  # one calendar for all three, as in the real market
DEFAULT_LIMITS = {TRADE_CAL: 60}
APIS = (*INTERFACES, TRADE_CAL)  # income_vip & co. too: whole-market statements

_HTML = (
    "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n"
    "<center><h1>{status}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class _Answer:
    """What the handler sends: a status and body, after `delay` seconds, or a reset."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    reset: bool = False


@dataclass
class _ApiStats:
    accepted: int = 0
    rejected: int = 0  # refused for a limit; not counted in any window
    rejected_by: Counter = field(default_factory=Counter)  # minute / hour / day
    errors: Counter = field(default_factory=Counter)  # code != 0 replies other than limits
    faults: Counter = field(default_factory=Counter)  # injected, by kind
    rows: int = 0
    max_in_window: int = 0  # most accepted calls in any sliding 60 s window
    arrivals: list[float] = field(default_factory=list)  # clock times of accepted calls
    refusals: list[float] = field(default_factory=list)  # clock times of calls refused for a limit


class _Refused(Exception):
    """A reply with `code != 0`; `kind` names it in the stats."""

    def __init__(self, code: int, message: str, kind: str):
        super().__init__(message)
        self.code, self.message, self.kind = code, message, kind


class TushareServer:
    """Serves `market` (or one built from symbols/end_date/market_seed) on 127.0.0.1:`port`.

    Listening once constructed; `close()` (or leaving the `with`) stops it. Thread-safe."""

    def __init__(
        self,
        market: Market | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        symbols: int = DEFAULT_SYMBOLS,
        end_date: str | date = DEFAULT_END_DATE,
        market_seed: int = DEFAULT_MARKET_SEED,
        limits: Mapping[str, int | None] | None = None,
        hourly_limits: Mapping[str, int] | None = None,
        daily_limits: Mapping[str, int] | None = None,
        denied: Iterable[str] = (),
        row_caps: Mapping[str, int] | None = None,
        has_more_flag: bool = False,
        faults: Mapping[str, float] | None = None,
        slow_seconds: float = 5.0,
        fail_dates: Iterable[str] = (),
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ):
        if market is None:
            if isinstance(end_date, str):
                end_date = datetime.strptime(end_date, "%Y%m%d").date()
            # Keep every symbol's history: packed calls touch many symbols each.
            market = Market(market_seed, symbols, end_date, cache_size=max(symbols, 128))
        self.market = market
        self.token = token
        self.limits = {
            "minute": {
                k: v for k, v in {**DEFAULT_LIMITS, **(limits or {})}.items() if v is not None
            },
            "hour": dict(hourly_limits or {}),
            "day": dict(daily_limits or {}),
        }
        self.denied = frozenset(denied)
        self.row_caps = {api: dataset(api).row_cap for api in INTERFACES} | dict(row_caps or {})
        self.has_more_flag = has_more_flag
        self.slow_seconds = float(slow_seconds)
        self.fail_dates = frozenset(fail_dates)  # calls covering these days answer HTTP 502
        self._clock = clock
        self._rng = random.Random(seed)
        self._faults: dict[str, float] = {}
        self.set_faults(**(faults or {}))
        self._forced: list[tuple[str, str | None]] = []  # (kind, api or None = any)

        self._lock = threading.Lock()  # guards windows, stats, rng and forced faults
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._stats: dict[str, _ApiStats] = {api: _ApiStats() for api in APIS}
        self._requests = 0
        self._bad_requests = 0
        self._internal_errors: list[str] = []
        self._open_days: list[str] | None = None

        self._closing = threading.Event()  # wakes slow replies at close
        self._httpd = _HTTPServer(self, port)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tushare-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- control

    def __enter__(self) -> TushareServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening, drop open connections (idle keep-alives too) and wait for handlers."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.drop_connections(timeout)
        self._httpd.server_close()
        self._thread.join(timeout)

    def set_faults(self, **probabilities: float) -> None:
        """Replace the fault probabilities, e.g. `set_faults(http_502=0.1, slow=0.05)`."""
        unknown = set(probabilities) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; allowed: {', '.join(FAULTS)}")
        if any(not 0 <= p <= 1 for p in probabilities.values()) or sum(probabilities.values()) > 1:
            raise ValueError(
                f"fault probabilities must be in [0, 1] and sum to <= 1: {probabilities}"
            )
        self._faults = {kind: float(probabilities.get(kind, 0.0)) for kind in FAULTS}

    def fault_next(self, *kinds: str, api: str | None = None) -> None:
        """Force these faults, in order, on the next accepted calls (of `api`, or of any)."""
        for kind in kinds:
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; allowed: {', '.join(FAULTS)}")
        with self._lock:
            self._forced += [(kind, api) for kind in kinds]

    # -- observation

    def stats(self) -> dict[str, Any]:
        """Counters per interface, JSON-able. Refused calls are not counted in any window, so
        with a limit set `max_in_window` cannot pass it: to prove a client paces itself, assert
        `rejected == 0`, or serve with no (or a higher) limit and compare `max_in_window`."""
        with self._lock:
            apis = {
                api: {
                    "limit": self.limits["minute"].get(api),
                    "hourly_limit": self.limits["hour"].get(api),
                    "daily_limit": self.limits["day"].get(api),
                    "accepted": s.accepted,
                    "rejected": s.rejected,
                    "rejected_by": dict(s.rejected_by),
                    "errors": dict(s.errors),
                    "faults": dict(s.faults),
                    "rows": s.rows,
                    "max_in_window": s.max_in_window,
                }
                for api, s in self._stats.items()
            }
            return {
                "url": self.url,
                "requests": self._requests,
                "bad_requests": self._bad_requests,
                "internal_errors": list(self._internal_errors),
                "apis": apis,
            }

    def arrivals(self, api: str) -> list[float]:
        """Clock times of the accepted calls of `api`, in arrival order."""
        with self._lock:
            return list(self._stats[api].arrivals) if api in self._stats else []

    def refusals(self, api: str) -> list[float]:
        """Clock times of the calls of `api` refused for a limit, in arrival order."""
        with self._lock:
            return list(self._stats[api].refusals) if api in self._stats else []

    # -- answering

    def answer(self, path: str, body: bytes) -> _Answer:
        """The reply to one POST; HTTP-free apart from the status, so the handler stays thin."""
        with self._lock:
            self._requests += 1
        api = ""
        try:
            api, request = self._parse(path, body)
            self._check(api, request)
            self._admit(api)
            fault = self._draw(api)
            if (
                fault is None
                and api not in (TRADE_CAL, "stock_basic")
                and self._covers_failing_day(request.get("params") or {})
            ):
                fault = "http_502"
            if fault == "reset":
                return _Answer(reset=True)
            if fault in ("http_500", "http_502"):
                status = "500 Internal Server Error" if fault == "http_500" else "502 Bad Gateway"
                html = _HTML.format(status=status).encode()
                return _Answer(int(status[:3]), html, "text/html")
            if fault == "busy":
                raise _Refused(BUSY, BUSY_MESSAGE, "busy")
            data = self._data(api, request.get("params") or {}, request.get("fields"))
            answer = _Answer(body=_reply(OK, "", data))
            if fault == "malformed":
                answer.body = answer.body[: len(answer.body) // 2]
            elif fault == "slow":
                answer.delay = self.slow_seconds
            return answer
        except _Refused as refused:
            self._count_error(api, refused.kind)
            return _Answer(body=_reply(refused.code, refused.message, None))
        except Exception as exc:  # a bug here must fail the tests, not vanish in a thread
            with self._lock:
                self._internal_errors.append(f"{type(exc).__name__}: {exc}")
            return _Answer(500, _HTML.format(status="500 Internal Server Error").encode())

    def _parse(self, path: str, body: bytes) -> tuple[str, dict[str, Any]]:
        route = path.split("?", 1)[0].rstrip("/")
        if route not in ("", "/dataapi") and not route.startswith("/dataapi/"):
            raise _Refused(BAD_REQUEST, f"请求路径 {path} 不存在", "bad_request")
        try:
            request = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            request = None
        if not isinstance(request, dict):
            raise _Refused(BAD_REQUEST, "请求格式错误: 应为 JSON 对象", "bad_request")
        named = route.removeprefix("/dataapi").lstrip("/")
        api = str(request.get("api_name") or named).strip()
        if named and api != named:
            raise _Refused(BAD_REQUEST, f"接口名不一致: 路径 {named}, 请求 {api}", "bad_request")
        if not api:
            raise _Refused(BAD_REQUEST, "请求格式错误: 缺少 api_name", "bad_request")
        if not isinstance(request.get("params") or {}, dict):
            raise _Refused(BAD_REQUEST, "请求格式错误: params 应为对象", "bad_request")
        return api, request

    def _check(self, api: str, request: Mapping[str, Any]) -> None:
        if request.get("token") != self.token:
            raise _Refused(BAD_TOKEN, BAD_TOKEN_MESSAGE, "bad_token")
        if api not in APIS:
            raise _Refused(UNKNOWN_API, f"请求的接口 {api} 不存在", "unknown_api")
        if api in self.denied:
            raise _Refused(REFUSED, NO_PERMISSION_MESSAGE, "no_permission")

    def _admit(self, api: str) -> None:
        """Count the call at its arrival in every window, or refuse it if any is full."""
        with self._lock:
            now = self._clock()  # read under the lock, so each window stays in order
            stats = self._stats[api]
            windows = {}
            for scope, seconds in WINDOWS.items():
                limit = self.limits[scope].get(api)
                if limit is None and scope != "minute":  # the minute window feeds max_in_window
                    continue
                window = self._windows.setdefault((api, scope), deque())
                while window and window[0] <= now - seconds:
                    window.popleft()
                if limit is not None and len(window) >= limit:
                    stats.rejected += 1
                    stats.rejected_by[scope] += 1
                    stats.refusals.append(now)
                    raise _Refused(REFUSED, LIMIT_MESSAGES[scope].format(limit=limit), "")
                windows[scope] = window
            for window in windows.values():
                window.append(now)
            stats.accepted += 1
            stats.arrivals.append(now)
            stats.max_in_window = max(stats.max_in_window, len(windows["minute"]))

    def _covers_failing_day(self, params: Mapping[str, Any]) -> bool:
        """Whether a call asks for a day in `fail_dates` (a trade date, or inside a range)."""
        if not self.fail_dates:
            return False
        day = params.get("trade_date")
        if day:
            return str(day) in self.fail_dates
        lo, hi = params.get("start_date"), params.get("end_date")
        return bool(lo and hi and any(str(lo) <= d <= str(hi) for d in self.fail_dates))

    def _draw(self, api: str) -> str | None:
        """This call's fault: a forced one if queued, else by one seeded draw. Every accepted
        call takes exactly one draw, so the same seed replays the same outcomes."""
        with self._lock:
            u = self._rng.random()
            forced = next((i for i, (_, a) in enumerate(self._forced) if a in (None, api)), None)
            if forced is not None:
                fault: str | None = self._forced.pop(forced)[0]
            else:
                fault, edge = None, 0.0
                for kind in FAULTS:
                    edge += self._faults[kind]
                    if u < edge:
                        fault = kind
                        break
            if fault is not None:
                self._stats[api].faults[fault] += 1
            return fault

    def _data(self, api: str, params: Mapping[str, Any], fields: Any) -> dict[str, Any]:
        names = TRADE_CAL_FIELDS if api == TRADE_CAL else dataset(api).fields
        if isinstance(fields, str):
            fields = fields.split(",")
        asked = [f.strip() for f in fields or () if str(f).strip()]
        # Fields the interface lacks are left out, as the simulated provider does.
        chosen = [f for f in dict.fromkeys(asked) if f in names] if asked else list(names)
        try:
            if api == TRADE_CAL:
                items = [[row[f] for f in chosen] for row in self._trade_cal(params)]
                cap = None
            else:
                cap = self.row_caps[api]
                most = None if cap is None else cap + 1  # one more tells there is more
                items = self.market.items(api, params, chosen, most=most)
        except PermanentError as exc:
            raise _Refused(BAD_PARAMS, exc.message, "bad_params") from None
        has_more = cap is not None and len(items) > cap
        items = items[:cap] if cap is not None else items
        with self._lock:
            self._stats[api].rows += len(items)
        return {"fields": chosen, "items": items, "has_more": has_more and self.has_more_flag}

    def _trade_cal(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every calendar day from start_date to end_date (capped at the market's end date:
        its "today"), newest first, with the trading day before it."""
        exchange = str(params.get("exchange") or "SSE").strip().upper()
        if exchange not in EXCHANGES:
            raise PermanentError(f"参数错误: exchange 应为 {'/'.join(EXCHANGES)}", TRADE_CAL)
        is_open = str(params.get("is_open") if params.get("is_open") is not None else "").strip()
        if is_open not in ("", "0", "1"):
            raise PermanentError(f"参数错误: is_open 应为 0 或 1, 收到 {is_open!r}", TRADE_CAL)
        start = _param_date(params, "start_date") or FIRST_DAY
        end = min(_param_date(params, "end_date") or self.market.end_date, self.market.end_date)
        with self._lock:
            if self._open_days is None:
                self._open_days = self.market.trade_dates()
            open_days = self._open_days
        rows = []
        day = end
        while day >= start:
            ymd = day.strftime("%Y%m%d")
            at = bisect.bisect_left(open_days, ymd)
            opened = int(at < len(open_days) and open_days[at] == ymd)
            if is_open in ("", str(opened)):
                row = {"exchange": exchange, "cal_date": ymd, "is_open": opened}
                row["pretrade_date"] = open_days[at - 1] if at > 0 else None
                rows.append(row)
            day -= timedelta(days=1)
        offset, limit = _param_count(params, "offset") or 0, _param_count(params, "limit")
        return rows[offset : None if limit is None else offset + limit]

    def _count_error(self, api: str, kind: str) -> None:
        if not kind:  # a limit refusal, counted by _admit
            return
        with self._lock:
            if kind == "bad_request" or not api:
                self._bad_requests += 1
            else:
                self._stats.setdefault(api, _ApiStats()).errors[kind] += 1


def _param_date(params: Mapping[str, Any], name: str) -> date | None:
    value = str(params.get(name) or "").strip()
    if not value:
        return None
    try:
        if len(value) != 8:
            raise ValueError
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise PermanentError(
            f"参数错误: {name} 应为 YYYYMMDD 格式的日期, 收到 {value!r}", TRADE_CAL
        ) from None


def _param_count(params: Mapping[str, Any], name: str) -> int | None:
    value = str(params.get(name) if params.get(name) is not None else "").strip()
    if value and not value.isdigit():
        raise PermanentError(f"参数错误: {name} 应为非负整数, 收到 {value!r}", TRADE_CAL)
    return int(value) if value else None


def _reply(code: int, msg: str, data: dict[str, Any] | None) -> bytes:
    payload = {"request_id": str(uuid.uuid4()), "code": code, "msg": msg, "data": data}
    # orjson: at a full market's pace the stdlib encoder alone took half of a core.
    return orjson.dumps(payload)


# ---------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as pooled clients expect
    # Headers and body go out in two writes; with Nagle on, each reply on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.app.answer(self.path, body)
        if answer.delay and self.server.app._closing.wait(answer.delay):
            answer.reset = True  # closing: give up on the reply
        if answer.reset:
            # Linger 0 makes the close an RST rather than a FIN: a reset, not a clean EOF.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()  # really closed when rfile/wfile close, in finish()
            return
        self._send(answer.status, answer.body, answer.content_type)

    def do_GET(self) -> None:
        self._send(405, _HTML.format(status="405 Not Allowed").encode(), "text/html")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (its timeout); nothing to tell it
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections, so that `close()` can end idle keep-alive ones."""

    def __init__(self, app: TushareServer, port: int):
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer's version looks up the host's FQDN, which can hang without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):  # client disconnects are normal; anything else is not
            with self.app._lock:
                self.app._internal_errors.append(f"{type(exc).__name__}: {exc}")

    def drop_connections(self, timeout: float) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked reading
        deadline = time.monotonic() + timeout
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)


@contextlib.contextmanager
def tushare_server(**options: Any) -> Iterator[TushareServer]:
    """`TushareServer(**options)`, closed on exit: `with tushare_server(token=...) as s:`."""
    server = TushareServer(**options)
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------------------- as a process


class ServerProcess:
    """This file run as a child process, for integration tests: `url` once started, and the
    final stats from `stop()`. `args` are the command-line flags after --port-file."""

    def __init__(self, directory: Path, *args: str, timeout: float = 30.0):
        directory = Path(directory)
        self.port_file = directory / "tushare.port"
        self.stats_file = directory / "tushare.stats.json"
        self.log_file = directory / "tushare.stderr"
        self.port_file.unlink(missing_ok=True)
        command = [sys.executable, __file__, "--port-file", str(self.port_file)]
        command += ["--stats-file", str(self.stats_file), *args]
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tushare server did not start:\n{self.log_file.read_text()}")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """SIGTERM, wait, and return the stats it wrote (None if it wrote none)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.stats_file.exists():
            return None
        return json.loads(self.stats_file.read_text())


def _pairs(text: str | None, kind: Callable[[str], Any]) -> dict[str, Any]:
    """'daily=500,adj_factor=500' -> {'daily': 500, 'adj_factor': 500}."""
    out = {}
    for item in (text or "").split(","):
        if item.strip():
            name, sep, value = item.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"expected name=value, got {item!r}")
            out[name.strip()] = kind(value.strip())
    return out


def _write_atomic(path: str, text: str) -> None:
    """Write via a rename, so a reader polling for the file never sees it half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="A Tushare Pro protocol server over a synthetic market."
    )
    p.add_argument("--port-file", required=True, help="write the listening port here")
    p.add_argument("--stats-file", help="write stats() here as JSON on exit")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    p.add_argument("--symbols", type=int, default=DEFAULT_SYMBOLS)
    p.add_argument("--end-date", default=DEFAULT_END_DATE, help="YYYYMMDD, the market's today")
    p.add_argument("--market-seed", type=int, default=DEFAULT_MARKET_SEED)
    p.add_argument("--token", default=DEFAULT_TOKEN)
    p.add_argument("--limits", default="", help="calls per minute: api=N,... (trade_cal=60)")
    p.add_argument("--hourly-limits", default="", help="calls per hour: api=N,...")
    p.add_argument("--daily-limits", default="", help="calls per day: api=N,...")
    p.add_argument("--deny", default="", help="interfaces the token may not call: a,b")
    p.add_argument("--row-caps", default="", help="override rows per call: api=N,...")
    p.add_argument("--has-more", action="store_true", help="set has_more when truncated")
    p.add_argument(
        "--fault", action="append", default=[], help=f"kind=probability,...; kinds: {FAULTS}"
    )
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument(
        "--fail-dates", default="", help="YYYYMMDD,...: every call covering one answers 502"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    p.add_argument(
        "--warm",
        action="store_true",
        help="make every symbol's history before listening (a whole-market call would "
        "otherwise make them all inside one reply, and outlast the client's timeout)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())  # only a flag; the loop below does the work
    server = TushareServer(
        token=args.token,
        symbols=args.symbols,
        end_date=args.end_date,
        market_seed=args.market_seed,
        limits=_pairs(args.limits, int),
        hourly_limits=_pairs(args.hourly_limits, int),
        daily_limits=_pairs(args.daily_limits, int),
        denied=[a.strip() for a in args.deny.split(",") if a.strip()],
        row_caps=_pairs(args.row_caps, int),
        has_more_flag=args.has_more,
        faults=_pairs(",".join(args.fault), float),
        slow_seconds=args.slow_seconds,
        fail_dates=[d.strip() for d in args.fail_dates.split(",") if d.strip()],
        seed=args.seed,
        port=args.port,
    )
    try:
        if args.warm:
            server.market.warm()
        _write_atomic(args.port_file, str(server.port))
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
        if args.stats_file:
            stats = server.stats()
            # Arrival times (this process's monotonic clock, which is the machine's) of the
            # accepted calls and of the refused ones, so a test can measure windows, rates and
            # refusals over any stretch from the server's side.
            stats["arrivals"] = {api: server.arrivals(api) for api in APIS}
            stats["refusals"] = {api: server.refusals(api) for api in APIS}
            _write_atomic(args.stats_file, json.dumps(stats, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
