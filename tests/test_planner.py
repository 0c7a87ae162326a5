"""Planning units from the catalog: incremental ranges, splitting, skipping, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neo_cli.dates import CHINA, EARLIEST, fmt, parse
from neo_cli.errors import InputError
from neo_cli.ledger import Ledger
from neo_cli.planner import (
    STATEMENTS_SINCE,
    PlanOptions,
    Request,
    make_plan,
    parse_symbols,
    read_symbols_file,
)
from neo_cli.strategies import span_days, split
from neo_cli.tasktypes import DATASETS, STATEMENTS, task_type
from neo_cli.units import Unit

TODAY = date(2024, 6, 28)
PER_SYMBOL = PlanOptions(multi_symbol=False, whole_market=False, statements_vip="false")
A, B, C, D = "000001.SZ", "600000.SH", "830799.BJ", "000024.SZ"


NOON = datetime(2024, 6, 28, 12, tzinfo=CHINA).timestamp()  # TODAY, as the ledger's clock


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "ledger.db", clock=lambda: NOON)
    yield led
    led.close()


def saved_through(ledger: Ledger, marks: dict[str, dict[str, str]], since="19900101") -> None:
    """As if calls from `since` to each date had saved every row (rows up to that date):
    their coverage, and the catalog's last saved dates."""
    units = [
        Unit(api, {"ts_code": code, "start_date": since, "end_date": last}, (code,), "seed")
        for api, by_code in marks.items()
        for code, last in by_code.items()
    ]
    with ledger.adding("seed", "seed", units):
        pass
    for u in units:
        ledger.mark_saving(u, f"save-{u.id}", 1)
    ledger.record_flush([u.id for u in units], marks)


@pytest.fixture
def listed(ledger: Ledger) -> Ledger:
    """A catalog with listed, delisted and paused symbols."""
    ledger.record_flush(
        [],
        {},
        [
            (B, "浦发银行", "L", "19991110", None),
            (A, "平安银行", "L", "19910403", None),
            (C, "某公司", "L", "20230915", None),
            (D, "招商地产", "D", "19930607", "20151230"),
            ("600001.SH", "邯郸钢铁", "P", "19980122", None),
        ],
    )
    return ledger


def plan(ledger: Ledger, name: str, symbols=None, start=None, end=None, full=False, priority=0):
    request = Request(
        task_type(name), symbols, start and parse(start), end and parse(end), full, priority
    )
    # These tests are about ranges: one call per symbol (strategies are tested on their own).
    return make_plan(request, ledger, TODAY, "b1", options=PER_SYMBOL)


def spans(units: list[Unit]) -> list[tuple[str, str, str, str]]:
    return [
        (u.api, u.params["ts_code"], u.params["start_date"], u.params["end_date"]) for u in units
    ]


