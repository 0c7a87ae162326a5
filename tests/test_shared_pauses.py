"""Pauses and stops are shared: what one process learns from the API, every process on the
budget obeys — and a cap outlives a restart, while a new run tries a stopped token again.

Each "process" here is a downloader built from the settings the way a consumer or an inline run
builds one (its own limiter backend on the data directory's file), against the protocol server.
"""

from __future__ import annotations

import time

import pytest
from tushare_server import TushareServer

from neo_cli import config
from neo_cli.control import preflight
from neo_cli.download import attempt, build_downloader
from neo_cli.ledger import Ledger
from neo_cli.metrics import Recorder
from neo_cli.paths import Paths
from neo_cli.units import Unit

TOKEN = "pauses-token"


def unit(api: str, code: str = "000001.SZ") -> Unit:
    return Unit(api, {"ts_code": code}, (code,))


@pytest.fixture
def server():
    with TushareServer(token=TOKEN, symbols=10, hourly_limits={"income": 1}) as srv:
        yield srv


def settings_of(home):
    return config.load(home.config, environ=home.env)


def downloader(home):
    settings = settings_of(home)
    ledger = Ledger(Paths(settings.data_dir).ensure().ledger)
    return build_downloader(settings, ledger, Recorder(None, "t")), ledger


def configure(home, server, token: str = TOKEN) -> None:
    home.configure(provider={"name": "tushare"}, provider__tushare={"url": server.url})
    home.env["TUSHARE_TOKEN"] = token


def test_an_hourly_cap_seen_by_one_process_pauses_all_and_survives_a_restart(home, server) -> None:
    configure(home, server)
    (one, l1), (two, l2) = downloader(home), downloader(home)
    assert attempt(one, unit("income")).reply is not None
    capped = attempt(one, unit("income", "000002.SZ"))  # the server's hourly cap: 1 call
    assert capped.retry_in is not None and capped.retry_in > 1
    top_of_hour = time.time() - time.time() % 3600 + 3600
    # The other process never called, yet it waits for the same top of the hour ...
    until, reason = two.limiters["income"].paused()
    assert until == pytest.approx(top_of_hour, abs=2) and "hour" in reason
    assert attempt(two, unit("income", "000004.SZ")).retry_in is not None
    calls = (
        server.stats()["apis"]["income"]["accepted"] + server.stats()["apis"]["income"]["rejected"]
    )
    assert calls == 2  # ... without spending a call to find out
    # ... and so does a process started after both are gone.
    for rt, ledger in ((one, l1), (two, l2)):
        rt.provider.close()
        rt.limiters.close()
        ledger.close()
    preflight(settings_of(home))  # what `neo start` runs: a cap is no stop, it stays
    three, l3 = downloader(home)
    assert three.limiters["income"].paused()[0] == pytest.approx(top_of_hour, abs=2)
    assert three.limiters["daily"].paused()[0] <= time.time()  # other interfaces run on
    three.provider.close()
    l3.close()


def test_a_bad_token_stops_every_process_until_a_new_run(home, server) -> None:
    configure(home, server, token="wrong-token")
    (one, l1), (two, l2) = downloader(home), downloader(home)
    out = attempt(one, unit("daily"))
    assert out.retry_in is not None and out.reply is None and not out.dead
    for api in ("daily", "income", "stock_basic"):
        until, reason = two.limiters[api].paused()
        assert until == float("inf") and reason.startswith("stopped: ")
    assert attempt(two, unit("income")).retry_in is not None
    assert server.stats()["apis"]["income"]["accepted"] == 0
    for rt, ledger in ((one, l1), (two, l2)):
        rt.provider.close()
        ledger.close()
    # A fixed token is another budget: nothing of the bad one's stop applies to it.
    configure(home, server, token=TOKEN)
    fixed, l3 = downloader(home)
    assert fixed.limiters["daily"].paused()[0] <= time.time()
    assert attempt(fixed, unit("daily")).reply is not None
    fixed.provider.close()
    l3.close()
    # The same token again: a new `neo start` lifts the stop, and one call finds it again.
    configure(home, server, token="wrong-token")
    preflight(settings_of(home))
    again, l4 = downloader(home)
    assert again.limiters["daily"].paused()[0] <= time.time()
    attempt(again, unit("daily"))
    assert again.limiters["income"].paused()[0] == float("inf")
    again.provider.close()
    l4.close()
