"""Ways to cover the same rows with fewer calls; the planner prices each and takes the cheapest.

- **per-symbol**: one range per symbol, cut where it would reach the row cap. Always possible.
- **multi-symbol** (`daily` only): the API takes several comma-separated codes with one date
  range; codes sharing a range are packed so a call stays under the row cap. For long histories
  ranges are aligned to calendar years first, so symbols listed on different days still share
  calls.
- **whole-market** (`daily`, `adj_factor`; only when the request is for the whole market):
  `trade_date=D` alone returns every symbol's row for day D. A daily update of 5,000 symbols
  becomes one call. Symbols whose saved data ends earlier than the others ("stragglers") get
  per-symbol calls for the gap before the whole-market days.
- **whole-market statements** (`income_vip` & co., accounts with 5,000 points): every company's
  statements announced in a date range, paged with `offset`. Windows are sized to about
  `PAGES` replies each from the number of symbols listed in them, so a full history costs about
  rows ÷ row cap calls and a one-day update one call.

Each strategy returns its units and the calls they need: one per unit, except whole-market
statement units, which page by design (and any unit the API's row cap surprises).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from neo_cli.coverage import merge
from neo_cli.dates import fmt, parse, plus
from neo_cli.tasktypes import VIP_OF, dataset
from neo_cli.units import Unit

MULTI_SYMBOL = ("daily",)
WHOLE_MARKET = ("daily", "adj_factor")
FILL = 0.9  # without a calendar, plan calls to 90% of the row cap: day counts are estimates
ALL = "*"  # the codes of a whole-market unit


@dataclass
class Strategy:
    name: str
    units: list[Unit] = field(default_factory=list)
    note: str = ""
    pages: int = 0  # calls expected beyond one per unit (units that page by design)

    @property
    def calls(self) -> int:
        return len(self.units) + self.pages


class TradingCalendar:
    """Trading days, for counting days in a range (None when the provider cannot say)."""

    def __init__(self, days: list[str] | None):
        self.days = days

    @property
    def known(self) -> bool:
        return self.days is not None

    def count(self, start: str, end: str) -> int:
        if self.days is None:  # estimate: about 242 sessions a year
            return max(1, math.ceil(((parse(end) - parse(start)).days + 1) * 0.70))
        return bisect.bisect_right(self.days, end) - bisect.bisect_left(self.days, start)

    def between(self, start: str, end: str) -> list[str]:
        if self.days is None:
            return []
        return self.days[bisect.bisect_left(self.days, start) : bisect.bisect_right(self.days, end)]

    def any_between(self, start: str, end: str) -> bool:
        return self.days is None or self.count(start, end) > 0


def span_days(api: str, cap: int | None = None) -> int:
    """Calendar days one symbol's call can cover without reaching the row cap."""
    d = dataset(api)
    if d.date_field == "ann_date":
        return 365 * 200  # statements: a few dozen rows a year, never near the cap
    return int((cap or d.row_cap) * FILL / 0.70)


def cut(
    api: str, start: str, end: str, calendar: TradingCalendar | None, cap: int | None = None
) -> list[tuple[str, str]]:
    """start..end in ranges one call each returns whole. With the calendar known, a bar or
    factor interface has at most one row a trading day, so a range may hold cap - 1 trading
    days (a reply never reaches the cap, which would cost a page); without it, calendar days
    at FILL of the cap."""
    d = dataset(api)
    if d.date_field != "trade_date" or calendar is None or not calendar.known:
        return split(start, end, span_days(api, cap))
    days = calendar.between(start, end)
    per_call = (cap or d.row_cap) - 1
    out, lo = [], start
    for i in range(per_call, len(days), per_call):
        out.append((lo, plus(days[i], -1)))
        lo = days[i]
    out.append((lo, end))
    return out


def _per_call(api: str, calendar: TradingCalendar, cap: int | None) -> float:
    """Rows a packed call may be planned to hold (see `cut`)."""
    full = cap or dataset(api).row_cap
    return full - 1 if calendar.known else full * FILL


def split(start: str, end: str, days: int) -> list[tuple[str, str]]:
    lo, hi = parse(start), parse(end)
    out = []
    while lo <= hi:
        top = min(hi, lo + timedelta(days=days - 1))
        out.append((fmt(lo), fmt(top)))
        lo = top + timedelta(days=1)
    return out


Ranges = dict[str, tuple[str, str]]  # symbol -> (start, end), inclusive


def _unit(api: str, codes: list[str], start: str, end: str, batch: str, priority: int) -> Unit:
    return Unit(
        api,
        {"ts_code": ",".join(codes), "start_date": start, "end_date": end},
        tuple(codes),
        batch,
        priority,
    )


