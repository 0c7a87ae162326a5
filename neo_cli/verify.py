"""`neo verify`: is the database complete? The holes in each symbol's coverage, per interface.

A hole is a part of a symbol's listing span (statements: from 1990) that no successful call
covered; for bars, only parts holding a trading day count. Holes that a unit on its way will
fill are counted apart ("queued"): they are not lost, just not saved yet. The next ordinary
`neo enqueue` plans exactly the holes that are not queued, which is what `--repair` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from neo_cli.config import Settings
from neo_cli.dates import EARLIEST, fmt, today
from neo_cli.ledger import Ledger
from neo_cli.paths import Paths
from neo_cli.planner import LIST_STATUSES, Request, plan_codes, symbol_holes, symbol_span
from neo_cli.strategies import ALL, TradingCalendar
from neo_cli.tasktypes import task_type

CHECKED = ("daily", "adj_factor", "income", "balancesheet", "cashflow")


@dataclass
class Report:
    """One interface's holes: {symbol: [(start, end), …]}, and the symbols checked."""

    api: str
    symbols: int = 0
    holes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    queued: list[str] = field(default_factory=list)  # symbols with a hole a unit will fill
    # Rows the API sent that could not be saved (set aside in _quarantine): covered, since
    # asking again brings the same rows, but listed so nobody mistakes them for data.
    quarantined: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def ranges(self) -> int:
        return sum(len(r) for r in self.holes.values())

    def to_dict(self) -> dict:
        return {
            "api": self.api,
            "symbols": self.symbols,
            "symbols_with_holes": len(self.holes),
            "ranges": self.ranges,
            "holes": {code: [list(r) for r in rs] for code, rs in sorted(self.holes.items())},
            "queued": sorted(self.queued),
            "quarantined": {
                code: [list(r) for r in rs] for code, rs in sorted(self.quarantined.items())
            },
        }


def verify(settings: Settings, request: Request, provider=None) -> list[Report]:
    """Each interface of `request.task_type` with its holes, through yesterday (China time)
    unless the request names an end date."""
    from neo_cli.enqueue import paced_provider

    paths = Paths(settings.data_dir).ensure()
    limiters = None
    if provider is None:
        provider, limiters = paced_provider(settings)
    ledger = Ledger(paths.ledger)
    try:
        codes = plan_codes(request, ledger)
        listed = {code: (ld, dd) for code, ld, dd in ledger.symbols(LIST_STATUSES)}
        # Through the last day that is over: today is covered only once it ends (a call made
        # during the day may precede its bar or a late announcement).
        end = fmt(request.end or today() - timedelta(days=1))
        calendar = TradingCalendar(provider.trading_days(fmt(EARLIEST), end))
        reports = []
        for api in request.task_type.datasets:
            wanted = set(codes)
            report = Report(api, symbols=len(codes))
            report.quarantined = {
                c: rs for c, rs in ledger.quarantined(api).items() if c in wanted or not c
            }
            covered = ledger.coverage(api)
            live = ledger.live_codes(api)
            for code in codes:
                span = symbol_span(api, code, listed, request, end)
                found = symbol_holes(api, span, covered, calendar, code)
                if not found:
                    continue
                if code in live or ALL in live:
                    report.queued.append(code)
                else:
                    report.holes[code] = found
            reports.append(report)
        return reports
    finally:
        ledger.close()
        provider.close()
        if limiters is not None:
            limiters.close()


def requests_for(name: str | None, symbols: list[str] | None, **options) -> list[Request]:
    """One request per task type checked (all of them when `name` is None)."""
    names = [name] if name else list(CHECKED)
    return [Request(task_type(n), symbols, **options) for n in names]
