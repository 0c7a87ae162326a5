"""Figures for "complete data for the fewest calls": the planner against a 5,000-symbol market
(calls per interface next to the row-cap minimum, for a full history and a one-day update), and
the ledger after a year of daily runs (its size and `neo status` latency, with and without
`[ledger] keep_days`).

    .venv/bin/python bench/completeness.py [--symbols 5000] [--days 250]

Prints JSON; `bench/run.py` puts the same figures in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from neo_cli.dates import fmt
from neo_cli.ledger import Ledger
from neo_cli.planner import LIST_STATUSES, PlanOptions, Request, make_plan
from neo_cli.providers.market import Market
from neo_cli.tasktypes import STATEMENTS, VIP, VIP_OF, dataset, task_type
from neo_cli.units import Unit

END = date(2026, 11, 20)  # the simulated market's "today" in the tests


def _catalog(ledger: Ledger, market: Market) -> None:
    rows = []
    for code in market.ts_codes():
        b = market.stock(code)
        rows.append((code, b["name"], b["list_status"], b["list_date"], b["delist_date"]))
    ledger.record_flush([], {}, rows)


def _rows(market: Market, api: str) -> int:
    if api in STATEMENTS:
        return len(market.rows(VIP_OF[api], {}))
    return sum(len(market.rows(api, {"ts_code": code})) for code in market.ts_codes())


def _saved(ledger: Ledger, units: list[Unit], batch: str, universe: list[str]) -> None:
    """Record `units` as enqueued and saved, as the consumers would (coverage included)."""
    for i in range(0, len(units), 5000):
        chunk = units[i : i + 5000]
        with ledger.adding(batch, "bench", chunk, universe if i == 0 else ()):
            pass
        ledger.record_flush([u.id for u in chunk], {})


def _calls(market: Market, units: list[Unit]) -> int:
    """The calls `units` take against the market: one each for bars and factors (planned to
    hold fewer rows than the cap, a reply never reaches it), and for a whole market's
    statements as many pages as the window's rows need, plus the short page that ends it."""
    days: list[str] = []
    calls = 0
    for u in units:
        if u.api not in VIP:
            calls += 1
            continue
        if not days:
            days = sorted(r["ann_date"] for r in market.rows(u.api, {}))
        lo, hi = u.params["start_date"], u.params["end_date"]
        n = bisect.bisect_right(days, hi) - bisect.bisect_left(days, lo)
        calls += n // dataset(u.api).row_cap + 1
    return calls


def planner_figures(symbols: int = 5000) -> dict:
    """Calls the planner asks for, per interface, next to rows ÷ row cap."""
    market = Market(20240101, symbols, END)
    days = market.trade_dates()
    out: dict = {"symbols": len(market.ts_codes()), "statuses": {}, "apis": {}}
    for status in LIST_STATUSES:
        out["statuses"][status] = len(market.ts_codes(status))
    with tempfile.TemporaryDirectory(prefix="neo-plan-") as tmp:
        ledger = Ledger(Path(tmp) / "ledger.db", clock=lambda: time.time())
        try:
            _catalog(ledger, market)
            for api in ("daily", "adj_factor", *STATEMENTS):
                options = PlanOptions()
                cap = options.cap(VIP_OF.get(api, api))
                t = time.perf_counter()
                full = make_plan(
                    Request(task_type(api), end=END - timedelta(days=1)),
                    ledger,
                    END,
                    "full",
                    market.trade_dates,
                    options,
                )
                plan_s = time.perf_counter() - t
                rows = _rows(market, api)
                chosen = full.choices[api][0]
                calls = _calls(market, full.units)
                # Everything through the day before saved; then a one-day update.
                _saved(ledger, full.units, "full", full.universe)
                update = make_plan(
                    Request(task_type(api), end=END), ledger, END, "upd", market.trade_dates
                )
                upd = update.choices.get(api, [])
                out["apis"][api] = {
                    "rows": rows,
                    "row_cap": cap,
                    "minimum": math.ceil(rows / cap),
                    "full_history": calls,
                    "estimated": chosen.calls,
                    "strategy": chosen.name,
                    "ratio": round(calls / math.ceil(rows / cap), 3),
                    "others": {s.name: s.calls for s in full.choices[api][1:]},
                    "one_day_update": upd[0].calls if upd else 0,
                    "one_day_strategy": upd[0].name if upd else "",
                    "plan_seconds": round(plan_s, 2),
                }
        finally:
            ledger.close()
    out["trading_days"] = len(days)
    return out


