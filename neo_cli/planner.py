"""Turning "task type T for these symbols and dates" into units of work.

Incremental by default: a symbol owes what lies inside its listing span and the requested dates
but outside the ranges successful calls already covered (`neo_cli.coverage`), so a re-run asks
only for what is missing, holes left by failures included. Long ranges are cut so each call stays
under the API's row cap; a symbol that already has a unit on its way is skipped as "already
queued".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from neo_cli.coverage import holes
from neo_cli.dates import EARLIEST, fmt
from neo_cli.errors import InputError
from neo_cli.inputs import read_input
from neo_cli.ledger import Ledger
from neo_cli.strategies import (
    ALL,
    MULTI_SYMBOL,
    WHOLE_MARKET,
    Gaps,
    Strategy,
    TradingCalendar,
    fill_gaps,
    multi_symbol,
    per_symbol,
    whole_market,
    whole_market_statements,
)
from neo_cli.tasktypes import STATEMENTS, VIP_OF, TaskType, dataset
from neo_cli.units import Unit

SYMBOL = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
LIST_STATUSES = ("L", "D", "P")
STATEMENTS_SINCE = "19900101"


def check_symbol(code: str, where: str) -> str:
    value = code.strip().upper()
    if not SYMBOL.match(value):
        raise InputError(
            f"malformed symbol {code!r} in {where}; expected six digits and .SH, .SZ or .BJ, "
            "e.g. 000001.SZ"
        )
    return value


def parse_symbols(text: str) -> list[str]:
    """`--symbols A,B` -> validated codes, in order, without repeats."""
    codes = [c for c in (s.strip() for s in text.split(",")) if c]
    if not codes:
        raise InputError(f"--symbols {text!r} names no symbol; expected e.g. 000001.SZ,600000.SH")
    return list(dict.fromkeys(check_symbol(c, "--symbols") for c in codes))


def read_symbols_file(path: Path) -> list[str]:
    """One code a line; blank lines and `#` comments ignored."""
    try:
        text = read_input(path, "symbols file").decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise InputError(f"symbols file {path} is not UTF-8 text") from None
    codes = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            codes.append(check_symbol(line, f"{path} line {n}"))
    if not codes:
        raise InputError(f"symbols file {path} lists no symbols (one code a line, # comments)")
    return list(dict.fromkeys(codes))


def requested_symbols(
    symbols: str | None, symbols_file: Path | None, listed_only: bool = False
) -> list[str] | None:
    """`--symbols` or `--symbols-file` (not both, nor with `--listed-only`, which narrows the
    whole market), validated; None for the whole market."""
    if symbols is not None and symbols_file is not None:
        raise InputError("give --symbols or --symbols-file, not both")
    if listed_only and (symbols is not None or symbols_file is not None):
        raise InputError("--listed-only narrows the whole market; it does not go with --symbols")
    if symbols is not None:
        return parse_symbols(symbols)
    return read_symbols_file(symbols_file) if symbols_file is not None else None


@dataclass(frozen=True)
class Request:
    task_type: TaskType
    symbols: list[str] | None = None  # None: every symbol stock_basic lists
    start: date | None = None
    end: date | None = None
    full: bool = False  # refetch the whole range, ignoring what is saved
    priority: int = 0
    listed_only: bool = False  # the whole market means today's listed symbols only


@dataclass
class Plan:
    units: list[Unit] = field(default_factory=list)
    queued: int = 0  # skipped: already on its way
    current: int = 0  # skipped: nothing new to fetch
    symbols: int = 0
    # Per interface, every strategy priced, the chosen one first.
    choices: dict[str, list[Strategy]] = field(default_factory=dict)
    # The symbols whole-market units may save rows for (empty when none were chosen).
    universe: list[str] = field(default_factory=list)


TradingDays = Callable[[str, str], "list[str] | None"]


@dataclass(frozen=True)
class PlanOptions:
    """Which call-saving strategies the account may use ([plan] in the config), and the
    API's row caps ([row_caps])."""

    multi_symbol: bool = True
    whole_market: bool = True
    max_codes_per_call: int = 100
    statements_vip: str = "auto"  # "auto" | "true" | "false"
    row_caps: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings) -> PlanOptions:
        v = settings.values["plan"]
        return cls(
            v["multi_symbol"],
            v["whole_market"],
            v["max_codes_per_call"],
            v["statements_vip"],
            settings.row_caps,
        )

    def cap(self, api: str) -> int:
        return self.row_caps.get(api) or dataset(api).row_cap


def plan_codes(request: Request, ledger: Ledger) -> list[str]:
    """The symbols a request is for: `--symbols`, else every symbol the catalog lists —
    listed, delisted and paused, each over its own listing span, so the history has no
    survivorship bias — or with `listed_only`, today's listed symbols."""
    if request.symbols is not None:
        return list(request.symbols)
    statuses = ("L",) if request.listed_only else LIST_STATUSES
    codes = [code for code, _, _ in ledger.symbols(statuses)]
    if not codes:
        raise InputError(
            "no symbols: the stock_basic table is empty. Fill it first with "
            "`neo enqueue --task-type stock_basic` (and let it save), or pass --symbols"
        )
    return codes


