"""Cron expressions: "minute hour day-of-month month day-of-week", in a time zone.

Huey's `crontab()` answers "does this minute match?", which is enough for a consumer that looks
every minute, but not for "when was the last scheduled time before now?" (a run missed while neo
was down) or "when is the next one?" (`neo status`). This answers both, a day at a time.

Fields take `*`, `N`, `A-B`, lists `A,B`, steps `*/S`, `A-B/S` and `A/S`, month and weekday
names (`jan`, `mon-fri`); weekday 0 and 7 are Sunday. As in cron, when both the day of the month
and the day of the week are restricted, a day matching either runs. `@daily`, `@weekly`,
`@monthly`, `@yearly` and `@hourly` stand for their usual expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names) per field.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
SEARCH_DAYS = 366 * 8 + 2  # far enough for "29 Feb on a Monday"
HELP = '"minute hour day month weekday", e.g. "30 18 * * 1-5"'


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raise ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _number(token: str, field: tuple) -> int:
    name, low, high, names = field
    token = token.lower()
    if token in names:
        return names.index(token) + (1 if name == "month" else 0)
    if not token.isdigit():
        raise ValueError(f"{name} {token!r} is not a number")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def _field(text: str, field: tuple) -> frozenset[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} step {step_text!r} is not a whole number above 0")
            step = int(step_text)
        if span == "*":
            lo, hi = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            lo, hi = _number(a, field), _number(b, field)
            if lo > hi:
                raise ValueError(f"{name} range {span!r} runs backwards")
        else:
            lo = _number(span, field)
            hi = high if step_text else lo
        values.update(range(lo, hi + 1, step))
    if name == "day of week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression and the time zone its times are read in."""

    expression: str
    tz: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`

    @classmethod
    def parse(cls, expression: str, tz: str | ZoneInfo = "Asia/Shanghai") -> Cron:
        """Raise ValueError saying which field is wrong and why."""
        zone_info = tz if isinstance(tz, ZoneInfo) else zone(tz)
        text = MACROS.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"{len(parts)} field(s) where cron has 5")
        sets = [_field(p, f) for p, f in zip(parts, _FIELDS, strict=True)]
        return cls(
            expression.strip(),
            zone_info,
            tuple(sorted(sets[0])),
            tuple(sorted(sets[1])),
            sets[2],
            sets[3],
            sets[4],
            parts[2].startswith("*"),
            parts[4].startswith("*"),
        )

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # cron: restricted fields must all match...
            return by_day and by_weekday
        return by_day or by_weekday  # ...but two restricted day fields match either

    def _times(self, day: date) -> list[float]:
        """The epoch times this runs on `day` (local), in order."""
        return [
            datetime(day.year, day.month, day.day, h, m, tzinfo=self.tz).timestamp()
            for h in self.hours
            for m in self.minutes
        ]

    def _local_day(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.tz).date()

    def last_at_or_before(self, t: float) -> float | None:
        """The latest scheduled time <= t (epoch seconds), or None within eight years."""
        day = self._local_day(t)
        for _ in range(SEARCH_DAYS):
            if self.runs_on(day):
                for when in reversed(self._times(day)):
                    if when <= t:
                        return when
            day -= timedelta(days=1)
        return None

    def next_after(self, t: float) -> float | None:
        """The first scheduled time > t, or None within eight years."""
        day = self._local_day(t)
        for _ in range(SEARCH_DAYS):
            if self.runs_on(day):
                for when in self._times(day):
                    if when > t:
                        return when
            day += timedelta(days=1)
        return None

    def local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz)

    def describe(self, t: float) -> str:
        """'2026-12-02 18:30 CST' in the schedule's zone."""
        return self.local(t).strftime("%Y-%m-%d %H:%M %Z")
