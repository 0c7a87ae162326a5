"""The Tushare Pro HTTP protocol, on a pooled HTTP client with timeouts.

Request: POST JSON `{"api_name", "token", "params", "fields"}`; reply: `{"request_id", "code",
"msg", "data": {"fields", "items", "has_more"}}`. `code != 0` is an error whose text (in `msg`)
says which kind, because its codes vary. An HTTP status other than 2xx is an error too, never
"no data" (the official SDK returns an empty frame then, which silently loses rows).

The token is sent in the body and nowhere else: not in URLs, logs or error messages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from neo_cli.errors import AuthError, InputError, PermanentError, RateLimited, TransientError
from neo_cli.providers.base import Provider, Reply, classify

if TYPE_CHECKING:
    from neo_cli.limits.base import Slot


class TushareProvider(Provider):
    name = "tushare"

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        call_timeout: float = 30.0,
        connections: int = 64,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = str(options["url"]).rstrip("/")
        self._token = str(options.get("token") or "")
        if not self._token:
            raise InputError(
                "the tushare provider needs a token: set TUSHARE_TOKEN or [provider.tushare] token"
            )
        if not self.url.startswith(("http://", "https://")):
            raise InputError(
                f"invalid [provider.tushare] url = {self.url!r}; "
                "allowed: an http:// or https:// URL"
            )
        self.client = httpx.Client(
            timeout=httpx.Timeout(call_timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=transport,
            headers={"User-Agent": "neo"},
        )
        self._calendar: dict[str, list[str]] = {}
        self._calendar_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token, even in a debugger or a traceback
        return f"TushareProvider(url={self.url!r})"

    def _endpoint(self, api: str) -> str:
        # The SDK posts to <host>/dataapi/<api_name>; the documented endpoint takes the bare
        # host. Both are accepted by the server; a configured /dataapi base gets the name.
        return f"{self.url}/{api}" if self.url.endswith("/dataapi") else self.url

    def call(
        self,
        api: str,
        params: Mapping[str, Any],
        fields: Sequence[str],
        slot: Slot | None = None,
    ) -> Reply:
        body = {
            "api_name": api,
            "token": self._token,
            "params": {k: v for k, v in params.items() if v is not None},
            "fields": fields if isinstance(fields, str) else ",".join(fields),
        }
        request = self.client.build_request("POST", self._endpoint(api), json=body)
        if slot is not None:
            slot.leave()
        try:
            response = self.client.send(request)
        except httpx.TimeoutException:
            raise TransientError(f"timed out after {self.client.timeout.read}s", api) from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}", api) from None
        return self._parse(api, response)

    def _parse(self, api: str, response: httpx.Response) -> Reply:
        status = response.status_code
        if status == 429:
            raise RateLimited("HTTP 429 Too Many Requests", api, "minute")
        if status >= 500:
            raise TransientError(f"HTTP {status} {response.reason_phrase}", api)
        if status in (401, 403):
            raise AuthError(f"HTTP {status} {response.reason_phrase}: is the token right?", api)
        if status in (404, 405):
            raise AuthError(
                f"HTTP {status} {response.reason_phrase}: is [provider.tushare] url {self.url} "
                "the API's address?",
                api,
            )
        if not 200 <= status < 300:
            raise PermanentError(f"HTTP {status} {response.reason_phrase}", api)
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError("malformed reply: not JSON (truncated?)", api) from None
        if not isinstance(payload, dict) or "code" not in payload:
            raise TransientError("malformed reply: no 'code'", api)
        if payload["code"] != 0:
            raise classify(api, str(payload.get("msg") or f"error code {payload['code']}"))
        data = payload.get("data")
        if not isinstance(data, dict):
            raise TransientError("malformed reply: no 'data'", api)
        fields, items = data.get("fields"), data.get("items")
        if not isinstance(fields, list) or not isinstance(items, list):
            raise TransientError("malformed reply: 'data' lacks fields or items", api)
        return Reply(tuple(fields), items, bool(data.get("has_more")))

    def trading_days(self, start: str, end: str) -> list[str] | None:
        """Open days of the Shanghai exchange, from `trade_cal` (asked once, then cached)."""
        with self._calendar_lock:
            if end not in self._calendar:
                days: set[str] = set()
                params = {
                    "exchange": "SSE",
                    "start_date": "19900101",
                    "end_date": end,
                    "is_open": "1",
                }
                try:
                    for _ in range(20):  # pages; an empty page ends it
                        self.pace("trade_cal")
                        reply = self.call(
                            "trade_cal", {**params, "offset": len(days)}, ("cal_date", "is_open")
                        )
                        at, open_ = reply.fields.index("cal_date"), reply.fields.index("is_open")
                        fresh = {str(r[at]) for r in reply.items if str(r[open_]) == "1"}
                        if not reply.items or not fresh - days:
                            break
                        days |= fresh
                except (TransientError, RateLimited, PermanentError, ValueError):
                    return None  # unknown: the planner then assumes every range has data
                self._calendar[end] = sorted(days)
            return [d for d in self._calendar[end] if start <= d <= end]

    def close(self) -> None:
        self.client.close()