def covered(units: list[Unit]) -> list[tuple[str, str, str, str]]:
    """(api, code, first day, last day) per api and symbol, pieces joined."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for api, code, lo, hi in spans(units):
        first, _ = out.get((api, code), (lo, hi))
        out[(api, code)] = (first, hi)
    return [(api, code, lo, hi) for (api, code), (lo, hi) in out.items()]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, message
    return message


# --------------------------------------------------------------------------- ranges


def test_units_carry_the_api_parameters(listed: Ledger) -> None:
    p = plan(listed, "daily", [C], priority=7)
    [u] = p.units
    assert u.api == "daily"
    assert u.params == {"ts_code": C, "start_date": "20230915", "end_date": "20240628"}
    assert (u.codes, u.batch, u.priority) == ((C,), "b1", 7)
    assert (p.symbols, p.queued, p.current) == (1, 0, 0)


def test_a_symbol_not_in_the_catalog_starts_at_the_first_trading_day(ledger: Ledger) -> None:
    p = plan(ledger, "income", [A])
    assert spans(p.units) == [("income", A, STATEMENTS_SINCE, "20240628")]
    assert spans(plan(ledger, "adj_factor", [A]).units)[0][2] == fmt(EARLIEST)


def test_bars_start_at_listing_and_statements_before_it(listed: Ledger) -> None:
    assert spans(plan(listed, "daily", [C]).units) == [("daily", C, "20230915", "20240628")]
    # A prospectus publishes statements for periods before the listing.
    assert spans(plan(listed, "cashflow", [C]).units) == [
        ("cashflow", C, STATEMENTS_SINCE, "20240628")
    ]


def test_daily_resumes_the_day_after_the_last_saved_date(listed: Ledger) -> None:
    saved_through(listed, {"daily": {A: "20240620"}, "adj_factor": {A: "20240531"}})
    assert spans(plan(listed, "daily", [A]).units) == [("daily", A, "20240621", "20240628")]
    assert spans(plan(listed, "daily_qfq", [A]).units) == [
        ("daily", A, "20240621", "20240628"),
        ("adj_factor", A, "20240601", "20240628"),
    ]


@pytest.mark.parametrize("api", STATEMENTS)
def test_statements_resume_after_the_last_day_covered(listed: Ledger, api: str) -> None:
    saved_through(listed, {api: {A: "20240430"}})
    assert spans(plan(listed, api, [A]).units) == [(api, A, "20240501", "20240628")]


def test_statements_announced_today_are_asked_for_again(listed: Ledger) -> None:
    saved_through(listed, {"income": {A: "20240628"}})
    assert spans(plan(listed, "income", [A]).units) == [("income", A, "20240628", "20240628")]


def test_up_to_date_symbols_are_counted_not_planned(listed: Ledger) -> None:
    saved_through(listed, {"daily": {A: "20240628", B: "20240627"}})
    p = plan(listed, "daily", [A, B])
    assert spans(p.units) == [("daily", B, "20240628", "20240628")]
    assert (p.current, p.queued, p.symbols) == (1, 0, 2)


def test_full_ignores_watermarks(listed: Ledger) -> None:
    saved_through(listed, {"daily": {A: "20240628"}, "income": {A: "20240430"}})
    assert spans(plan(listed, "daily", [A], full=True).units)[0][2] == "19910403"
    assert spans(plan(listed, "income", [A], full=True).units) == [
        ("income", A, STATEMENTS_SINCE, "20240628")
    ]


def test_explicit_start_and_end(listed: Ledger) -> None:
    p = plan(listed, "daily", [A, B], start="20240101", end="20240131")
    assert spans(p.units) == [
        ("daily", A, "20240101", "20240131"),
        ("daily", B, "20240101", "20240131"),
    ]


def test_explicit_start_still_skips_what_is_saved(listed: Ledger) -> None:
    saved_through(listed, {"daily": {A: "20240110"}})
    p = plan(listed, "daily", [A], start="20240101", end="20240131")
    assert spans(p.units) == [("daily", A, "20240111", "20240131")]
    p = plan(listed, "daily", [A], start="20240101", end="20240105")
    assert (p.units, p.current) == ([], 1)
    p = plan(listed, "daily", [A], start="20240101", end="20240105", full=True)
    assert spans(p.units) == [("daily", A, "20240101", "20240105")]


def test_end_before_start_is_refused(listed: Ledger) -> None:
    with pytest.raises(InputError) as info:
        plan(listed, "daily", [A], start="20240201", end="20240131")
    assert one_line(info) == "--end-date 20240131 is before --start-date 20240201"


def test_a_delisted_symbol_ends_at_its_delisting(listed: Ledger) -> None:
    pieces = [(lo, hi) for _, _, lo, hi in spans(plan(listed, "daily", [D]).units)]
    check_tiling(pieces, "19930607", "20151230", span_days("daily"))
    assert spans(plan(listed, "income", [D]).units) == [("income", D, STATEMENTS_SINCE, "20151230")]
    assert spans(plan(listed, "daily", [D], start="20100101").units) == [
        ("daily", D, "20100101", "20151230")
    ]
    saved_through(listed, {"daily": {D: "20151230"}})
    p = plan(listed, "daily", [D])
    assert (p.units, p.current) == ([], 1)


def test_a_range_before_listing_or_after_delisting_is_current(listed: Ledger) -> None:
    p = plan(listed, "daily", [D], start="20200101", end="20200131")
    assert (p.units, p.current) == ([], 1)


def test_a_range_without_trading_days_is_current_when_the_calendar_is_known(listed: Ledger) -> None:
    saved_through(
        listed, {"daily": {A: "20240628"}, "income": {A: "20240628"}, "adj_factor": {B: "20240621"}}
    )
    days = ["20240620", "20240621", "20240624"]
    asked = []

    def trading_days(start: str, end: str) -> list[str] | None:
        asked.append((start, end))
        return [d for d in days if start <= d <= end]

    request = Request(task_type("daily_qfq"), [A, B], end=date(2024, 6, 23))
    p = make_plan(request, listed, TODAY, "b1", trading_days, PER_SYMBOL)
    # daily A: saved to the 28th, nothing to ask; daily B: 1999..0623 has trading days;
    # adj_factor A: 1991..0623 has; adj_factor B: 0622..0623 is a weekend.
    assert covered(p.units) == [
        ("daily", B, "19991110", "20240623"),
        ("adj_factor", A, "19910403", "20240623"),
    ]
    assert p.current == 2
    assert len(asked) == 1  # the calendar is read once per plan, not once per symbol
    # Statements are not sized by the trading calendar: announcements come any day.
    q = make_plan(Request(task_type("income"), [A]), listed, TODAY, "b1", lambda s, e: [])
    assert spans(q.units) == [("income", A, "20240628", "20240628")]
    # A calendar that does not know the range (None) plans it anyway.
    r = make_plan(
        Request(task_type("daily"), [B], start=date(2024, 6, 22), end=date(2024, 6, 23)),
        listed,
        TODAY,
        "b1",
        lambda s, e: None,
    )
    assert spans(r.units) == [("daily", B, "20240622", "20240623")]


# --------------------------------------------------------------------------- splitting


def test_span_days() -> None:
    assert span_days("daily") == int(6000 * 0.9 / 0.70) == 7714
    assert span_days("adj_factor") == 7714
    for api in STATEMENTS:
        assert span_days(api) >= 365 * 100


def check_tiling(pieces: list[tuple[str, str]], start: str, end: str, days: int) -> None:
    assert pieces[0][0] == start and pieces[-1][1] == end
    for lo, hi in pieces:
        assert parse(lo) <= parse(hi)
        assert (parse(hi) - parse(lo)).days + 1 <= days
    for (_, hi), (lo, _) in zip(pieces, pieces[1:], strict=False):
        assert parse(lo) == parse(hi) + timedelta(days=1)  # no gap, no overlap


def test_a_long_history_is_split_under_the_row_cap(ledger: Ledger) -> None:
    p = plan(ledger, "daily", [A])  # 1990-12-19 .. 2024-06-28: 12,246 days
    pieces = [(u.params["start_date"], u.params["end_date"]) for u in p.units]
    cut = EARLIEST + timedelta(days=span_days("daily") - 1)
    assert pieces == [("19901219", fmt(cut)), (fmt(cut + timedelta(days=1)), "20240628")]
    check_tiling(pieces, "19901219", "20240628", span_days("daily"))
    for lo, hi in pieces:  # each piece's trading days stay under the cap at the assumed density
        assert ((parse(hi) - parse(lo)).days + 1) * 0.70 <= DATASETS["daily"].row_cap


@settings(max_examples=300, deadline=None, database=None)
@given(
    start=st.dates(date(1990, 1, 1), date(2030, 12, 31)),
    days=st.integers(1, 10_000),
    data=st.data(),
)
def test_split_tiles_the_range_exactly(start: date, days: int, data) -> None:
    length = data.draw(st.integers(0, min(30_000, days * 60)), label="length")
    end = start + timedelta(days=length)
    pieces = list(split(fmt(start), fmt(end), days))
    check_tiling(pieces, fmt(start), fmt(end), days)
    assert len(pieces) == -(-(length + 1) // days)  # ceil: only the last piece is short


def test_split_of_an_empty_range() -> None:
    assert list(split("20240102", "20240101", 10)) == []


# --------------------------------------------------------------------------- the universe


def test_default_universe_is_every_listing_status(listed: Ledger) -> None:
    p = plan(listed, "daily", start="20240101", end="20240131")
    # By code; the paused symbol too. D was delisted in 2015: January 2024 is not its span.
    assert [u.params["ts_code"] for u in p.units] == [A, B, "600001.SH", C]
    assert (p.symbols, p.current) == (5, 1)
    history = plan(listed, "daily", end="20240131")
    assert ("daily", D, "19930607", "20151230") in covered(history.units)


def test_listed_only_keeps_to_todays_listed_symbols(listed: Ledger) -> None:
    request = Request(task_type("daily"), end=parse("20240131"), listed_only=True)
    p = make_plan(request, listed, TODAY, "b1", options=PER_SYMBOL)
    assert sorted({u.params["ts_code"] for u in p.units}) == [A, B, C]
    assert p.symbols == 3


def test_an_empty_catalog_says_how_to_fill_it(ledger: Ledger) -> None:
    with pytest.raises(InputError) as info:
        plan(ledger, "daily")
    message = one_line(info)
    assert "stock_basic table is empty" in message
    assert "`neo enqueue --task-type stock_basic`" in message
    assert "--symbols" in message


def test_already_queued_symbols_are_counted(listed: Ledger) -> None:
    queued = Unit("daily", {"ts_code": A}, (A,), "b0")
    retrying = Unit("daily", {"ts_code": B}, (B,), "b0")
    done = Unit("daily", {"ts_code": C}, (C,), "b0")
    with listed.adding("b0", "daily", [queued, retrying, done]):
        pass
    listed.attempt_failed(retrying, "timeout", "TransientError")
    listed.mark_empty(done)
    p = plan(listed, "daily_qfq", start="20240101", end="20240131")
    assert spans(p.units) == [
        ("daily", "600001.SH", "20240101", "20240131"),
        ("daily", C, "20240101", "20240131"),
        ("adj_factor", A, "20240101", "20240131"),
        ("adj_factor", B, "20240101", "20240131"),
        ("adj_factor", "600001.SH", "20240101", "20240131"),
        ("adj_factor", C, "20240101", "20240131"),
    ]
    assert (p.queued, p.current) == (2, 2)  # D: delisted before January, both interfaces


def test_stock_basic_plans_one_unit_per_list_status(ledger: Ledger) -> None:
    p = plan(ledger, "stock_basic", priority=2)
    assert [(u.api, u.params, u.codes, u.priority) for u in p.units] == [
        ("stock_basic", {"list_status": s}, (), 2) for s in ("L", "D", "P")
    ]
    assert len({u.id for u in p.units}) == 3
    assert (p.queued, p.current) == (0, 0)


def test_stock_basic_already_on_its_way_counts_once(ledger: Ledger) -> None:
    p = plan(ledger, "stock_basic")
    with ledger.adding("b0", "stock_basic", p.units):
        pass
    again = plan(ledger, "stock_basic")
    assert (again.units, again.queued) == ([], 1)
    for u in p.units:
        ledger.mark_empty(u)
    assert len(plan(ledger, "stock_basic").units) == 3


# --------------------------------------------------------------------------- symbols


def test_parse_symbols_normalises_and_dedupes() -> None:
    assert parse_symbols(" 000001.sz,600000.SH,,000001.SZ , 830799.bj") == [A, B, C]


@pytest.mark.parametrize("text", ["", " , ,"])
def test_parse_symbols_needs_one(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_symbols(text)
    assert one_line(info) == (
        f"--symbols {text!r} names no symbol; expected e.g. 000001.SZ,600000.SH"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "000001",
        "00001.SZ",
        "0000001.SZ",
        "000001.SS",
        "abcdef.SZ",
        "000001.SZ.SH",
        "000001-SZ",
        "000001.SZ\n600000.SH",
    ],
)
def test_parse_symbols_names_the_malformed_one(bad: str) -> None:
    with pytest.raises(InputError) as info:
        parse_symbols(f"{A},{bad}")
    message = one_line(info)
    assert message == (
        f"malformed symbol {bad.strip()!r} in --symbols; expected six digits and "
        ".SH, .SZ or .BJ, e.g. 000001.SZ"
    )


def test_symbols_file(tmp_path: Path) -> None:
    path = tmp_path / "codes.txt"
    path.write_text(
        "# my watchlist\n\n000001.sz\r\n600000.SH  # a bank\n   \n000001.SZ\n830799.BJ",
        encoding="utf-8",
    )
    assert read_symbols_file(path) == [A, B, C]


def test_symbols_file_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "codes.txt"
    path.write_text("# header\n000001.SZ\n\n60000.SH\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_symbols_file(path)
    assert one_line(info) == (
        f"malformed symbol '60000.SH' in {path} line 4; expected six "
        "digits and .SH, .SZ or .BJ, e.g. 000001.SZ"
    )


@pytest.mark.parametrize("content", ["", "\n\n", "# nothing\n  # here\n"])
def test_symbols_file_without_symbols(tmp_path: Path, content: str) -> None:
    path = tmp_path / "codes.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_symbols_file(path)
    assert one_line(info) == (f"symbols file {path} lists no symbols (one code a line, # comments)")


def test_symbols_file_missing_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_symbols_file(tmp_path / "nope.txt")
    assert one_line(info) == f"symbols file {tmp_path / 'nope.txt'} does not exist"
    with pytest.raises(InputError) as info:
        read_symbols_file(tmp_path)
    assert one_line(info) == f"symbols file {tmp_path} is a directory, not a file"


def test_symbols_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "codes.txt"
    path.write_bytes("000001.SZ\n平安银行\n".encode("gbk"))
    with pytest.raises(InputError) as info:
        read_symbols_file(path)
    assert one_line(info) == f"symbols file {path} is not UTF-8 text"


def test_symbols_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "codes.txt"
    path.write_text("000001.SZ\n600000.SH\n", encoding="utf-8-sig")
    assert read_symbols_file(path) == [A, B]


def test_delisted_symbols_owe_their_whole_span_and_nothing_after(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.db", clock=lambda: NOON)
    try:
        saved_through(ledger, {"daily": {"000010.SZ": "20240301", "000011.SZ": "20240620"}})
        ledger.record_flush(
            [],
            {},
            [
                ("000010.SZ", "x", "D", "19950101", "20240315"),
                ("000011.SZ", "y", "D", "19950101", "20240620"),
                ("000012.SZ", "z", "D", "19950101", "20200101"),
                ("000001.SZ", "a", "L", "19950101", None),
            ],
        )

        def delisted(**options) -> list[tuple[str, str, str]]:
            request = Request(task_type("daily"), **options)
            p = make_plan(request, ledger, TODAY, "b1", options=PER_SYMBOL)
            return sorted(
                (u.codes[0], u.params["start_date"], u.params["end_date"])
                for u in p.units
                if u.codes[0] != "000001.SZ"
            )

        # 000010: saved to 0301, delisted 0315; 000011 complete (no call, run after run);
        # 000012 never saved: its whole span, listing to delisting.
        assert delisted()[0] == ("000010.SZ", "20240302", "20240315")
        assert delisted()[1][0] == "000012.SZ" and delisted()[-1][2] == "20200101"
        assert "000011.SZ" not in {code for code, _, _ in delisted()}
        assert delisted(listed_only=True) == []
    finally:
        ledger.close()
