"""A deterministic synthetic A-share market, answering queries as the Tushare Pro API would.

Pure data: no I/O, no threads, nothing of HTTP or queues. The simulated provider and the test
HTTP server both answer from it through `Market.items(api, params, fields)` (or `rows`).

Everything follows from (seed, n_symbols, end_date), and a later end_date only adds data:
- each stock's attributes come from its own seed (seed, index), and its code from the codes taken
  by the stocks before it, so the first k stocks are the same for any n_symbols >= k;
- listing, delisting and pause dates are fixed dates, never relative to end_date; a stock whose
  listing date is after end_date does not exist yet, as in the real history;
- each series is drawn from its own random streams (seed, ts_code, stream), one draw per trading
  day from the listing day, and cut at end_date, so a longer series has the same past.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from operator import itemgetter
from typing import Any

import numpy as np

from neo_cli.errors import PermanentError
from neo_cli.tasktypes import ADJ_FACTOR, DAILY, STATEMENTS, STOCK_BASIC, VIP

FIRST_DAY = date(1990, 12, 19)  # the Shanghai exchange's first session
# Fixed dates, so that moving end_date never moves a stock's history.
LAST_LISTING = date(2023, 12, 29)
LAST_DELISTING = date(2025, 12, 31)
PAUSES = (date(2023, 1, 1), date(2026, 6, 30))
CACHE_SIZE = 128  # stocks whose generated history is kept (bounds the memory it takes)

DELIST_RATE, PAUSE_RATE = 0.05, 0.025
SUSPEND_RATE, LONG_SUSPEND_RATE = 0.012, 0.0008  # per trading day
PHI = 0.999  # daily mean reversion of the log price: keeps 35 years of prices plausible


@dataclass(frozen=True)
class _Board:
    market: str
    exchange: str
    suffix: str
    opened: date
    weight: float
    numbers: tuple[tuple[int, int], ...]  # [first, stop) ranges of six-digit codes


_BOARDS = (
    _Board("主板", "SSE", "SH", date(1990, 12, 19), 0.33, ((600000, 606000),)),
    _Board("主板", "SZSE", "SZ", date(1991, 4, 3), 0.30, ((1, 4000),)),
    _Board("创业板", "SZSE", "SZ", date(2009, 10, 30), 0.17, ((300001, 302000),)),
    _Board("科创板", "SSE", "SH", date(2019, 7, 22), 0.12, ((688001, 690000),)),
    _Board(
        "北交所",
        "BSE",
        "BJ",
        date(2021, 11, 15),
        0.08,
        ((830000, 840000), (870000, 880000), (430000, 440000)),
    ),
)
_AREAS = (
    "北京",
    "上海",
    "深圳",
    "广东",
    "浙江",
    "江苏",
    "山东",
    "福建",
    "四川",
    "湖北",
    "湖南",
    "安徽",
    "河南",
    "河北",
    "天津",
    "重庆",
    "辽宁",
    "陕西",
    "江西",
    "云南",
    "新疆",
    "吉林",
)
_INDUSTRIES = (
    "银行",
    "证券",
    "全国地产",
    "白酒",
    "化学制药",
    "中成药",
    "医疗保健",
    "元器件",
    "半导体",
    "软件服务",
    "通信设备",
    "汽车配件",
    "电气设备",
    "专用机械",
    "小金属",
    "化工原料",
    "食品",
    "家用电器",
    "建筑工程",
    "电力",
    "水泥",
    "互联网",
    "环境保护",
    "农药化肥",
    "服饰",
)

# Days from period end to announcement, by quarter: Q1 by Apr 30, H1 by Aug 31, Q3 by Oct 31,
# the annual report by Apr 30 of the next year.
_ANN_LAG = {1: (20, 30), 2: (40, 62), 3: (20, 31), 4: (60, 119)}
_QUARTER_END = {1: (3, 31), 2: (6, 30), 3: (9, 30), 4: (12, 31)}
_SEASON = {1: 0.85, 2: 1.0, 3: 1.0, 4: 1.15}


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


# ---------------------------------------------------------------------------- calendar


def spring_festival(year: int) -> date:
    """Lunar New Year, within a day or two: 11 days earlier each year, a month later after a
    leap month."""
    return date(year, 1, 21) + timedelta(days=(15 - 11 * (year - 2000)) % 30)


def holidays(year: int) -> list[date]:
    """The exchange's closed weekdays: Jan 1, Spring Festival week, May 1-3, Oct 1-7."""
    eve = spring_festival(year) - timedelta(days=1)
    return [
        date(year, 1, 1),
        *(eve + timedelta(days=k) for k in range(7)),
        *(date(year, 5, d) for d in (1, 2, 3)),
        *(date(year, 10, d) for d in range(1, 8)),
    ]


