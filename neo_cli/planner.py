"""Turning "task type T for these symbols and dates" into units of work.

Incremental by default: a symbol's range starts after the last date already saved for it (for
statements, *at* the last announcement date, since more can appear on the same day), so a
re-run asks only for what is missing. Long ranges are cut so each call stays under the API's row
cap; a symbol that already has a unit on its way is skipped as "already queued".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from neo_cli.dates import EARLIEST, fmt, parse, plus
from neo_cli.errors import InputError
from neo_cli.ledger import Ledger
from neo_cli.tasktypes import STATEMENTS, TaskType, dataset
from neo_cli.units import Unit

SYMBOL = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
# Trading days per calendar day, rounded up (about 242 sessions a year), for sizing ranges.
TRADING_DENSITY = 0.70
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
        text = path.read_text(encoding="utf-8-sig")  # Excel and Notepad write a BOM
    except FileNotFoundError:
        raise InputError(f"symbols file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"symbols file {path} is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"symbols file {path} is not readable") from None
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


@dataclass(frozen=True)
class Request:
    task_type: TaskType
    symbols: list[str] | None = None  # None: every listed symbol in stock_basic
    start: date | None = None
    end: date | None = None
    full: bool = False  # refetch the whole range, ignoring what is saved
    priority: int = 0


@dataclass
class Plan:
    units: list[Unit] = field(default_factory=list)
    queued: int = 0  # skipped: already on its way
    current: int = 0  # skipped: nothing new to fetch
    symbols: int = 0


TradingDays = Callable[[str, str], "list[str] | None"]


class Calendar:
    """The provider's trading days, asked for once per plan, not once per symbol."""

    def __init__(self, trading_days: TradingDays | None, end: str):
        days = trading_days(fmt(EARLIEST), end) if trading_days else None
        self.days = days

    def any_between(self, start: str, end: str) -> bool:
        if self.days is None:
            return True  # unknown calendar: assume there is something to fetch
        i = bisect.bisect_left(self.days, start)
        return i < len(self.days) and self.days[i] <= end


def span_days(api: str) -> int:
    """Calendar days one call can cover without reaching the row cap (with 10% to spare)."""
    d = dataset(api)
    if d.api in STATEMENTS:
        return 365 * 200  # a few dozen rows a year: never near the cap
    return int(d.row_cap * 0.9 / TRADING_DENSITY)


def split(start: str, end: str, days: int) -> Iterable[tuple[str, str]]:
    lo = parse(start)
    hi = parse(end)
    while lo <= hi:
        top = min(hi, lo + timedelta(days=days - 1))
        yield fmt(lo), fmt(top)
        lo = top + timedelta(days=1)


def make_plan(
    request: Request,
    ledger: Ledger,
    today: date,
    batch: str,
    trading_days: TradingDays | None = None,
) -> Plan:
    """The units for `request`. `trading_days(start, end)` (when the provider knows the
    calendar) lets a range with no trading day in it count as up to date."""
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

    listed = {code: (ld, dd) for code, ld, dd in ledger.symbols(("L", "D", "P"))}
    if request.symbols is None:
        codes = [code for code, _, _ in ledger.symbols(("L",))]
        if not codes:
            raise InputError(
                "no symbols: the stock_basic table is empty. Fill it first with "
                "`neo enqueue --task-type stock_basic` (and let it save), or pass --symbols"
            )
    else:
        codes = request.symbols
    plan.symbols = len(codes)
    end_default = fmt(request.end or today)
    calendar = Calendar(trading_days, end_default)
    for api in request.task_type.datasets:
        live = ledger.live_codes(api)
        marks = ledger.watermarks(api)
        for code in codes:
            if code in live:
                plan.queued += 1
                continue
            list_date, delist_date = listed.get(code, ("", ""))
            # Statements are published for periods before a listing too (the prospectus),
            # and before the exchanges' first trading day.
            if api in STATEMENTS:
                first = STATEMENTS_SINCE
            else:
                first = list_date or fmt(EARLIEST)
            start = fmt(request.start) if request.start else first
            end = min(end_default, delist_date) if delist_date else end_default
            last = marks.get(code)
            if last and not request.full:
                resume = last if api in STATEMENTS else plus(last, 1)
                start = max(start, resume)
            if start > end or (api not in STATEMENTS and not calendar.any_between(start, end)):
                plan.current += 1
                continue
            for lo, hi in split(start, end, span_days(api)):
                plan.units.append(
                    Unit(
                        api,
                        {"ts_code": code, "start_date": lo, "end_date": hi},
                        (code,),
                        batch,
                        request.priority,
                    )
                )
    return plan
