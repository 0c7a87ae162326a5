"""Date ranges as sets: what successful calls covered, and the holes a plan must fill.

A range is `(start, end)`, both 'YYYYMMDD' and inclusive. A coverage is a sorted list of
disjoint ranges that do not touch (adjacent ranges are merged: 20240101-20240131 and
20240201-20240229 are one range).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from neo_cli.dates import plus

Range = tuple[str, str]


@functools.lru_cache(maxsize=1 << 16)  # the same days come up for every symbol
def _after(day: str, trading: bool) -> str:
    """The first day after `day` that a range must reach to touch it: the next day, or for
    bars the next weekday (the exchanges never open on a Saturday or a Sunday)."""
    step = 1
    if trading:
        weekday = date(int(day[:4]), int(day[4:6]), int(day[6:])).weekday()
        step = {4: 3, 5: 2}.get(weekday, 1)
    return plus(day, step)


def add(coverage: list[Range], span: Range, trading: bool = False) -> list[Range]:
    """`merge([*coverage, span])` for a coverage: only the ranges next to `span` are looked at
    (the ledger adds a day at a time to coverages of hundreds of ranges)."""
    lo, hi = span
    if lo > hi:
        return coverage
    i = bisect.bisect_right(coverage, (lo, "\uffff"))  # coverage[:i] start on or before lo
    first = i
    if i and lo <= _after(coverage[i - 1][1], trading):
        first = i - 1  # only the last of those can reach lo: the others stop short of it
        lo, hi = coverage[first][0], max(hi, coverage[first][1])
    last = i
    while last < len(coverage) and coverage[last][0] <= _after(hi, trading):
        hi = max(hi, coverage[last][1])
        last += 1
    return [*coverage[:first], (lo, hi), *coverage[last:]]


def merge(ranges: Iterable[Range], trading: bool = False) -> list[Range]:
    """The union of `ranges`, as a coverage. `trading`: the dates are trading days (bars),
    so ranges apart by a weekend only are one (whole-market calls cover one day each)."""
    out: list[list[str]] = []
    for start, end in sorted(r for r in ranges if r[0] <= r[1]):
        if out and start <= _after(out[-1][1], trading):
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def holes(span: Range, covered: Iterable[Range]) -> list[Range]:
    """The parts of `span` that `covered` does not cover, in order."""
    start, end = span
    if start > end:
        return []
    out = []
    cursor = start
    for lo, hi in merge(covered):
        if hi < cursor:
            continue
        if lo > end:
            break
        if lo > cursor:
            out.append((cursor, min(end, plus(lo, -1))))
        cursor = max(cursor, plus(hi, 1))
        if cursor > end:
            return out
    if cursor <= end:
        out.append((cursor, end))
    return out


def covered_by(params: Mapping[str, Any]) -> Range | None:
    """The dates a successful call with these parameters covered: its start and end dates
    (announcement dates for statements), or its one trade date; None when it has none."""
    if params.get("trade_date"):
        day = str(params["trade_date"])
        return day, day
    if params.get("start_date") and params.get("end_date"):
        return str(params["start_date"]), str(params["end_date"])
    return None
