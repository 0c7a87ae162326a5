"""`neo verify` in-process: exact output and exit codes over a real ledger filled by inline runs
on the simulated provider."""

from __future__ import annotations

import json
import re

from conftest import END_DATE, Home

from neo_cli.errors import EXIT_INCOMPLETE
from neo_cli.ledger import Ledger
from neo_cli.providers.market import Market

SYMBOLS = 20  # 18 listed, one delisted, one paused


def filled(home: Home, *codes: str) -> Market:
    """stock_basic and `daily` for the whole market, saved by inline runs."""
    from datetime import datetime

    home.configure(provider__simulated={"symbols": SYMBOLS, "deny_symbols": ",".join(codes)})
    for task in ("stock_basic", "daily"):
        home.cli("enqueue", "-t", task, "--end-date", END_DATE, "--inline")
    return Market(20240101, SYMBOLS, datetime.strptime(END_DATE, "%Y%m%d").date())


def test_a_complete_database_exits_0_and_says_so(home: Home) -> None:
    market = filled(home)
    result = home.cli("verify", "-t", "daily", "--end-date", END_DATE)
    assert result.exit_code == 0, result.output
    every = len(market.ts_codes())
    assert result.output == f"daily: complete ({every} symbols)\n"
    listed = home.cli("verify", "-t", "daily", "--end-date", END_DATE, "--listed-only")
    assert listed.output == f"daily: complete ({len(market.ts_codes('L'))} symbols)\n"
    assert len(market.ts_codes("L")) < every  # the default counts delisted and paused too


def test_holes_are_named_exit_9_and_repair_enqueues_exactly_them(home: Home) -> None:
    market = filled(home)
    bad = market.ts_codes("L")[3]
    home.configure(provider__simulated={"symbols": SYMBOLS, "deny_symbols": bad})
    home.cli("enqueue", "-t", "daily", "--end-date", END_DATE, "--inline", "--full")
    # A full re-fetch that failed for one symbol takes no coverage away: still complete.
    assert home.cli("verify", "-t", "daily", "--end-date", END_DATE).exit_code == 0

    fresh = Home(root=home.root / "fresh", config=home.root / "fresh" / "neo.toml")
    fresh.root.mkdir()
    filled(fresh, bad)
    result = fresh.cli("verify", "-t", "daily", "--end-date", END_DATE, "--json")
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    report = json.loads(result.output)
    [daily] = report["apis"]
    assert not report["complete"] and list(daily["holes"]) == [bad]
    assert daily["symbols_with_holes"] == 1 and daily["ranges"] == 1
    first = market.stock(bad)["list_date"]
    assert daily["holes"][bad] == [[first, END_DATE]]

    text = fresh.cli("verify", "-t", "daily", "--end-date", END_DATE)
    assert text.exit_code == EXIT_INCOMPLETE
    assert text.output.splitlines() == [
        f"daily: 1 of {len(market.ts_codes())} symbols have holes, 1 range(s)",
        f"  {bad}  {first}-{END_DATE}",
    ]
    fresh.configure(provider__simulated={"symbols": SYMBOLS})
    repaired = fresh.cli("verify", "-t", "daily", "--end-date", END_DATE, "--repair")
    assert "repair: enqueued 2 daily task(s)" in repaired.output  # 27 years: two calls
    assert repaired.exit_code == EXIT_INCOMPLETE  # queued, not saved yet
    queued = fresh.cli("verify", "-t", "daily", "--end-date", END_DATE)
    assert queued.exit_code == 0
    assert (
        queued.output
        == f"daily: complete ({len(market.ts_codes())} symbols), 1 more on their way\n"
    )


def test_rows_set_aside_are_covered_and_listed(home: Home) -> None:
    market = filled(home)
    code = market.ts_codes("L")[0]
    ledger = Ledger(home.data / "ledger.db")
    try:
        ledger.record_flush([], {}, set_aside={"daily": [(code, "20240105", "bad number close=x")]})
    finally:
        ledger.close()
    result = home.cli("verify", "-t", "daily", "--end-date", END_DATE)
    assert result.exit_code == 0
    assert "1 bad row(s) of 1 symbol(s) set aside in _quarantine" in result.output
    report = json.loads(home.cli("verify", "-t", "daily", "--end-date", END_DATE, "--json").output)
    assert report["apis"][0]["quarantined"] == {code: [["20240105", "bad number close=x"]]}


def test_bad_input_is_one_line(home: Home) -> None:
    for args, text in [
        (("-t", "stock_basic"), "stock_basic has no coverage to verify"),
        (("-t", "nope"), "unknown task type 'nope'"),
        (("--end-date", "2024"), "invalid --end-date '2024'"),
        (("--symbols", "000001.SZ", "--listed-only"), "--listed-only narrows the whole market"),
    ]:
        result = home.cli("verify", *args)
        assert result.exit_code == 2, (args, result.output)
        assert text in result.output and result.output.count("\n") == 1, result.output


def test_dry_run_prices_whole_market_statements_and_counts_their_pages(home: Home) -> None:
    filled(home)
    result = home.cli("enqueue", "-t", "income", "--end-date", END_DATE, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("income: 1 call(s) with whole-market (income_vip: every company")
    assert lines[2].split() == ["whole-market", "1", "calls", "0s", "<-", "chosen"]
    assert lines[3].split()[:2] == ["per-symbol", "20"]
    assert lines[-1].startswith("total 1 call(s) in 1 task(s);")
    listed = home.cli("enqueue", "-t", "income", "--listed-only", "--dry-run")
    # Today's listed symbols only: the whole-market reply is kept to them.
    assert listed.output.startswith("dry run: income for 18 symbol(s)")
    assert re.search(r"per-symbol +18 calls", listed.output)
