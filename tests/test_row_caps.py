"""Truncated replies: a server whose real row cap is below the configured one. A reply marked
`has_more` is paged on whatever the configured cap; one that is not needs the cap configured
(`[row_caps]`) — then a reply at it is never taken for the whole range."""

from __future__ import annotations

from conftest import END_DATE, assert_rows_once, tushare_home
from tushare_server import tushare_server

TOKEN = "caps-token"
SYMBOLS = 40
CODES = ["000001.SZ", "000002.SZ", "600000.SH"]  # listed for decades: thousands of bars each
REAL_CAP = 700


def inline_daily(tmp_path, server, **sections) -> str:
    """Daily bars of CODES by an inline run; what it said on stderr."""
    home = tushare_home(tmp_path, server.url, TOKEN, **sections)
    said = ""
    for args in (("-t", "stock_basic"), ("-t", "daily", "--symbols", ",".join(CODES))):
        result = home.run("enqueue", *args, "--end-date", END_DATE, "--inline")
        assert result.returncode == 0, result.stderr
        said += result.stderr
    assert_rows_once(home, "daily", CODES, SYMBOLS)
    return said


def test_has_more_below_the_configured_cap_pages_on(tmp_path) -> None:
    with tushare_server(
        token=TOKEN,
        symbols=SYMBOLS,
        end_date=END_DATE,
        row_caps={"daily": REAL_CAP},
        has_more_flag=True,
    ) as server:
        log = inline_daily(tmp_path, server)  # packed calls, then each symbol alone
        stats = server.stats()["apis"]["daily"]
    assert stats["accepted"] > len(CODES) * 5  # thousands of bars each, 700 a reply
    assert (
        f"the API cut a reply at {REAL_CAP} rows (has_more), below [row_caps] daily = 6000" in log
    )


def test_without_has_more_the_configured_cap_is_what_counts(tmp_path) -> None:
    with tushare_server(
        token=TOKEN, symbols=SYMBOLS, end_date=END_DATE, row_caps={"daily": REAL_CAP}
    ) as server:
        log = inline_daily(tmp_path, server, row_caps={"daily": REAL_CAP})
        stats = server.stats()["apis"]["daily"]
    # Planned under the real cap (90% of it a call): no reply reached it, nothing cut.
    assert stats["accepted"] >= len(CODES) * 5
    assert "below [row_caps]" not in log