def _status_seconds(home: Path, runs: int = 5) -> float:
    """The median of `runs` timings of `neo status --json` as a whole process."""
    from run import status_process_seconds

    times = sorted(status_process_seconds(home) for _ in range(runs))
    return round(times[runs // 2], 3)


def ledger_year(symbols: int = 5000, days: int = 250, keep_days: int | None = 30) -> dict:
    """A year of daily runs recorded in a ledger: each trading day one whole-market `daily`
    and `adj_factor` unit and one unit per symbol for each of the three statements (the
    account without `*_vip`: the most units), all saved; pruned as `neo enqueue` prunes."""
    codes = [f"{n:06d}.SZ" for n in range(1, symbols + 1)]
    day = datetime(2025, 11, 20, 18, 30)
    with tempfile.TemporaryDirectory(prefix="neo-ledger-") as tmp:
        home = Path(tmp)
        data = home / "data"
        data.mkdir()
        (home / "neo.toml").write_text(
            f'[paths]\ndata_dir = "{data}"\n[ledger]\nkeep_days = {keep_days or 36500}\n'
        )
        now = [day.timestamp()]
        ledger = Ledger(data / "ledger.db", clock=lambda: now[0])
        t0 = time.perf_counter()
        units_total = 0
        try:
            ledger.record_flush([], {}, [(c, "x", "L", "20000104", None) for c in codes])
            done = 0
            since = fmt(day.date())
            while done < days:
                day += timedelta(days=1)
                if day.weekday() >= 5:
                    continue
                done += 1
                now[0] = day.timestamp()
                d = fmt(day.date())
                batch = f"b{done}"
                units = [
                    Unit(api, {"trade_date": d}, ("*",), batch) for api in ("daily", "adj_factor")
                ]
                # Statements: from the day after the last run (weekends included) to today.
                units += [
                    Unit(api, {"ts_code": c, "start_date": since, "end_date": d}, (c,), batch)
                    for api in STATEMENTS
                    for c in codes
                ]
                since = fmt(day.date() + timedelta(days=1))
                _saved(ledger, units, batch, codes)
                units_total += len(units)
                if keep_days:
                    ledger.prune(keep_days)
            kept = sum(sum(s.values()) for s in ledger.state_counts().values())
            ranges = ledger._rows("select count(*) from coverage")[0][0]
        finally:
            ledger.close()
        build_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in data.glob("ledger.db*"))
        status_s = _status_seconds(home)
    return {
        "keep_days": keep_days,
        "days": days,
        "units_recorded": units_total,
        "units_kept": kept,
        "coverage_ranges": ranges,
        "ledger_mb": round(size / 2**20, 1),
        "status_s_median": status_s,
        "build_s": round(build_s, 1),
    }


BEGIN, END_MARK = "<!-- completeness: bench/completeness.py -->", "<!-- /completeness -->"


def markdown(planner: dict | None, ledgers: list[dict] | None, where: str) -> str:
    """The BENCHMARKS.md section for these figures."""
    lines = [BEGIN, "## Complete data for the fewest calls: the planner at full-market scale", ""]
    lines.append(f"Measured {where}, by `bench/completeness.py`.")
    if planner:
        st = planner["statuses"]
        lines += [
            "",
            f"The planner (`make_plan`, no consumers) against the simulated market of "
            f"{planner['symbols']:,} symbols — {st['L']:,} listed, {st['D']} delisted, "
            f"{st['P']} paused — each over its own listing span: a full history through "
            "the day before, then, with that saved, a one-day update. Rows are the market's; "
            "the minimum is rows ÷ row cap. Calls are what the planned units take against "
            "the market's rows (a whole-market statement window pages by `offset`); the "
            "planner's own estimate is in brackets.",
            "",
            "| interface | rows | row cap | minimum calls | full history | ratio | strategy "
            "| one-day update | other strategies (full history) |",
            "|---|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for api, f in planner["apis"].items():
            others = ", ".join(f"{k} {v:,}" for k, v in f["others"].items())
            lines.append(
                f"| {api} | {f['rows']:,} | {f['row_cap']:,} | {f['minimum']:,} | "
                f"{f['full_history']:,} ({f.get('estimated', f['full_history']):,}) | "
                f"{f['ratio']:.2f}× | {f['strategy']} | "
                f"{f['one_day_update']} ({f['one_day_strategy']}) | {others} |"
            )
    if ledgers:
        lines += [
            "",
            "The ledger after a year of daily runs: 250 trading days, each a whole-market "
            "`daily` and `adj_factor` update and one unit per symbol for each statement "
            "(5,000 symbols, an account without `*_vip`: the most units), all saved. "
            "`neo status --json` timed as a whole process (median of 5).",
            "",
            "| `[ledger] keep_days` | units recorded | units kept | ledger size | `neo status` |",
            "|---|---:|---:|---:|---:|",
        ]
        for f in ledgers:
            keep = f["keep_days"] or "never pruned"
            lines.append(
                f"| {keep} | {f['units_recorded']:,} | {f['units_kept']:,} | "
                f"{f['ledger_mb']:,} MB | {f['status_s_median']:.2f} s |"
            )
    lines += ["", END_MARK, ""]
    return "\n".join(lines)


def merge_section(path: Path, section: str) -> None:
    """Put `section` into `path`, replacing an older one."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END_MARK in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--only", choices=("planner", "ledger"), default=None)
    parser.add_argument("--write", type=Path, help="put the section into this BENCHMARKS.md")
    parser.add_argument(
        "--keep-days", type=int, action="append", help="ledger variants (0: never pruned)"
    )
    args = parser.parse_args()
    out: dict = {}
    if args.only in (None, "planner"):
        out["planner"] = planner_figures(args.symbols)
        print(json.dumps(out["planner"], indent=1), flush=True)
    if args.only in (None, "ledger"):
        keeps = [k or None for k in (args.keep_days or [30, 0])]
        out["ledger"] = [ledger_year(args.symbols, args.days, k) for k in keeps]
        print(json.dumps(out["ledger"], indent=1), flush=True)
    if args.write:
        from run import machine

        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        where = f"{when} on {machine()}"
        merge_section(args.write, markdown(out.get("planner"), out.get("ledger"), where))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
