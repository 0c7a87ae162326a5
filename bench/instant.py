"""A provider that costs nothing, for bench/overhead.py: `[provider] name =
"bench.instant:provider"`, with the repository on PYTHONPATH.

The simulated market's universe and calendar, but every daily or adj_factor call is answered at
once with one row per symbol asked, dated the last day asked, made from the call's own
parameters. The simulated provider builds a stock's whole history to answer a one-day query
(bench/overhead.py measures how long: `simulated_ms`): that is the API's cost, not neo's, and an
API that costs nothing has none.
Limits, latency and faults are the simulated provider's own (the benchmark sets them to nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neo_cli.config import Settings
from neo_cli.providers.base import Reply
from neo_cli.providers.simulated import SimulatedProvider, asked_fields
from neo_cli.tasktypes import ADJ_FACTOR, DAILY

PRICE = 10.0  # every number in a bar: a flat day


class InstantProvider(SimulatedProvider):
    name = "instant"

    def _reply(self, api: str, params: Mapping[str, Any], fields: Sequence[str]) -> Reply:
        if api not in (DAILY.api, ADJ_FACTOR.api):
            return super()._reply(api, params, fields)
        names = asked_fields(api, fields)
        day = params.get("end_date") or params.get("trade_date") or params.get("start_date")
        codes = [c.strip() for c in str(params.get("ts_code") or "").split(",") if c.strip()]
        items = []
        for code in codes:
            row = {"ts_code": code, "trade_date": day, "change": 0.0, "pct_chg": 0.0}
            items.append([row.get(name, PRICE) for name in names])
        return Reply(fields=tuple(names), items=items)


def provider(settings: Settings) -> InstantProvider:
    v = settings.values
    return InstantProvider(
        v["provider.simulated"], settings.rate_limits, call_timeout=v["fast"]["call_timeout"]
    )
