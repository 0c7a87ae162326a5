"""Dates as the API writes them ('YYYYMMDD'), and today in the market's time zone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from neo_cli.errors import InputError

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
EARLIEST = date(1990, 12, 19)  # the Shanghai exchange's first trading day


def today() -> date:
    return datetime.now(CHINA).date()


def parse(text: str, what: str = "date") -> date:
    """'20240131' -> date; raise InputError naming the value and the format."""
    value = text.strip()
    if not re.fullmatch(r"\d{8}", value):
        raise InputError(f"invalid {what} {text!r}; expected YYYYMMDD, e.g. 20240131")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))  # strptime is 10x slower
    except ValueError:
        raise InputError(f"invalid {what} {text!r}: no such day; expected YYYYMMDD") from None


def fmt(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def plus(day: str, days: int) -> str:
    """'YYYYMMDD' moved by `days` (the planner's hot path: no validation)."""
    return fmt(date(int(day[:4]), int(day[4:6]), int(day[6:])) + timedelta(days=days))


def next_midnight(now: float) -> float:
    """The epoch time of the next midnight in China, when daily API caps reset."""
    current = datetime.fromtimestamp(now, CHINA)
    tomorrow = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return tomorrow.timestamp()
