"""The synthetic market: deterministic, realistic enough, and answering as the API does."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from neo_cli.errors import PermanentError
from neo_cli.providers.market import Market, holidays
from neo_cli.tasktypes import DAILY, DATASETS, STATEMENTS, STOCK_BASIC, dataset

SEED = 20240101
END = date(2024, 6, 28)
LATE = date(2026, 11, 20)  # after every fixed delisting and pause date


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(SEED, 40, END)


@pytest.fixture(scope="module")
def late_market() -> Market:
    return Market(SEED, 300, LATE)


@pytest.fixture(scope="module")
def history(market: Market) -> dict[str, tuple[list[dict], list[dict]]]:
    """Every stock's daily bars and factors, oldest first."""
    return {
        code: (
            market.rows("daily", {"ts_code": code})[::-1],
            market.rows("adj_factor", {"ts_code": code})[::-1],
        )
        for code in market.ts_codes()
    }


def ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def parse(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


# ---------------------------------------------------------------------------- calendar


def test_calendar_is_weekdays_without_holidays(market: Market) -> None:
    days = market.trade_dates()
    assert days[0] == "19901219"
    assert days[-1] == ymd(END)  # a Friday
    closed = {ymd(h) for year in range(1990, 2025) for h in holidays(year)}
    assert all(parse(d).weekday() < 5 and d not in closed for d in days)
    assert days == sorted(set(days))
    per_year = Counter(d[:4] for d in days)
    assert all(230 <= per_year[str(year)] <= 252 for year in range(1991, 2024))


def test_trade_dates_are_inclusive_and_stop_at_end_date(market: Market) -> None:
    assert market.trade_dates("20240102", "20240105") == [
        "20240102",
        "20240103",
        "20240104",
        "20240105",
    ]
    assert market.trade_dates(date(2024, 6, 24), "20301231")[-1] == ymd(END)
    assert "20241001" not in Market(SEED, 1, date(2024, 12, 31)).trade_dates("20240930")


# ---------------------------------------------------------------------------- stocks


def test_stock_basic_rows_look_real(late_market: Market) -> None:
    rows = [late_market.stock(code) for code in late_market.ts_codes()]
    assert len(rows) == 300
    pattern = {
        "SSE": r"(60[0-5]\d{3}|68[89]\d{3})\.SH",
        "SZSE": r"(00[0-3]\d{3}|30[01]\d{3})\.SZ",
        "BSE": r"(8[37]\d{4}|43\d{4})\.BJ",
    }
    for row in rows:
        assert tuple(row) == STOCK_BASIC.fields
        assert re.fullmatch(pattern[row["exchange"]], row["ts_code"]), row
        assert row["symbol"] == row["ts_code"][:6]
        assert "19901219" <= row["list_date"] <= ymd(LATE - timedelta(days=700))
        assert row["is_hs"] in {"SSE": "HN", "SZSE": "SN", "BSE": "N"}[row["exchange"]]
        assert row["market"] in ("主板", "创业板", "科创板", "北交所")
        assert all(isinstance(row[f], str) for f in STOCK_BASIC.fields if f != "delist_date")
    assert {r["market"] for r in rows} == {"主板", "创业板", "科创板", "北交所"}
    assert len({r["name"] for r in rows}) == 300


def test_statuses_listed_delisted_and_paused(late_market: Market) -> None:
    statuses = Counter(late_market.stock(c)["list_status"] for c in late_market.ts_codes())
    assert statuses["L"] > 250 and 5 <= statuses["D"] <= 30 and 2 <= statuses["P"] <= 20
    for status in "LDP":
        rows = late_market.rows("stock_basic", {"list_status": status})
        assert len(rows) == statuses[status]
        for row in rows:
            assert row["list_status"] == status
            if status == "D":
                assert row["list_date"] < row["delist_date"] <= ymd(LATE)
            else:
                assert row["delist_date"] is None
    assert len(late_market.rows("stock_basic", {})) == statuses["L"]  # L is the default


def test_same_seed_same_market_and_another_seed_another() -> None:
    a, b, c = Market(7, 12, END), Market(7, 12, END), Market(8, 12, END)
    for api in ("daily", "adj_factor"):
        assert a.rows(api, {"trade_date": "20240103"}) == b.rows(api, {"trade_date": "20240103"})
    code = a.ts_codes()[0]
    assert a.rows("income", {"ts_code": code}) == b.rows("income", {"ts_code": code})
    assert a.ts_codes() != c.ts_codes()


def test_a_later_end_date_only_adds_data() -> None:
    early, late = Market(SEED, 25, date(2023, 12, 29)), Market(SEED, 25, LATE)
    cut = "20231229"
    assert set(early.ts_codes()) <= set(late.ts_codes())
    static = [f for f in STOCK_BASIC.fields if f not in ("list_status", "delist_date")]
    for code in early.ts_codes():
        assert [early.stock(code)[f] for f in static] == [late.stock(code)[f] for f in static]
        for api in ("daily", "adj_factor", *STATEMENTS):
            old = early.rows(api, {"ts_code": code})
            new = late.rows(api, {"ts_code": code, "end_date": cut})
            assert old == new, (api, code)


def test_the_first_stocks_do_not_depend_on_how_many() -> None:
    few, many = Market(SEED, 15, END), Market(SEED, 60, END)
    assert set(few.ts_codes()) < set(many.ts_codes())
    for code in few.ts_codes():
        assert few.stock(code) == many.stock(code)
        assert few.rows("adj_factor", {"ts_code": code}) == many.rows(
            "adj_factor", {"ts_code": code}
        )


# ---------------------------------------------------------------------------- bars and factors


def test_bars_are_sane(history: dict) -> None:
    bars = [bar for daily, _ in history.values() for bar in daily]
    assert len(bars) > 50_000
    for bar in bars:
        assert 0 < bar["low"] <= min(bar["open"], bar["close"])
        assert max(bar["open"], bar["close"]) <= bar["high"]
        assert bar["vol"] > 0 and bar["amount"] > 0
        assert bar["change"] == round(bar["close"] - bar["pre_close"], 2)
        pct_chg = bar["change"] / bar["pre_close"] * 100
        assert bar["pct_chg"] == pytest.approx(pct_chg, abs=0.5001e-4)  # rounded to 4 places
        for field in ("open", "high", "low", "close", "pre_close"):
            assert bar[field] == round(bar[field], 2)
    assert max(abs(b["pct_chg"]) for b in bars) < 60


def test_pre_close_is_the_previous_close_except_on_ex_dates(history: dict) -> None:
    ex_dates = 0
    for daily, adj in history.values():
        factor = {row["trade_date"]: row["adj_factor"] for row in adj}
        for before, bar in zip(daily, daily[1:], strict=False):
            old, new = factor[before["trade_date"]], factor[bar["trade_date"]]
            if old == new:
                assert bar["pre_close"] == before["close"]
            else:
                ex_dates += 1
                assert bar["pre_close"] == pytest.approx(before["close"] * old / new, abs=0.0051)
    assert ex_dates > 100


def test_factors_cover_every_trading_day_including_suspensions(market: Market, history) -> None:
    suspended = total = 0
    for code, (daily, adj) in history.items():
        row = market.stock(code)
        last = market.trade_dates(None, row["delist_date"] or END)[-1]
        if row["delist_date"] == last:
            last = market.trade_dates(None, last)[-2]  # no row on the delisting day
        assert [r["trade_date"] for r in adj] == market.trade_dates(row["list_date"], last)
        bar_days = {r["trade_date"] for r in daily}
        assert bar_days <= {r["trade_date"] for r in adj}
        assert daily[0]["trade_date"] == row["list_date"]
        suspended += len(adj) - len(daily)
        total += len(adj)
    assert 0.005 < suspended / total < 0.06


def test_factors_step_up_at_dividends_and_splits(market: Market, history: dict) -> None:
    long_listed = [c for c in history if market.stock(c)["list_date"] < "20180101"]
    assert len(long_listed) > 10
    ratios = []
    for code in long_listed:
        factors = [r["adj_factor"] for r in history[code][1]]
        assert factors[0] == 1.0
        assert all(f == round(f, 3) for f in factors)
        steps = [b / a for a, b in zip(factors, factors[1:], strict=False) if b != a]
        assert steps, code
        ratios += steps
    assert all(1.008 < r < 2.2 for r in ratios)
    assert any(r > 1.45 for r in ratios), "no bonus-share split anywhere"


def test_forward_adjusted_prices_are_continuous_across_ex_dates(history: dict) -> None:
    checked = 0
    for daily, adj in history.values():
        factor = {row["trade_date"]: row["adj_factor"] for row in adj}
        latest = adj[-1]["adj_factor"]
        for before, bar in zip(daily, daily[1:], strict=False):
            old, new = factor[before["trade_date"]], factor[bar["trade_date"]]
            if old != new:
                qfq_close = before["close"] * old / latest
                qfq_pre_close = bar["pre_close"] * new / latest
                assert qfq_pre_close == pytest.approx(qfq_close, abs=0.005 * new / latest + 1e-9)
                checked += 1
    assert checked > 100


def test_delisted_stocks_end_before_their_delisting(late_market: Market) -> None:
    delisted = late_market.rows("stock_basic", {"list_status": "D"})
    for row in delisted[:6]:
        code, gone = row["ts_code"], row["delist_date"]
        daily = late_market.rows("daily", {"ts_code": code})
        adj = late_market.rows("adj_factor", {"ts_code": code})
        assert daily and adj
        assert daily[0]["trade_date"] < gone and adj[0]["trade_date"] < gone
        assert adj[0]["trade_date"] == late_market.trade_dates(None, gone)[-2]
        for api in STATEMENTS:
            assert all(r["ann_date"] < gone for r in late_market.rows(api, {"ts_code": code}))


def test_paused_stocks_have_factors_but_no_recent_bars(late_market: Market) -> None:
    for row in late_market.rows("stock_basic", {"list_status": "P"}):
        code = row["ts_code"]
        daily = late_market.rows("daily", {"ts_code": code})
        adj = late_market.rows("adj_factor", {"ts_code": code})
        assert adj[0]["trade_date"] == ymd(LATE)
        assert daily[0]["trade_date"] < ymd(LATE - timedelta(days=90))


# ---------------------------------------------------------------------------- statements


DEADLINES = {"0331": "0430", "0630": "0831", "0930": "1031"}


def test_statements_are_quarterly_published_on_time_and_sometimes_revised(
    market: Market,
) -> None:
    revised = 0
    for code in market.ts_codes()[:25]:
        for api in STATEMENTS:
            rows = market.rows(api, {"ts_code": code})
            assert rows, (api, code)
            assert all(tuple(r) == dataset(api).fields for r in rows)
            keys = [tuple(r[k] for k in dataset(api).keys) for r in rows]
            assert len(keys) == len(set(keys))
            published = [r["ann_date"] for r in rows]
            assert published == sorted(published, reverse=True)
            originals = {r["end_date"]: r for r in rows if r["update_flag"] == "0"}
            for row in rows:
                assert row["ann_date"] <= ymd(END) and row["f_ann_date"] == row["ann_date"]
                assert (row["report_type"], row["comp_type"]) == ("1", "1")
                assert row["end_type"] == str(int(row["end_date"][4:6]) // 3)
                if row["update_flag"] == "1":
                    revised += 1
                    first = originals[row["end_date"]]
                    assert first["ann_date"] < row["ann_date"]
                    assert first != {**row, "ann_date": first["ann_date"]}
                    continue
                year, mmdd = row["end_date"][:4], row["end_date"][4:]
                deadline = year + DEADLINES[mmdd] if mmdd in DEADLINES else f"{int(year) + 1}0430"
                assert row["end_date"] < row["ann_date"] <= deadline
    assert revised > 10


def test_statement_numbers_hang_together(market: Market) -> None:
    for code in market.ts_codes()[:10]:
        income = market.rows("income", {"ts_code": code})
        balance = market.rows("balancesheet", {"ts_code": code})
        cashflow = market.rows("cashflow", {"ts_code": code})
        for inc, bal, cash in zip(income, balance, cashflow, strict=True):
            assert inc["end_date"] == bal["end_date"] == cash["end_date"]
            assert inc["revenue"] > 0 and inc["total_revenue"] >= inc["revenue"]
            assert cash["net_profit"] == inc["n_income"]
            equity = bal["total_hldr_eqy_exc_min_int"]
            assert bal["total_assets"] == pytest.approx(bal["total_liab"] + equity, rel=0.05)
            assert bal["total_liab_hldr_eqy"] == bal["total_assets"]
            assert 0 < bal["total_cur_assets"] < bal["total_assets"]
            assert cash["c_cash_equ_end_period"] == pytest.approx(
                cash["c_cash_equ_beg_period"] + cash["n_incr_cash_cash_equ"], abs=0.05
            )


# ---------------------------------------------------------------------------- the query API


def test_several_codes_come_newest_first_then_by_code(market: Market) -> None:
    a, b = market.ts_codes()[:2]
    rows = market.rows(
        "daily", {"ts_code": f"{b},{a},NOPE.SZ", "start_date": "20240601", "end_date": "20240628"}
    )
    assert {r["ts_code"] for r in rows} == {a, b}
    assert rows == sorted(rows, key=lambda r: (-int(r["trade_date"]), r["ts_code"]))
    assert rows[0]["trade_date"] == "20240628" and rows[-1]["trade_date"] == "20240603"


def test_one_trade_date_for_the_whole_market(market: Market, history: dict) -> None:
    rows = market.rows("daily", {"trade_date": "20240103"})
    bars = [bar for daily, _ in history.values() for bar in daily]
    expected = [bar for bar in bars if bar["trade_date"] == "20240103"]
    assert rows == sorted(expected, key=lambda r: r["ts_code"])
    adj = market.rows("adj_factor", {"trade_date": "20240103"})
    assert len(adj) >= len(rows)
    assert market.rows("daily", {"trade_date": "20240106"}) == []  # a Saturday


def test_filters_and_paging(market: Market) -> None:
    code = market.ts_codes()[0]
    params = {"ts_code": code, "start_date": "20240603", "end_date": "20240607"}
    week = market.rows("adj_factor", params)
    assert [r["trade_date"] for r in week] == [f"2024060{d}" for d in (7, 6, 5, 4, 3)]
    paged = market.rows("adj_factor", {**params, "start_date": "", "offset": "1", "limit": "2"})
    assert paged == week[1:3]
    assert market.rows("daily", {"ts_code": code, "start_date": "", "end_date": "20240628"})
    assert market.rows("daily", {"ts_code": "999999.SZ"}) == []
    assert market.rows("income", {"ts_code": "999999.SZ"}) == []
    income = market.rows("income", {"ts_code": code, "period": "20231231"})
    assert income and {r["end_date"] for r in income} == {"20231231"}
    recent = market.rows("cashflow", {"ts_code": code, "start_date": "20240101"})
    assert recent and all(r["ann_date"] >= "20240101" for r in recent)
    sse = market.rows("stock_basic", {"exchange": "SSE"})
    assert sse and all(r["exchange"] == "SSE" for r in sse)
    assert market.rows("stock_basic", {"ts_code": code})[0]["ts_code"] == code


@pytest.mark.parametrize(
    ("api", "params", "named"),
    [
        ("daily", {"ts_code": "000001.SZ", "start_date": "2024-01-01"}, "start_date"),
        ("daily", {"trade_date": "20241301"}, "trade_date"),
        ("adj_factor", {"start_date": "20240101"}, "ts_code"),
        ("income", {"start_date": "20240101"}, "ts_code"),
        ("cashflow", {"ts_code": "000001.SZ,000002.SZ"}, "ts_code"),
        ("balancesheet", {"ts_code": "000001.SZ", "period": "2023"}, "period"),
        ("stock_basic", {"list_status": "X"}, "list_status"),
        ("daily", {"ts_code": "000001.SZ", "limit": "-1"}, "limit"),
        ("weekly", {"ts_code": "000001.SZ"}, "weekly"),
    ],
)
def test_bad_parameters_are_permanent_errors(market: Market, api, params, named) -> None:
    with pytest.raises(PermanentError, match=named) as caught:
        market.rows(api, params)
    assert caught.value.api == api


def test_values_are_plain_api_types(market: Market) -> None:
    code = market.ts_codes()[0]
    for api in DATASETS:
        params = {"ts_code": code, "start_date": "20230101"}
        for row in market.rows(api, params):
            for field, value in row.items():
                kind = dataset(api).column_type(field)
                allowed = (float, type(None)) if kind == "DOUBLE" else (str, type(None))
                assert type(value) in allowed, (api, field, value)


def test_one_day_of_the_whole_market_generates_every_history() -> None:
    # How fast is bench's business (timed unit tests flake on a shared machine).
    fresh = Market(SEED, 300, END)
    oldest = min(fresh.ts_codes(), key=lambda c: fresh.stock(c)["list_date"])
    assert fresh.rows("adj_factor", {"ts_code": oldest, "trade_date": "20240628"})
    assert len(fresh.rows("daily", {"trade_date": "20240628"})) > 250


def test_whole_market_statements_are_every_companys_in_the_range(late_market: Market) -> None:
    start, end = "20230401", "20230430"
    for api in STATEMENTS:
        rows = late_market.rows(f"{api}_vip", {"start_date": start, "end_date": end})
        want = [
            row
            for code in late_market.ts_codes()
            for row in late_market.rows(
                api, {"ts_code": code, "start_date": start, "end_date": end}
            )
        ]
        assert len(rows) > 100 and sorted(map(repr, rows)) == sorted(map(repr, want))
        key = [(r["ann_date"], r["ts_code"]) for r in rows]
        assert key == sorted(key, key=lambda k: (-int(k[0]), k[1]))  # newest first, then code
        # Paging with offset walks the same list; a period narrows it; so does one code.
        paged = [
            row
            for offset in range(0, len(rows), 100)
            for row in late_market.rows(
                f"{api}_vip", {"start_date": start, "end_date": end, "offset": offset, "limit": 100}
            )
        ]
        assert paged == rows
        one = rows[0]["ts_code"]
        assert late_market.rows(
            f"{api}_vip", {"ts_code": one, "start_date": start, "end_date": end}
        ) == [r for r in rows if r["ts_code"] == one]
    assert {r["end_date"] for r in late_market.rows("income_vip", {"period": "20221231"})} == {
        "20221231"
    }


@pytest.mark.parametrize(
    "api, params, fields",
    [
        ("daily", {"ts_code": "{0},{1}", "start_date": "20230101"}, ["close", "trade_date"]),
        ("daily", {"trade_date": "20240628", "offset": 5, "limit": 7}, list(DAILY.fields)),
        ("adj_factor", {"ts_code": "{0}"}, ["trade_date", "ts_code", "adj_factor"]),
        ("income", {"ts_code": "{1}"}, ["ann_date", "ts_code"]),
    ],
)
def test_items_are_the_rows_fields_in_order(market: Market, api, params, fields) -> None:
    codes = market.ts_codes()
    params = {k: str(v).format(*codes) for k, v in params.items()}
    rows = market.rows(api, params)
    assert rows and market.items(api, params, fields) == [[r[f] for f in fields] for r in rows]


@pytest.mark.parametrize(
    "api, params",
    [
        ("income_vip", {"start_date": "20200101", "offset": 40}),
        ("income_vip", {"start_date": "20200101", "offset": 10, "limit": 3}),
        ("daily", {"ts_code": "{0}", "offset": 2}),
        ("income", {"ts_code": "{1}"}),
    ],
)
def test_items_made_up_to_a_most_are_the_first_of_all(late_market: Market, api, params) -> None:
    codes = late_market.ts_codes()
    params = {k: str(v).format(*codes) for k, v in params.items()}
    fields = ["ts_code", "end_date" if "income" in api else "trade_date"]
    everything = late_market.items(api, params, fields)
    assert len(everything) >= 3
    for most in (1, 2, len(everything), len(everything) + 1):
        assert late_market.items(api, params, fields, most=most) == everything[:most]


def test_whole_market_statements_are_the_same_whatever_is_cached() -> None:
    everything, little = Market(SEED, 60, END, cache_size=60), Market(SEED, 60, END, cache_size=8)
    for params in ({}, {"start_date": "20230101", "end_date": "20230630"}, {"period": "20221231"}):
        kept = everything.rows("income_vip", params)
        assert kept and kept == little.rows("income_vip", params)