def symbol_span(
    api: str, code: str, listed: dict[str, tuple[str, str]], request: Request, end: str
) -> tuple[str, str]:
    """The dates `code` owes `api` for this request: its listing span (statements: from
    1990, since they are published for periods before a listing too, and before the
    exchanges' first trading day) within the requested dates."""
    list_date, delist_date = listed.get(code, ("", ""))
    first = STATEMENTS_SINCE if api in STATEMENTS else (list_date or fmt(EARLIEST))
    start = fmt(request.start) if request.start else first
    return start, min(end, delist_date) if delist_date else end


def symbol_holes(
    api: str,
    span: tuple[str, str],
    covered: dict[str, list[tuple[str, str]]],
    calendar: TradingCalendar,
    code: str,
) -> list[tuple[str, str]]:
    """The parts of `span` no successful call covered (bars: those with a trading day)."""
    found = holes(span, covered.get(code, ()))
    if api not in STATEMENTS:
        found = [h for h in found if calendar.any_between(*h)]
    return found


def vip_allowed(options: PlanOptions, ledger: Ledger, statement: str) -> bool:
    """May `statement` be asked for the whole market (`income_vip`)? Not when `[plan]
    statements_vip = "false"`, nor under "auto" once the account was refused."""
    if options.statements_vip == "false":
        return False
    return options.statements_vip == "true" or not ledger.vip_refused(statement)


def plan_for(settings, request: Request, ledger: Ledger, provider, batch: str) -> Plan:
    """`make_plan` with today's date, the provider's calendar and the settings' [plan]."""
    from neo_cli.dates import today

    return make_plan(
        request, ledger, today(), batch, provider.trading_days, PlanOptions.from_settings(settings)
    )


def make_plan(
    request: Request,
    ledger: Ledger,
    today: date,
    batch: str,
    trading_days: TradingDays | None = None,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """The units for `request`. `trading_days(start, end)` (when the provider knows the
    calendar) lets a range with no trading day in it count as up to date, and makes
    whole-market calls possible."""
    if request.start and request.end and request.end < request.start:
        raise InputError(
            f"--end-date {fmt(request.end)} is before --start-date {fmt(request.start)}"
        )
    plan = Plan()
    if request.task_type.name == "stock_basic":
        if ledger.live_count("stock_basic"):
            plan.queued = 1
        else:
            plan.units = [
                Unit("stock_basic", {"list_status": s}, (), batch, request.priority)
                for s in LIST_STATUSES
            ]
        return plan

    listed = {code: (ld, dd) for code, ld, dd in ledger.symbols(LIST_STATUSES)}
    codes = plan_codes(request, ledger)
    plan.symbols = len(codes)
    end_default = fmt(request.end or today)
    calendar = TradingCalendar(trading_days(fmt(EARLIEST), end_default) if trading_days else None)
    for api in request.task_type.datasets:
        live = ledger.live_codes(api)
        covered = {} if request.full else ledger.coverage(api)
        tails: dict[str, tuple[str, str]] = {}  # each symbol's newest hole, to the plan's end
        gaps: Gaps = []  # older holes
        for code in codes:
            if code in live or ALL in live:
                plan.queued += 1
                continue
            span = symbol_span(api, code, listed, request, end_default)
            found = symbol_holes(api, span, covered, calendar, code)
            if not found:
                plan.current += 1
                continue
            if found[-1][1] == span[1]:
                tails[code] = found.pop()
            gaps += [(code, lo, hi) for lo, hi in found]
        if not tails and not gaps:
            continue
        market = options.whole_market and api in WHOLE_MARKET and request.symbols is None
        cap = options.cap(api)
        older = fill_gaps(
            api,
            gaps,
            calendar,
            options.max_codes_per_call,
            multi=options.multi_symbol and api in MULTI_SYMBOL,
            market=market,
            batch=batch,
            priority=request.priority,
            cap=cap,
            spans=listed,
        )
        priced = [per_symbol(api, tails, batch, request.priority, cap, calendar)]
        if options.multi_symbol and api in MULTI_SYMBOL:
            priced.append(
                multi_symbol(
                    api,
                    tails,
                    calendar,
                    options.max_codes_per_call,
                    batch,
                    request.priority,
                    cap,
                    listed,
                )
            )
        if market:
            found_market = whole_market(api, tails, calendar, batch, request.priority, cap)
            if found_market is not None:
                priced.append(found_market)
        for strategy in priced:
            strategy.units += older.units
            strategy.pages += older.pages
            if older.note:
                strategy.note = f"{strategy.note}; {older.note}" if strategy.note else older.note
        if api in VIP_OF and request.symbols is None and vip_allowed(options, ledger, api):
            # Every company's statements for the union of the holes, tails and older alike.
            holed = [*tails.items(), *((c, (lo, hi)) for c, lo, hi in gaps)]
            priced.append(
                whole_market_statements(
                    api,
                    [rng for _, rng in holed],
                    [listed.get(code, ("", "")) for code in {c for c, _ in holed}],
                    options.cap(VIP_OF[api]),
                    batch,
                    request.priority,
                )
            )
        priced.sort(key=lambda st: st.calls)  # stable: per-symbol wins ties
        plan.choices[api] = priced
        plan.units += priced[0].units
        if any(u.codes == (ALL,) for u in priced[0].units):
            # The symbols whole-market rows may be saved (and days covered) for: every
            # symbol this interface's plan is for, across interfaces.
            plan.universe = sorted({*plan.universe, *tails, *(c for c, _, _ in gaps)})
    return plan