def per_symbol(
    api: str,
    ranges: Ranges,
    batch: str,
    priority: int,
    cap: int | None = None,
    calendar: TradingCalendar | None = None,
) -> Strategy:
    units = [
        _unit(api, [code], lo, hi, batch, priority)
        for code, (start, end) in ranges.items()
        for lo, hi in cut(api, start, end, calendar, cap)
    ]
    return Strategy("per-symbol", units, "one call per symbol and range")


def _pack(
    api: str,
    groups: dict[tuple[str, str], list[str]],
    calendar: TradingCalendar,
    max_codes: int,
    batch: str,
    priority: int,
    row_cap: int | None = None,
    spans: Mapping[str, tuple[str, str]] | None = None,
) -> list[Unit]:
    """Codes sharing a range, packed into calls that stay under the cap. A code's rows are
    the trading days of the range within its listing span (`spans`: list and delist dates),
    so a code listed late in a year, or delisted early, leaves room for others."""
    cap = _per_call(api, calendar, row_cap)
    spans = spans or {}
    units = []
    for (start, end), codes in sorted(groups.items()):
        days = calendar.count(start, end)
        if days * 2 > cap:  # one symbol's range alone fills most of a call: cut it per symbol
            for code in codes:
                units += [
                    _unit(api, [code], lo, hi, batch, priority)
                    for lo, hi in cut(api, start, end, calendar, row_cap)
                ]
            continue
        call: list[str] = []
        rows = 0
        for code in codes:
            first, last = spans.get(code, ("", ""))
            lo, hi = max(start, first or start), min(end, last or end)
            mine = calendar.count(lo, hi) if lo <= hi else 0
            if call and (rows + mine > cap or len(call) >= max_codes):
                units.append(_unit(api, call, start, end, batch, priority))
                call, rows = [], 0
            call.append(code)
            rows += mine
        if call:
            units.append(_unit(api, call, start, end, batch, priority))
    return units


def multi_symbol(
    api: str,
    ranges: Ranges,
    calendar: TradingCalendar,
    max_codes: int,
    batch: str,
    priority: int,
    cap: int | None = None,
    spans: Mapping[str, tuple[str, str]] | None = None,
) -> Strategy:
    """Pack codes into calls: grouped by identical range, or by calendar year, whichever
    needs fewer calls. `spans`: each code's listing span, for how many rows it can have."""
    exact: dict[tuple[str, str], list[str]] = {}
    for code, rng in ranges.items():
        exact.setdefault(rng, []).append(code)
    by_exact = _pack(api, exact, calendar, max_codes, batch, priority, cap, spans)

    yearly: dict[tuple[str, str], list[str]] = {}
    for code, (start, end) in ranges.items():
        for year in range(int(start[:4]), int(end[:4]) + 1):
            lo = max(start, f"{year}0101") if year == int(start[:4]) else f"{year}0101"
            # Whole years (clipped to the plan's end) so symbols listed on different days
            # share a range; the part before a symbol's start only repeats saved rows.
            window = (f"{year}0101" if lo > f"{year}0101" else lo, min(f"{year}1231", end))
            yearly.setdefault(window, []).append(code)
    by_year = _pack(api, yearly, calendar, max_codes, batch, priority, cap, spans)
    if len(by_year) < len(by_exact):
        return Strategy("multi-symbol", by_year, f"up to {max_codes} codes a call, by year")
    return Strategy("multi-symbol", by_exact, f"up to {max_codes} codes a call")