@functools.lru_cache(maxsize=8)
def _calendar(until: date) -> np.ndarray:
    """Trading days from FIRST_DAY through `until` as YYYYMMDD integers."""
    days = np.arange(np.datetime64(FIRST_DAY), np.datetime64(until) + 1)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    closed = [h for y in range(FIRST_DAY.year, until.year + 1) for h in holidays(y)]
    days = days[(weekday < 5) & ~np.isin(days, np.array(closed, dtype="datetime64[D]"))]
    months = days.astype("datetime64[M]")
    ymd = (
        (months.astype(np.int64) // 12 + 1970) * 10000
        + (months.astype(np.int64) % 12 + 1) * 100
        + (days - months).astype(np.int64)
        + 1
    )
    ymd.setflags(write=False)
    return ymd


Day = str | date  # 'YYYYMMDD' or a date


def _ymd(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _date(ymd: int) -> date:
    return date(ymd // 10000, ymd // 100 % 100, ymd % 100)


# ---------------------------------------------------------------------------- stocks


@dataclass(frozen=True)
class _Stock:
    """One stock's fixed attributes; calendar positions index the market's calendar."""

    ts_code: str
    name: str
    area: str
    industry: str
    board: _Board
    is_hs: str
    list_index: int
    delist_index: int | None  # first day it no longer trades
    pause_index: int | None  # first day of a suspension that never ends

    @property
    def symbol(self) -> str:
        return self.ts_code[:6]


def _universe(seed: int, n: int, calendar: np.ndarray) -> list[_Stock]:
    """The first n stocks of the universe for `seed`; stock i depends on stocks < i only."""
    cursors = {b: (0, b.numbers[0][0]) for b in _BOARDS}  # next (range, number) per board
    last_listing = int(np.searchsorted(calendar, _ymd(LAST_LISTING), "right"))
    last_delisting = int(np.searchsorted(calendar, _ymd(LAST_DELISTING), "right"))
    pauses = [int(np.searchsorted(calendar, _ymd(d))) for d in PAUSES]
    stocks = []
    for i in range(n):
        r = random.Random(_seed(seed, "stock", i))
        u = [r.random() for _ in range(10)]
        wanted = r.choices(_BOARDS, [b.weight for b in _BOARDS])[0]
        board, number = _take_code(cursors, wanted, skip=u[0] < 0.25)
        first = int(np.searchsorted(calendar, _ymd(board.opened)))
        list_index = first + int(u[1] * (last_listing - first))
        delist_index = pause_index = None
        if u[2] < DELIST_RATE and list_index + 500 < last_delisting:
            delist_index = list_index + 500 + int(u[3] * (last_delisting - list_index - 500))
        elif u[2] > 1 - PAUSE_RATE:
            start = max(pauses[0], list_index + 500)
            if start < pauses[1]:
                pause_index = start + int(u[3] * (pauses[1] - start))
        industry = _INDUSTRIES[int(u[4] * len(_INDUSTRIES))]
        connect = {"SSE": "H", "SZSE": "S"}.get(board.exchange, "N")
        stocks.append(
            _Stock(
                ts_code=f"{number:06d}.{board.suffix}",
                name=f"模拟{industry}{i + 1:04d}",
                area=_AREAS[int(u[5] * len(_AREAS))],
                industry=industry,
                board=board,
                is_hs=connect if u[6] < 0.45 else "N",
                list_index=list_index,
                delist_index=delist_index,
                pause_index=pause_index,
            )
        )
    return stocks


def _take_code(cursors: dict, wanted: _Board, skip: bool) -> tuple[_Board, int]:
    """The next free code on `wanted`, or on the next board with room when it is full."""
    start = _BOARDS.index(wanted)
    for board in _BOARDS[start:] + _BOARDS[:start]:
        index, number = cursors[board]
        while index < len(board.numbers) and number >= board.numbers[index][1]:
            index += 1
            number = board.numbers[index][0] if index < len(board.numbers) else number
        if index < len(board.numbers):
            cursors[board] = (index, number + 1 + skip)  # codes are not all consecutive
            return board, number
    raise ValueError("more symbols than the simulated boards have codes")


# ---------------------------------------------------------------------------- series


@dataclass(frozen=True)
class _Series:
    factor_dates: np.ndarray  # every trading day from listing to the last day, YYYYMMDD
    factors: np.ndarray
    bar_dates: np.ndarray  # the days it traded
    bars: np.ndarray  # one row per bar, columns DAILY.fields[2:] (open .. amount)
    bars_before: np.ndarray  # [i]: how many of the bars are before factor_dates[i]


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """x[t] = phi * x[t-1] + shocks[t] from x[-1] = 0, vectorised.

    Within a block, x[t] = phi**(t+1) * (x[-1] + cumsum(shocks[k] / phi**(k+1))); blocks keep
    phi**-k small, and their fixed boundaries keep a longer series' prefix bit-identical."""
    out = np.empty_like(shocks)
    carry, block = 0.0, 2048
    for start in range(0, len(shocks), block):
        s = shocks[start : start + block]
        powers = phi ** np.arange(1, len(s) + 1)
        out[start : start + len(s)] = powers * (carry + np.cumsum(s / powers))
        carry = out[start + len(s) - 1]
    return out


def _factor_steps(stock: _Stock, calendar: np.ndarray, stop: int, seed: int) -> np.ndarray:
    """Multipliers, 1.0 except on ex-dates: a dividend most years (mid-May to July, +1%..8%),
    now and then a bonus-share split (x1.5..2)."""
    steps = np.ones(stop - stock.list_index)
    first_year = int(calendar[stock.list_index]) // 10000 + 1
    last_year = int(calendar[stop - 1]) // 10000
    draws = _rng(seed, stock.ts_code, "dividends").random((max(0, last_year - first_year + 1), 5))
    for year, u in zip(range(first_year, last_year + 1), draws, strict=True):
        target = date(year, 5, 15) + timedelta(days=int(u[0] * 75))
        day = int(np.searchsorted(calendar, _ymd(target)))
        if day >= stop or day - stock.list_index < 20:
            continue
        dividend = 1.01 + 0.07 * u[2] if u[1] < 0.85 else 1.0
        split = 1.5 + 0.5 * u[4] if u[3] < 0.1 else 1.0
        steps[day - stock.list_index] = dividend * split
    return steps


def _series(stock: _Stock, calendar: np.ndarray, stop: int, seed: int) -> _Series:
    """Bars and factors of one stock for calendar days [list_index, stop)."""
    code, start = stock.ts_code, stock.list_index
    n = stop - start
    factor = np.round(np.cumprod(_factor_steps(stock, calendar, stop, seed)), 3)

    u = _rng(seed, code, "profile").random(5)
    level = np.log(3.0) + u[0] * np.log(12.0)  # typical price 3..36 yuan
    sigma = 0.015 + 0.015 * u[1]  # daily volatility
    base_vol = np.exp(np.log(3e3) + u[2] * np.log(200.0))  # 3k..600k lots a day
    pop, drift = 1.2 + 0.24 * u[3], (u[4] - 0.5) * 4e-4  # first-day gain; daily drift

    traded = _rng(seed, code, "suspend").random(n)
    lengths = 3 + (_rng(seed, code, "suspend-days").random(n) * 18).astype(np.int64)
    for day in np.flatnonzero(traded > 1 - LONG_SUSPEND_RATE):
        traded[day : day + lengths[day]] = 0.0
    traded = traded >= SUSPEND_RATE
    traded[0] = True  # the listing day always trades
    if stock.pause_index is not None and stock.pause_index < stop:
        traded[stock.pause_index - start :] = False

    # The log price reverts to its level; on an ex-date it drops by the factor step, so the
    # forward-adjusted price carries on smoothly.
    z = np.clip(_rng(seed, code, "walk").standard_normal(n), -4, 4)
    jumps = np.diff(np.log(factor), prepend=np.log(factor[0]))
    raw = np.exp(level + _ar1(drift + sigma * z - jumps, PHI))

    days = np.flatnonzero(traded)
    close = np.maximum(np.round(raw[days], 2), 0.01)
    pre_close = np.empty_like(close)
    pre_close[0] = np.round(close[0] / pop, 2)  # the issue price
    pre_close[1:] = np.round(close[:-1] * factor[days[:-1]] / factor[days[1:]], 2)
    pre_close = np.maximum(pre_close, 0.01)

    noise = _rng(seed, code, "bars").standard_normal((n, 4))[days]
    open_ = np.maximum(np.round(pre_close * np.exp(0.4 * sigma * noise[:, 0]), 2), 0.01)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum(np.round(top * np.exp(0.5 * sigma * np.abs(noise[:, 1])), 2), top)
    low = np.minimum(np.round(bottom * np.exp(-0.5 * sigma * np.abs(noise[:, 2])), 2), bottom)
    low = np.maximum(low, 0.01)
    change = np.round(close - pre_close, 2)
    pct_chg = np.round(change / pre_close * 100, 4)
    vol = np.round(base_vol * np.exp(0.5 * noise[:, 3]) * (1 + 10 * np.abs(pct_chg) / 100), 2)
    amount = np.round(vol * (open_ + high + low + close) / 40, 3)  # lots*100*yuan/1000 = 千元

    dates = calendar[start:stop]
    bars = np.column_stack([open_, high, low, close, pre_close, change, pct_chg, vol, amount])
    before = np.concatenate(([0], np.cumsum(traded))).astype(np.int32)
    return _Series(dates, factor, dates[days], bars, before)


# ---------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class _Company:
    """The fixed traits behind one stock's statements."""

    shares: float
    revenue: float  # a quarter's revenue at listing, yuan
    growth: float  # per year
    margin: float
    costs: float  # operating expenses per yuan of revenue
    leverage: float
    turnover: float  # assets per yuan of yearly revenue
    has_inventory: bool

    @classmethod
    def draw(cls, u: np.ndarray) -> _Company:
        revenue = float(np.exp(np.log(5e7) + u[1] * np.log(100.0)))
        return cls(
            shares=float(round(revenue * (0.2 + 1.8 * u[0]), -4)),  # EPS of cents to a yuan
            revenue=revenue,
            growth=float(1 + (u[2] - 0.3) * 0.25),
            margin=float(0.15 + 0.3 * u[3]),
            costs=float(0.05 + 0.12 * u[4]),
            leverage=float(0.3 + 0.4 * u[5]),
            turnover=float(1 + 2 * u[6]),
            has_inventory=bool(u[7] > 0.1),
        )


def _statements(stock: _Stock, listed: date, last: date, seed: int) -> dict[str, list[dict]]:
    """Quarterly income, balance sheet and cash flow from the listing year, each published
    `_ANN_LAG` days after the period end and now and then revised; only what is announced by
    `last` (end_date, or the last trading day before delisting). Newest first."""
    code = stock.ts_code
    company = _Company.draw(_rng(seed, code, "company").random(8))
    periods = max(0, (last.year - listed.year + 1) * 4)
    draws = _rng(seed, code, "periods").random((periods, 12))
    out: dict[str, list[dict]] = {api: [] for api in STATEMENTS}
    ytd: dict[str, float] = {}
    cash_at_year_start = 0.0
    for p, u in enumerate(draws.tolist()):
        year, quarter = listed.year + p // 4, p % 4 + 1
        if quarter == 1:
            ytd = dict.fromkeys(("revenue", "cost", "other", "nonop"), 0.0)
        size = company.growth ** (p / 4)
        revenue = company.revenue * size * _SEASON[quarter] * math.exp(0.3 * (u[1] - 0.5))
        ytd["revenue"] += revenue
        ytd["cost"] += revenue * (1 - company.margin) * math.exp(0.1 * (u[2] - 0.5))
        ytd["other"] += revenue * 0.02 * u[3]
        ytd["nonop"] += revenue * 0.01 * (u[4] - 0.5)
        assets = company.revenue * 4 * company.turnover * size * math.exp(0.1 * (u[5] - 0.5))
        money = assets * (0.08 + 0.15 * u[6])
        cash_at_year_start = cash_at_year_start or money * 0.9
        values = _period_values(company, quarter, ytd, assets, money, cash_at_year_start, u)
        if quarter == 4:
            cash_at_year_start = money

        period_end = date(year, *_QUARTER_END[quarter])
        lo, hi = _ANN_LAG[quarter]
        ann = period_end + timedelta(days=lo + int(u[0] * (hi - lo + 1)))
        versions = [(ann, "0", 1.0)]
        if u[9] < 0.1:  # a corrected report, published later with different numbers
            revised = ann + timedelta(days=20 + int(u[11] * 280))
            versions.append((revised, "1", 1.05 if u[10] < 0.5 else 0.95))
        for published, flag, scale in versions:
            if published > last:
                continue
            head = {
                "ts_code": code,
                "ann_date": published.strftime("%Y%m%d"),
                "f_ann_date": published.strftime("%Y%m%d"),
                "end_date": period_end.strftime("%Y%m%d"),
                "report_type": "1",
                "comp_type": "1",
                "end_type": str(quarter),
            }
            for api, fields in values.items():
                scaled = {k: _scaled(k, v, scale) for k, v in fields.items()}
                out[api].append({**head, **scaled, "update_flag": flag})
    for rows in out.values():
        rows.sort(key=lambda r: (r["ann_date"], r["end_date"]), reverse=True)
    return out


def _scaled(field: str, value: float | None, scale: float) -> float | None:
    if value is None or field == "total_share":
        return value
    return round(value * scale, 4 if field.endswith("eps") else 2)


def _period_values(
    company: _Company,
    quarter: int,
    ytd: dict[str, float],
    assets: float,
    money: float,
    cash_begin: float,
    u: list[float],
) -> dict[str, dict[str, float | None]]:
    """One period's numbers for the three statements, consistent with each other. Income and
    cash flow are year to date, as in the real reports."""
    revenue = ytd["revenue"]
    total_revenue = revenue + ytd["other"]
    operate_profit = total_revenue - ytd["cost"] - revenue * company.costs
    total_profit = operate_profit + ytd["nonop"]
    income_tax = max(total_profit, 0.0) * 0.2
    n_income = total_profit - income_tax
    eps = n_income * 0.95 / company.shares
    income = {
        "basic_eps": eps,
        "diluted_eps": eps * 0.99,
        "total_revenue": total_revenue,
        "revenue": revenue,
        "oper_cost": ytd["cost"],
        "operate_profit": operate_profit,
        "total_profit": total_profit,
        "income_tax": income_tax,
        "n_income": n_income,
        "n_income_attr_p": n_income * 0.95,
    }
    receivable = revenue / quarter * (0.3 + 0.5 * u[7])
    inventory = assets * 0.12 * (1 - company.margin) if company.has_inventory else None
    liabilities = assets * company.leverage
    balance = {
        "total_share": company.shares,
        "money_cap": money,
        "accounts_receiv": receivable,
        "inventories": inventory,
        "total_cur_assets": money + receivable + (inventory or 0.0) + assets * 0.05,
        "fix_assets": assets * (0.15 + 0.2 * u[8]),
        "total_assets": assets,
        "total_cur_liab": liabilities * 0.7,
        "total_liab": liabilities,
        "total_hldr_eqy_exc_min_int": (assets - liabilities) * 0.96,
        "total_liab_hldr_eqy": assets,
    }
    operating = n_income * (0.7 + 0.6 * u[8]) + revenue * 0.02
    investing = -revenue * (0.05 + 0.1 * u[7])
    increase = money - cash_begin
    cashflow = {
        "net_profit": n_income,
        "c_fr_sale_sg": revenue * 1.1,
        "n_cashflow_act": operating,
        "n_cashflow_inv_act": investing,
        "n_cash_flows_fnc_act": increase - operating - investing,
        "n_incr_cash_cash_equ": increase,
        "c_cash_equ_beg_period": cash_begin,
        "c_cash_equ_end_period": money,
        "free_cashflow": operating + investing if quarter == 4 else None,
    }
    return {"income": income, "balancesheet": balance, "cashflow": cashflow}


# ---------------------------------------------------------------------------- queries


def _bad(api: str, message: str) -> PermanentError:
    return PermanentError(f"参数错误: {message}", api)


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None  # the API ignores empty parameters


def _date_param(api: str, params: Mapping[str, Any], name: str) -> int | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError
        _date(int(value))
    except ValueError:
        raise _bad(api, f"{name} 应为 YYYYMMDD 格式的日期, 收到 {value!r}") from None
    return int(value)


def _count_param(api: str, params: Mapping[str, Any], name: str) -> int | None:
    value = _text(params, name)
    if value is None:
        return None
    if not value.isdigit():
        raise _bad(api, f"{name} 应为非负整数, 收到 {value!r}")
    return int(value)


class Market:
    """A synthetic A-share market as of `end_date`, with `n_symbols` stocks ever listed."""

    def __init__(self, seed: int, n_symbols: int, end_date: date, cache_size: int = CACHE_SIZE):
        if end_date < FIRST_DAY:
            raise ValueError(f"end_date {end_date} is before the first trading day {FIRST_DAY}")
        self.seed, self.n_symbols, self.end_date = seed, n_symbols, end_date
        # Fixed dates after end_date (delistings, pauses) must land on trading days too.
        self._calendar = _calendar(max(end_date, LAST_DELISTING, PAUSES[1]))
        self._open_days = int(np.searchsorted(self._calendar, _ymd(end_date), "right"))
        self._stocks = {
            s.ts_code: s
            for s in _universe(seed, n_symbols, self._calendar)
            if s.list_index < self._open_days
        }
        # With every stock's history cached (the test server), the whole market's statements
        # are kept in order too; otherwise the cache bounds the memory taken.
        self._holds_everything = cache_size >= len(self._stocks)
        self._market_index: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
        self._series = functools.lru_cache(maxsize=cache_size)(self._make_series)
        self._statements = functools.lru_cache(maxsize=cache_size)(self._make_statements)

    # -- what exists

    def trade_dates(self, start: Day | None = None, end: Day | None = None) -> list[str]:
        """Trading days from `start` to `end` inclusive (default: all through end_date)."""
        lo = 0 if start is None else np.searchsorted(self._calendar, _as_ymd(start))
        hi = self._open_days
        if end is not None:
            hi = min(hi, int(np.searchsorted(self._calendar, _as_ymd(end), "right")))
        return [str(d) for d in self._calendar[lo:hi].tolist()]

    def ts_codes(self, list_status: str | None = None) -> list[str]:
        """Codes of every stock listed by end_date, or of those with `list_status` L/D/P."""
        return sorted(c for c in self._stocks if list_status in (None, self._status(c)))

    def stock(self, ts_code: str) -> dict[str, Any] | None:
        """The stock_basic row of one stock, whatever its status; None if unknown."""
        return self._basic(ts_code) if ts_code in self._stocks else None

    def _status(self, ts_code: str) -> str:
        stock = self._stocks[ts_code]
        if stock.delist_index is not None and stock.delist_index < self._open_days:
            return "D"
        if stock.pause_index is not None and stock.pause_index < self._open_days:
            return "P"
        return "L"

    def _last_index(self, stock: _Stock) -> int:
        """Calendar index one past the stock's last trading day as of end_date."""
        if stock.delist_index is not None:
            return min(stock.delist_index, self._open_days)
        return self._open_days

    def _make_series(self, ts_code: str) -> _Series:
        stock = self._stocks[ts_code]
        return _series(stock, self._calendar, self._last_index(stock), self.seed)

    def _make_statements(self, ts_code: str) -> dict[str, list[dict]]:
        stock = self._stocks[ts_code]
        stop = self._last_index(stock)
        last = self.end_date if stop == self._open_days else _date(int(self._calendar[stop - 1]))
        listed = _date(int(self._calendar[stock.list_index]))
        return _statements(stock, listed, last, self.seed)

    def warm(self) -> None:
        """Make every stock's series and statements, and the whole market's statements in
        order, now (they are cached), rather than on the first query that touches them."""
        for code in self._stocks:
            self._series(code)
            self._statements(code)
        if self._holds_everything:
            for api in VIP.values():
                self._market_statements(api)

    # -- the query API

    def rows(self, api: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Rows of `api` for `params`, as the API sends them: newest first, dates 'YYYYMMDD',
        numbers float or None. Raises PermanentError for a bad parameter or unknown api.

        Honours the API's `offset` and `limit` too; the row cap is the caller's."""
        if api == STOCK_BASIC.api:
            rows = self._stock_basic_rows(params)
        elif api in (DAILY.api, ADJ_FACTOR.api):
            names = _series_fields(api)
            rows = [dict(zip(names, row, strict=True)) for row in self._series_rows(api, params)]
        elif api in STATEMENTS:
            rows = self._statement_rows(api, params)
        elif api in VIP:
            rows = [dict(row) for row in self._market_statement_rows(VIP[api], params)]
        else:
            raise PermanentError(f"请指定正确的接口名: 接口 {api!r} 不存在", api)
        return _page(api, params, rows)

    def items(
        self, api: str, params: Mapping[str, Any], fields: Sequence[str], most: int | None = None
    ) -> list[list]:
        """`rows(api, params)` as what goes over the wire: a list of each row's `fields`
        values, in that order. Bars and factors are built as lists from the start: a full
        history is thousands of rows, and a dict per row was most of what answering cost.

        `most`: at most that many rows, and no others made — the caller's row cap plus one,
        to tell there were more. A whole-market statement window paged by `offset` holds
        tens of thousands of rows; made whole for every page, it kept a core busy."""
        if api in VIP:  # read, not handed out: no copy of each row
            rows = _page(api, params, self._market_statement_rows(VIP[api], params), most)
            return [[row[f] for f in fields] for row in rows]
        if api not in (DAILY.api, ADJ_FACTOR.api):
            rows = self.rows(api, params)[:most]
            return [[row[f] for f in fields] for row in rows]
        rows = _page(api, params, self._series_rows(api, params), most)
        names = _series_fields(api)
        if list(fields) == names:
            return rows
        pick = [names.index(f) for f in fields]
        return [[row[i] for i in pick] for row in rows]

    def _basic(self, ts_code: str) -> dict[str, Any]:
        stock = self._stocks[ts_code]
        status = self._status(ts_code)
        return {
            "ts_code": ts_code,
            "symbol": stock.symbol,
            "name": stock.name,
            "area": stock.area,
            "industry": stock.industry,
            "market": stock.board.market,
            "exchange": stock.board.exchange,
            "list_status": status,
            "list_date": str(self._calendar[stock.list_index]),
            "delist_date": str(self._calendar[stock.delist_index]) if status == "D" else None,
            "is_hs": stock.is_hs,
        }

    def _stock_basic_rows(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        api = STOCK_BASIC.api
        status = _text(params, "list_status") or "L"
        if status not in ("L", "D", "P"):
            raise _bad(api, f"list_status 应为 L、D 或 P, 收到 {status!r}")
        exchange = _text(params, "exchange")
        codes = _codes(params) or self._stocks
        return [
            row
            for row in (self._basic(c) for c in sorted(codes) if c in self._stocks)
            if row["list_status"] == status and exchange in (None, row["exchange"])
        ]

    def _series_rows(self, api: str, params: Mapping[str, Any]) -> list[list[Any]]:
        """Bars or factors as lists of `_series_fields(api)` values, newest first, then by
        code."""
        codes = _codes(params)
        day = _date_param(api, params, "trade_date")
        if not codes and day is None:
            raise _bad(api, "ts_code 与 trade_date 至少填写一个")
        first = max(day or 0, _date_param(api, params, "start_date") or 0)
        last = min(day or 99999999, _date_param(api, params, "end_date") or 99999999)
        # The window's calendar positions, once: a stock has a factor for every calendar day
        # from its listing, so its slice is arithmetic, a stock the window misses is skipped
        # untouched, and its bars' slice is read off the count of bars before each day.
        cal_lo = int(self._calendar.searchsorted(first))
        cal_hi = int(self._calendar.searchsorted(last, "right"))
        rows: list[list[Any]] = []
        for code in codes or sorted(self._stocks):
            stock = self._stocks.get(code)
            if stock is None:
                continue
            days = self._last_index(stock) - stock.list_index
            lo = min(max(cal_lo - stock.list_index, 0), days)
            hi = min(max(cal_hi - stock.list_index, 0), days)
            if lo >= hi:
                continue
            series = self._series(code)
            if api == DAILY.api:
                lo, hi = int(series.bars_before[lo]), int(series.bars_before[hi])
            rows += _slice_rows(api, code, series, lo, hi)
        if len(codes) != 1:
            rows.sort(key=itemgetter(0))  # ts_code
            rows.sort(key=itemgetter(1), reverse=True)  # trade_date; stable: code order stays
        return rows

    def _statement_rows(self, api: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        codes = _codes(params)
        if not codes:
            raise _bad(api, f"必填参数 ts_code 缺失 ({api} 每次查询一只股票)")
        if len(codes) > 1:
            raise _bad(api, f"ts_code 只能填写一只股票, 收到 {_text(params, 'ts_code')!r}")
        first = str(_date_param(api, params, "start_date") or "")
        last = str(_date_param(api, params, "end_date") or "99999999")
        period = _date_param(api, params, "period")
        if codes[0] not in self._stocks:
            return []
        return [
            dict(row)
            for row in self._statements(codes[0])[api]
            if first <= row["ann_date"] <= last and period in (None, int(row["end_date"]))
        ]

    def _market_statement_rows(self, api: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`income_vip` & co.: every company's statements announced in the range (or of one
        period), newest announcement first, then by code; `ts_code` narrows to one."""
        codes = _codes(params)
        first = str(_date_param(api, params, "start_date") or "")
        last = str(_date_param(api, params, "end_date") or "99999999")
        period = _date_param(api, params, "period")
        if codes or not self._holds_everything:
            rows = _in_order(
                [
                    row
                    for code in codes or sorted(self._stocks)
                    if code in self._stocks
                    for row in self._statements(code)[api]
                ]
            )
        else:  # the whole market, all cached: a window of its rows, already in order
            rows, newest_first = self._market_statements(api)
            rows = rows[
                bisect.bisect_left(newest_first, -int(last)) : bisect.bisect_right(
                    newest_first, -int(first or 0)
                )
            ]
        return [  # the cached rows themselves: the caller copies what it hands out
            row
            for row in rows
            if first <= row["ann_date"] <= last and period in (None, int(row["end_date"]))
        ]

    def _market_statements(self, api: str) -> tuple[list[dict[str, Any]], list[int]]:
        """Every company's `api` rows in the whole-market interface's order, and their
        announcement dates negated (ascending, for bisect); made once per interface."""
        if api not in self._market_index:
            rows = _in_order([row for c in self._stocks for row in self._statements(c)[api]])
            self._market_index[api] = (rows, [-int(row["ann_date"]) for row in rows])
        return self._market_index[api]


def _in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements as the whole-market interface sends them: newest announcement first, then
    by code, then the latest period first."""
    rows = sorted(rows, key=lambda r: r["end_date"], reverse=True)
    rows.sort(key=lambda r: r["ts_code"])
    rows.sort(key=lambda r: r["ann_date"], reverse=True)  # stable: code, then period
    return rows


def _series_fields(api: str) -> list[str]:
    """ts_code, trade_date, then the value columns of daily bars or of factors."""
    return list(DAILY.fields if api == DAILY.api else ADJ_FACTOR.fields)


def _slice_rows(api: str, code: str, series: _Series, lo: int, hi: int) -> list[list[Any]]:
    """Rows lo..hi-1 of one stock's daily bars or factors, newest first, as lists of
    `_series_fields(api)` values."""
    if api == DAILY.api:
        days, values = series.bar_dates[lo:hi], series.bars[lo:hi]
    else:
        days, values = series.factor_dates[lo:hi], series.factors[lo:hi, None]
    return [
        [code, str(day), *row]
        for day, row in zip(days[::-1].tolist(), values[::-1].tolist(), strict=True)
    ]


def _page(api: str, params: Mapping[str, Any], rows: list, most: int | None = None) -> list:
    """The rows the API's own `offset` and `limit` parameters ask for, `most` at most."""
    offset = _count_param(api, params, "offset") or 0
    limit = _count_param(api, params, "limit")
    if most is not None:
        limit = most if limit is None else min(limit, most)
    return rows[offset : None if limit is None else offset + limit]


def _codes(params: Mapping[str, Any]) -> list[str]:
    """The ts_code parameter as a list of distinct codes, in the order given."""
    text = _text(params, "ts_code") or ""
    return list(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))


def _as_ymd(day: Day) -> int:
    return _ymd(day) if isinstance(day, date) else int(day)
