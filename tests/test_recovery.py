"""Work the queue lost while the consumers run comes back without a restart: the sweep over a
real queue and ledger, then real consumers losing tasks out from under them."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from conftest import END_DATE, Home

from neo_cli.dates import parse
from neo_cli.ledger import Ledger
from neo_cli.pipeline import Pipeline
from neo_cli.providers.market import Market
from neo_cli.recovery import LostDownloads
from neo_cli.units import Unit

CODES = ["000001.SZ", "000002.SZ", "000004.SZ", "600000.SH"]


def lose(home: Home, *unit_ids: str) -> int:
    """What a storage error after a dequeue does: the task is gone from the queue."""
    conn = sqlite3.connect(home.data / "queues" / "fast.db", timeout=30)
    try:
        marks = ",".join("?" * len(unit_ids))
        with conn:
            return sum(
                conn.execute(f"delete from {table} where tid in ({marks})", unit_ids).rowcount
                for table in ("task", "schedule")
            )
    finally:
        conn.close()


def test_a_unit_missing_twice_is_enqueued_again_one_held_by_a_worker_is_not(home) -> None:
    pipeline = Pipeline(home.settings())
    ledger = Ledger(pipeline.paths.ledger)
    try:
        units = [Unit("income", {"ts_code": c}, (c,), "b1") for c in ("000001.SZ", "000002.SZ")]
        with ledger.adding("b1", "income", units):
            pipeline.enqueue_units(units)
        held: set[str] = set()
        sweeper = LostDownloads(pipeline, ledger, lambda: held, interval=0.01)
        assert sweeper.sweep() == 0  # nothing missing
        assert lose(home, units[0].id, units[1].id) == 2
        held.add(units[1].id)  # a worker has this one
        assert sweeper.sweep() == 0  # missing once: in transit, maybe
        assert sweeper.sweep() == 1  # missing twice: lost
        assert pipeline.fast.storage.queued_ids() == {units[0].id}
        assert sweeper.sweep() == 0  # back on the queue: not again
        # A unit seen once, then found (it was between a dequeue and its worker), is cleared.
        lose(home, units[0].id)
        assert sweeper.sweep() == 0
        pipeline.enqueue_units([units[0]])
        assert sweeper.sweep() == 0 and sweeper.sweep() == 0
        # Saved or dead units are nobody's business.
        ledger.mark_empty(units[1])
        held.clear()
        assert sweeper.sweep() == 0 and sweeper.sweep() == 0
    finally:
        ledger.close()


@pytest.mark.slow
def test_tasks_lost_while_consumers_run_are_back_in_the_queue_without_a_restart(home) -> None:
    # One call a minute: the first symbol goes at once, the rest wait in the queue (or its
    # schedule) for their slots, where the queue loses them.
    home.configure(rate_limits={"income": 1}, fast={"lost_sweep_seconds": 1.0})
    home.run("start", check=True)
    home.run("enqueue", "-t", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    codes = Market(20240101, 40, parse(END_DATE)).ts_codes("L")[:8]
    home.run("enqueue", "-t", "income", "--symbols", ",".join(codes), check=True)
    pipeline = Pipeline(home.settings())
    ledger = Ledger(home.data / "ledger.db")
    try:
        live = [r.unit.id for r in ledger.live_units() if r.unit.api == "income"]
        assert len(live) == len(codes)
        time.sleep(1.0)  # the first is called by now, the next waits in a worker for its slot
        waiting = pipeline.fast.storage.queued_ids() & set(live)
        assert len(waiting) >= 2, waiting
        assert lose(home, *waiting) == len(waiting)
        lost_at = time.monotonic()
        while not waiting <= pipeline.fast.storage.queued_ids():
            assert time.monotonic() - lost_at < 30, "lost tasks not back in the queue"
            time.sleep(0.2)
        took = time.monotonic() - lost_at
        # Back once, not twice: the queue holds each task one time.
        assert all(r.state == "queued" for r in ledger.live_units() if r.unit.id in waiting)
    finally:
        ledger.close()
        home.run("stop", check=True)
    log = (home.data / "logs" / "fast.log").read_text(encoding="utf-8")
    # Each lost task back once (a busy machine may find them over two sweeps).
    found = re.findall(r"recovery: (\d+) download\(s\) the queue lost re-enqueued", log)
    assert sum(int(n) for n in found) == len(waiting), found
    assert took < 10, took  # two looks a second apart (20 s apart by default: within a minute)
    queue = sqlite3.connect(home.data / "queues" / "fast.db")
    try:
        tids = [
            t for (t,) in queue.execute("select tid from task union all select tid from schedule")
        ]
    finally:
        queue.close()
    assert sorted(t for t in tids if t in waiting) == sorted(waiting)  # each once