def whole_market(
    api: str,
    ranges: Ranges,
    calendar: TradingCalendar,
    batch: str,
    priority: int,
    cap: int | None = None,
) -> Strategy | None:
    """One call per trading day for the days most symbols need, per-symbol calls for the
    stragglers' older gaps. None when the calendar is unknown."""
    if not calendar.known or not ranges:
        return None
    end = max(e for _, e in ranges.values())
    starts = sorted({s for s, _ in ranges.values()})
    n = len(ranges)
    # Whole-market from the earliest start covers everyone with no straggler; a later cut
    # trades market days for per-symbol calls on the older gaps.
    best = (calendar.count(starts[0], end), starts[0])
    span = int(_per_call(api, calendar, cap) / 0.70)  # calendar days a call covers, about
    # Ordinals, sorted by start: this loop runs once per distinct start over every symbol.
    spans = sorted((parse(s).toordinal(), parse(e).toordinal()) for s, e in ranges.values())
    for at in reversed(starts[1:]):
        days = calendar.count(at, end)
        if days >= min(n, best[0]):
            break  # earlier cuts only add days
        top = parse(at).toordinal() - 1
        cost = days
        for lo, hi in spans:
            if lo > top or cost >= best[0]:
                break
            cost += -(-(min(hi, top) - lo + 1) // span)  # pieces(), on ordinals
        if cost < best[0]:
            best = (cost, at)
    at = best[1]
    units = [
        Unit(api, {"trade_date": day}, (ALL,), batch, priority) for day in calendar.between(at, end)
    ]
    stragglers = 0
    for code, (s, e) in ranges.items():
        if s < at:
            stragglers += 1
            units += [
                _unit(api, [code], lo, hi, batch, priority)
                for lo, hi in cut(api, s, min(e, plus(at, -1)), calendar, cap)
            ]
    days = calendar.count(at, end)
    return Strategy(
        "whole-market", units, f"{days} trading day(s) from {at}, plus {stragglers} straggler(s)"
    )


Gaps = list[tuple[str, str, str]]  # (symbol, start, end): holes before a symbol's newest range


def fill_gaps(
    api: str,
    gaps: Gaps,
    calendar: TradingCalendar,
    max_codes: int,
    *,
    multi: bool,
    market: bool,
    batch: str,
    priority: int,
    cap: int | None = None,
    spans: Mapping[str, tuple[str, str]] | None = None,
) -> Strategy:
    """Units for the older holes of symbols (a range whose calls failed, say): the cheapest of
    one call per symbol and hole; codes sharing a hole packed in one call (`multi`); or one
    whole-market call per trading day the holes hold (`market`: one bad old day of the whole
    market costs one call, not one per symbol)."""
    ways = [
        Strategy(
            "per-symbol",
            [
                _unit(api, [code], lo, hi, batch, priority)
                for code, start, end in gaps
                for lo, hi in cut(api, start, end, calendar, cap)
            ],
        )
    ]
    if multi:
        groups: dict[tuple[str, str], list[str]] = {}
        for code, start, end in gaps:
            groups.setdefault((start, end), []).append(code)
        ways.append(
            Strategy(
                "multi-symbol",
                _pack(api, groups, calendar, max_codes, batch, priority, cap, spans),
            )
        )
    if market and calendar.known:
        days = sorted({d for _, start, end in gaps for d in calendar.between(start, end)})
        ways.append(
            Strategy(
                "whole-market",
                [Unit(api, {"trade_date": day}, (ALL,), batch, priority) for day in days],
            )
        )
    best = min(ways, key=lambda st: st.calls)  # stable: per-symbol wins ties
    best.note = f"{len(gaps)} older hole(s) by {best.name} calls" if gaps else ""
    return best


PAGES = 10  # replies a whole-market statement unit is sized for
ROWS_PER_YEAR = 4.5  # statement rows a listed company publishes a year (4 reports, revisions)


class Listed:
    """How many of a set of symbols were listed at a date (list and delist dates)."""

    def __init__(self, spans: list[tuple[str, str]]):
        self.starts = sorted(lo for lo, _ in spans if lo)
        self.ends = sorted(hi for _, hi in spans if hi)

    def at(self, day: str) -> int:
        return bisect.bisect_right(self.starts, day) - bisect.bisect_left(self.ends, day)


def _statement_windows(
    lo: str, hi: str, listed: Listed, budget: float
) -> list[tuple[str, str, float]]:
    """(start, end, estimated rows) windows covering lo..hi, month by month, each holding
    about `budget` rows."""
    out: list[tuple[str, str, float]] = []
    start, rows, cursor = lo, 0.0, parse(lo)
    end = parse(hi)
    while cursor <= end:
        month_end = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(1)
        top = min(month_end, end)
        days = (top - cursor).days + 1
        more = max(listed.at(fmt(cursor)), 1) * ROWS_PER_YEAR * days / 365
        if rows and rows + more > budget:
            out.append((start, fmt(cursor - timedelta(days=1)), rows))
            start, rows = fmt(cursor), 0.0
        rows += more
        cursor = top + timedelta(days=1)
    out.append((start, hi, rows))
    return out


def whole_market_statements(
    api: str,
    holes: list[tuple[str, str]],
    spans: list[tuple[str, str]],
    cap: int,
    batch: str,
    priority: int,
) -> Strategy:
    """`income_vip` & co. over the union of every symbol's holes (`spans`: the symbols'
    listing spans, for the estimate), one unit per window of about PAGES replies."""
    listed = Listed(spans)
    units, pages = [], 0
    for lo, hi in merge(holes):
        for start, end, rows in _statement_windows(lo, hi, listed, PAGES * cap * FILL):
            units.append(
                Unit(VIP_OF[api], {"start_date": start, "end_date": end}, (ALL,), batch, priority)
            )
            pages += max(0, math.ceil(rows / cap) - 1)
    return Strategy(
        "whole-market",
        units,
        f"{VIP_OF[api]}: every company's statements, {len(units)} window(s) paged by offset",
        pages,
    )
