"""The call-saving strategies: each covers every requested row, stays under the row cap, and the
planner picks the one needing the fewest calls."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from neo_cli.dates import fmt, parse, plus
from neo_cli.ledger import Ledger
from neo_cli.planner import PlanOptions, Request, make_plan
from neo_cli.strategies import (
    ALL,
    TradingCalendar,
    multi_symbol,
    per_symbol,
    whole_market,
)
from neo_cli.tasktypes import DATASETS, task_type
from neo_cli.units import Unit

END = "20261120"


def weekdays(start: str, end: str) -> list[str]:
    d, hi, out = parse(start), parse(end), []
    while d <= hi:
        if d.weekday() < 5:
            out.append(fmt(d))
        d += timedelta(days=1)
    return out


CAL = TradingCalendar(weekdays("19901219", END))
CODES = [f"{n:06d}.SZ" for n in range(1, 301)]


def covered_days(units, code: str) -> set[str]:
    days: set[str] = set()
    for u in units:
        if u.codes == (ALL,):
            days.add(u.params["trade_date"])
        elif code in u.codes:
            days.update(CAL.between(u.params["start_date"], u.params["end_date"]))
    return days


def check_covers(units, ranges) -> None:
    for code, (s, e) in ranges.items():
        assert set(CAL.between(s, e)) <= covered_days(units, code), code


def check_under_cap(units) -> None:
    for u in units:
        if u.codes == (ALL,):
            continue
        rows = CAL.count(u.params["start_date"], u.params["end_date"]) * len(u.codes)
        assert rows <= DATASETS[u.api].row_cap, u.describe()


def test_full_history_packs_codes_by_year_and_needs_fewer_calls():
    ranges = {
        c: (fmt(date(1991 + i % 30, 1 + i % 12, 1 + i % 27)), END) for i, c in enumerate(CODES)
    }
    alone = per_symbol("daily", ranges, "b", 0)
    packed = multi_symbol("daily", ranges, CAL, 100, "b", 0)
    check_covers(alone.units, ranges)
    check_covers(packed.units, ranges)
    check_under_cap(packed.units)
    assert packed.calls < 0.75 * alone.calls, (packed.calls, alone.calls)
    assert "by year" in packed.note


def test_a_daily_update_of_the_whole_market_is_one_call_a_day():
    ranges = {c: ("20261119", END) for c in CODES}
    ranges["000007.SZ"] = ("20261001", END)  # a straggler, suspended for a while
    found = whole_market("daily", ranges, CAL, "b", 0)
    assert found is not None
    market_days = [u for u in found.units if u.codes == (ALL,)]
    assert [u.params["trade_date"] for u in market_days] == ["20261119", "20261120"]
    gaps = [u for u in found.units if u.codes != (ALL,)]
    assert [(u.codes, u.params["start_date"], u.params["end_date"]) for u in gaps] == [
        (("000007.SZ",), "20261001", "20261118")
    ]
    check_covers(found.units, ranges)
    assert found.calls == 3


def test_whole_market_prices_the_full_range_when_nothing_better():
    ranges = {"000001.SZ": ("19910101", END)}
    found = whole_market("daily", ranges, CAL, "b", 0)
    assert found.calls == CAL.count("19910101", END)


def test_without_a_calendar_there_is_no_whole_market():
    assert (
        whole_market("daily", {"000001.SZ": ("20261119", END)}, TradingCalendar(None), "b", 0)
        is None
    )


@pytest.fixture
def ledger(tmp_path):
    """300 listed symbols whose bars and factors were saved from their listing to 20261118."""
    led = Ledger(tmp_path / "ledger.db")
    marks = {"daily": {c: "20261118" for c in CODES}, "adj_factor": {c: "20261118" for c in CODES}}
    seed = [
        Unit(api, {"ts_code": c, "start_date": "19910101", "end_date": "20261118"}, (c,), "seed")
        for api in marks
        for c in CODES
    ]
    with led.adding("seed", "seed", seed):
        pass
    for u in seed:
        led.mark_saving(u, f"s-{u.id}", 1)
    led.record_flush([u.id for u in seed], marks, [(c, "x", "L", "19910101", None) for c in CODES])
    yield led
    led.close()


def test_an_old_hole_of_the_whole_market_costs_one_call(ledger):
    """Calls covering one old day failed for every symbol: the next plan asks that day once,
    for the whole market, beside the usual update."""
    holed = [
        u
        for api in ("daily", "adj_factor")
        for c in CODES
        for u in [
            Unit(api, {"ts_code": c, "start_date": "19910101", "end_date": "20150612"}, (c,), "h"),
            Unit(api, {"ts_code": c, "start_date": "20150616", "end_date": "20261118"}, (c,), "h"),
        ]
    ]
    fresh = Ledger(ledger.path.with_name("holed.db"))
    with fresh.adding("h", "h", holed):
        pass
    for u in holed:
        fresh.mark_saving(u, f"s-{u.id}", 1)
    fresh.record_flush([u.id for u in holed], {}, [(c, "x", "L", "19910101", None) for c in CODES])
    plan = make_plan(Request(task_type("daily_qfq")), fresh, parse(END), "b", CAL.between)
    days = sorted(u.params["trade_date"] for u in plan.units if u.api == "daily")
    assert days == ["20150615", "20261119", "20261120"]  # the hole (a Monday) and the update
    assert len(plan.units) == 6 and set(plan.universe) == set(CODES)
    per_code = make_plan(
        Request(task_type("daily"), CODES[:3]), fresh, parse(END), "b", CAL.between
    )
    assert sorted((u.params["start_date"], u.params["end_date"]) for u in per_code.units) == [
        ("20150613", "20150615"),  # the three symbols' hole (a weekend and a Monday), one call
        ("20261119", "20261120"),
    ]
    fresh.close()


def test_planner_takes_the_cheapest_and_respects_the_options(ledger):
    today = parse(END)
    req = Request(task_type("daily_qfq"))
    plan = make_plan(req, ledger, today, "b", lambda s, e: CAL.between(s, e))
    assert [p.name for p in plan.choices["daily"]][0] == "whole-market"
    assert plan.choices["daily"][0].calls == 2
    assert plan.choices["adj_factor"][0].name == "whole-market"
    assert len(plan.units) == 4

    # A subset of symbols never uses whole-market calls (they would save other symbols' rows).
    subset = make_plan(
        Request(task_type("daily"), CODES[:10]), ledger, today, "b", lambda s, e: CAL.between(s, e)
    )
    assert {p.name for p in subset.choices["daily"]} == {"per-symbol", "multi-symbol"}
    assert subset.choices["daily"][0].calls == 1

    off = make_plan(
        req,
        ledger,
        today,
        "b",
        lambda s, e: CAL.between(s, e),
        PlanOptions(multi_symbol=False, whole_market=False),
    )
    assert {p.name for p in off.choices["daily"]} == {"per-symbol"}
    assert len(off.units) == 2 * len(CODES)


def test_a_live_whole_market_unit_counts_every_symbol_as_queued(ledger):
    today = parse(END)
    plan = make_plan(
        Request(task_type("daily")), ledger, today, "b", lambda s, e: CAL.between(s, e)
    )
    with ledger.adding("b", "daily", plan.units):
        pass
    again = make_plan(
        Request(task_type("daily")), ledger, today, "b2", lambda s, e: CAL.between(s, e)
    )
    assert again.units == [] and again.queued == len(CODES)


def test_dates_helpers():
    assert plus("20240301", -1) == "20240229"


# ------------------------------------------------------------------ whole-market statements


def statements_ledger(tmp_path, covered_through: str | None) -> Ledger:
    """300 symbols listed 1991..2020; their income statements covered through a day, or not."""
    led = Ledger(tmp_path / "statements.db")
    listed = [(c, "x", "L", f"{1991 + i % 30}0101", None) for i, c in enumerate(CODES)]
    led.record_flush([], {}, listed)
    if covered_through:
        seed = [
            Unit(
                "income",
                {"ts_code": c, "start_date": "19900101", "end_date": covered_through},
                (c,),
                "seed",
            )
            for c in CODES
        ]
        with led.adding("seed", "seed", seed):
            pass
        for u in seed:
            led.mark_saving(u, f"s-{u.id}", 1)
        led.record_flush([u.id for u in seed], {})
    return led


def test_a_one_day_statement_update_of_the_whole_market_is_one_call(tmp_path):
    led = statements_ledger(tmp_path, "20261119")
    try:
        plan = make_plan(Request(task_type("income")), led, parse(END), "b", CAL.between)
        chosen = plan.choices["income"][0]
        assert chosen.name == "whole-market" and chosen.calls == 1
        [unit] = plan.units
        assert unit.api == "income_vip" and unit.codes == (ALL,)
        assert unit.params == {"start_date": "20261120", "end_date": END}
        assert set(plan.universe) == set(CODES)
        per_symbol_calls = next(s.calls for s in plan.choices["income"] if s.name == "per-symbol")
        assert per_symbol_calls == len(CODES)
    finally:
        led.close()


def test_a_full_statement_history_is_sized_by_rows_not_symbols(tmp_path):
    led = statements_ledger(tmp_path, None)
    try:
        plan = make_plan(Request(task_type("income")), led, parse(END), "b", CAL.between)
        chosen = plan.choices["income"][0]
        assert chosen.name == "whole-market"
        # Windows tile 1990..END without gaps or overlaps.
        spans = sorted((u.params["start_date"], u.params["end_date"]) for u in plan.units)
        assert spans[0][0] == "19900101" and spans[-1][1] == END
        assert all(plus(a[1], 1) == b[0] for a, b in zip(spans, spans[1:], strict=False))
        # The estimate: symbol-years x rows a year / the cap, within a call a window.
        symbol_years = sum(2026.9 - (1991 + i % 30) for i in range(len(CODES)))
        minimum = symbol_years * 4.5 / 5000
        assert minimum <= chosen.calls <= minimum + len(plan.units)
    finally:
        led.close()


def test_whole_market_statements_only_when_allowed(tmp_path):
    led = statements_ledger(tmp_path, "20261119")
    try:

        def names(request, **options):
            p = make_plan(request, led, parse(END), "b", CAL.between, PlanOptions(**options))
            return {s.name for s in p.choices["income"]}

        whole = Request(task_type("income"))
        assert "whole-market" in names(whole)
        assert "whole-market" in names(whole, statements_vip="true")
        assert names(whole, statements_vip="false") == {"per-symbol"}
        assert names(Request(task_type("income"), CODES[:5])) == {"per-symbol"}  # a subset
        assert led.refuse_vip("income", "没有访问该接口的权限") is True
        assert led.refuse_vip("income", "again") is False  # kept once, the first reason
        assert led.vip_refused("income") == "没有访问该接口的权限"
        assert names(whole) == {"per-symbol"}  # auto: refused once, per symbol for good
        assert "whole-market" in names(whole, statements_vip="true")
    finally:
        led.close()


def test_row_caps_size_the_calls():
    ranges = {c: ("19910101", END) for c in CODES[:3]}
    default = per_symbol("daily", ranges, "b", 0)
    smaller = per_symbol("daily", ranges, "b", 0, cap=2000)
    assert smaller.calls >= 3 * default.calls - 3
    for u in smaller.units:
        assert CAL.count(u.params["start_date"], u.params["end_date"]) <= 2000


def test_with_a_calendar_calls_hold_up_to_a_row_under_the_cap():
    from neo_cli.strategies import cut

    pieces = cut("daily", "19910101", END, CAL, 6000)
    days = [CAL.count(lo, hi) for lo, hi in pieces]
    assert days[:-1] == [5999] * (len(days) - 1) and 0 < days[-1] <= 5999  # never at the cap
    assert pieces[0][0] == "19910101" and pieces[-1][1] == END
    assert all(plus(a[1], 1) == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    # 22 years of weekdays fit one call by the calendar; the estimate needs two.
    assert len(cut("daily", "20040101", END, CAL, 6000)) == 1
    assert len(cut("daily", "20040101", END, TradingCalendar(None), 6000)) == 2
    assert cut("income", "19900101", END, CAL, 5000) == [("19900101", END)]


def test_codes_listed_late_in_a_year_leave_room_for_more_in_the_call():
    ranges = {c: ("20260101", END) for c in CODES}
    blind = multi_symbol("daily", ranges, CAL, 100, "b", 0, 6000)
    late = {c: ("20261101", "") for c in CODES}  # listed in November: 15 bars each at most
    spans = multi_symbol("daily", ranges, CAL, 100, "b", 0, 6000, late)
    assert blind.calls == 12  # 233 weekdays a code: 25 codes a call
    assert spans.calls == 3  # 100 codes a call: max_codes, not rows, is the limit now
    check_covers(spans.units, {c: ("20261101", END) for c in CODES})
    for u in spans.units:  # what the server can return stays under the cap
        assert CAL.count("20261101", END) * len(u.codes) < 6000
