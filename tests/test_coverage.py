"""Coverage arithmetic: unions and holes of inclusive date ranges, against a day-by-day model."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from neo_cli.coverage import add, holes, merge

D0 = date(2024, 1, 1)


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).strftime("%Y%m%d")


def days_of(ranges) -> set[str]:
    out = set()
    for s, e in ranges:
        d = date(int(s[:4]), int(s[4:6]), int(s[6:]))
        while d.strftime("%Y%m%d") <= e:
            out.add(d.strftime("%Y%m%d"))
            d += timedelta(days=1)
    return out


def test_adjacent_and_overlapping_ranges_merge() -> None:
    assert merge([("20240201", "20240229"), ("20240101", "20240131")]) == [("20240101", "20240229")]
    assert merge([("20240101", "20240110"), ("20240105", "20240103")]) == [
        ("20240101", "20240110")
    ]  # an empty range (end before start) is nothing
    assert merge([("20240101", "20240110"), ("20240112", "20240115")]) == [
        ("20240101", "20240110"),
        ("20240112", "20240115"),
    ]


def test_holes_inside_a_span() -> None:
    covered = [("20240105", "20240110"), ("20240120", "20240125")]
    assert holes(("20240101", "20240131"), covered) == [
        ("20240101", "20240104"),
        ("20240111", "20240119"),
        ("20240126", "20240131"),
    ]
    assert holes(("20240105", "20240125"), covered) == [("20240111", "20240119")]
    assert holes(("20240106", "20240109"), covered) == []
    assert holes(("20240101", "20240131"), []) == [("20240101", "20240131")]


ranges = st.lists(
    st.tuples(st.integers(0, 80), st.integers(0, 30)).map(lambda t: (day(t[0]), day(t[0] + t[1]))),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(covered=ranges, lo=st.integers(0, 100), width=st.integers(-3, 100))
def test_holes_are_exactly_the_uncovered_days(covered, lo, width) -> None:
    span = (day(lo), day(lo + width))
    got = holes(span, covered)
    assert days_of(got) == days_of([span]) - days_of(covered)
    assert got == merge(got) and all(s <= e for s, e in got)  # disjoint, ordered, not touching
    assert days_of(merge(covered)) == days_of(covered)


# --------------------------------------------------------------------------- recorded by the ledger


def test_the_ledger_records_what_saved_units_covered(tmp_path) -> None:
    from neo_cli.ledger import Ledger
    from neo_cli.strategies import ALL
    from neo_cli.units import Unit

    ledger = Ledger(tmp_path / "ledger.db")
    a = Unit("daily", {"ts_code": "A", "start_date": "20240101", "end_date": "20240131"}, ("A",))
    b = Unit("daily", {"ts_code": "A", "start_date": "20240201", "end_date": "20240210"}, ("A",))
    packed = Unit(
        "daily",
        {"ts_code": "B,C", "start_date": "20240105", "end_date": "20240106"},
        ("B", "C"),
    )
    market = Unit("daily", {"trade_date": "20240301"}, (ALL,), "m")
    empty = Unit(
        "income", {"ts_code": "A", "start_date": "19900101", "end_date": "20240101"}, ("A",)
    )
    failed = Unit(
        "daily", {"ts_code": "D", "start_date": "20240101", "end_date": "20240131"}, ("D",)
    )
    with ledger.adding("", "daily", [a, b, packed, failed]):
        pass
    with ledger.adding("m", "daily", [market], universe=["A", "B"]):
        pass
    with ledger.adding("", "income", [empty]):
        pass
    for u in (a, b, packed, market):
        ledger.mark_saving(u, f"save-{u.id}", 10)
    ledger.mark_dead(failed, "bad", "permanent")
    ledger.record_flush([a.id, b.id, packed.id, market.id, failed.id], {})
    ledger.mark_empty(empty)  # no rows, yet covered: the API had nothing there
    assert ledger.coverage("daily") == {
        "A": [("20240101", "20240210"), ("20240301", "20240301")],  # adjacent months merged
        "B": [("20240105", "20240106"), ("20240301", "20240301")],
        "C": [("20240105", "20240106")],
    }  # the dead unit covered nothing
    assert ledger.coverage("income") == {"A": [("19900101", "20240101")]}
    ledger.close()


def test_a_dead_letter_planned_again_is_replaced_not_doubled(tmp_path) -> None:
    from neo_cli.ledger import Ledger
    from neo_cli.units import Unit

    ledger = Ledger(tmp_path / "ledger.db")
    old = Unit("daily", {"ts_code": "A", "start_date": "20150601", "end_date": "20150630"}, ("A",))
    other = Unit(
        "daily", {"ts_code": "B", "start_date": "20150601", "end_date": "20150630"}, ("B",)
    )
    with ledger.adding("b1", "daily", [old, other]):
        pass
    for u in (old, other):
        ledger.mark_dead(u, "HTTP 502 (after 6 attempts)", "transient")
    again = Unit(
        "daily", {"ts_code": "A", "start_date": "20150615", "end_date": "20261120"}, ("A",)
    )
    with ledger.adding("b2", "daily", [again]):
        pass
    assert [r.unit.id for r in ledger.dead()] == [other.id]  # A's is replaced, B's stays
    ledger.close()


def test_bar_coverage_bridges_weekends_only() -> None:
    fri, mon, tue = ("20240105", "20240105"), ("20240108", "20240108"), ("20240109", "20240109")
    assert merge([fri, mon, tue], trading=True) == [("20240105", "20240109")]
    assert merge([fri, mon]) == [fri, mon]  # statements: a weekend may hold an announcement
    # A holiday on a weekday is a gap: it may be a trading day for all merge knows.
    assert merge([("20240102", "20240102"), ("20240104", "20240104")], trading=True) == [
        ("20240102", "20240102"),
        ("20240104", "20240104"),
    ]
    assert merge([("20240106", "20240106"), mon], trading=True) == [("20240106", "20240108")]


@settings(max_examples=500, deadline=None)
@given(covered=ranges, spans=ranges, trading=st.booleans())
def test_adding_a_span_at_a_time_is_merging_them_all(covered, spans, trading) -> None:
    # Spans of one day matter most: whole-market calls cover a day each, weekends between.
    spans = spans + [(lo, lo) for lo, _ in spans]
    coverage = merge(covered, trading)
    for span in spans:
        coverage = add(coverage, span, trading)
    assert coverage == merge([*covered, *spans], trading)


def test_the_ledger_merges_days_saved_in_any_order_and_any_grouping(tmp_path) -> None:
    # Whole-market days arrive out of order, a few per flush: the ledger reads and writes only
    # the ranges next to them, and must end where merging everything at once ends.
    import random

    from neo_cli.ledger import Ledger
    from neo_cli.strategies import ALL
    from neo_cli.units import Unit

    rng = random.Random(5)
    days = [day(n) for n in range(120) if (D0 + timedelta(days=n)).weekday() < 5]
    picked = rng.sample(days, 70)
    ranged = [(day(n), day(n + rng.randrange(6))) for n in rng.sample(range(120), 10)]
    units = [Unit("adj_factor", {"trade_date": d}, (ALL,), "m") for d in picked]
    units += [
        Unit("adj_factor", {"ts_code": "A", "start_date": lo, "end_date": hi}, ("A",))
        for lo, hi in ranged
    ]
    rng.shuffle(units)
    ledger = Ledger(tmp_path / "ledger.db")
    with ledger.adding("m", "adj_factor", units, universe=["A", "B"]):
        pass
    for u in units:
        ledger.mark_saving(u, f"save-{u.id}", 1)
    while units:
        flush = units[: rng.randrange(1, 9)]
        units = units[len(flush) :]
        ledger.record_flush([u.id for u in flush], {})
    want_b = merge([(d, d) for d in picked], trading=True)
    assert ledger.coverage("adj_factor") == {
        "A": merge([*want_b, *ranged], trading=True),
        "B": want_b,
    }
    ledger.close()
