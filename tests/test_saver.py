"""The batch saver on a real DuckDB file and ledger, with a fake clock: when it flushes, what a
flush records, and that a failed flush keeps every row and writes it exactly once later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import locked_by_another_process

from neo_cli.db.database import Database
from neo_cli.db.saver import BatchSaver
from neo_cli.ledger import Ledger
from neo_cli.metrics import Recorder
from neo_cli.tasktypes import ADJ_FACTOR, DAILY, INCOME, STOCK_BASIC
from neo_cli.units import Unit

A, B = "000001.SZ", "600000.SH"


class FakeClock:
    def __init__(self, now: float = 5_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "neo.duckdb")
    database.ensure_schema()
    return database


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "ledger.db")
    yield led
    led.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(None, "test")


def make_saver(db, ledger, recorder, clock, batch_size=100, batch_timeout=30.0) -> BatchSaver:
    return BatchSaver(
        db,
        ledger,
        recorder,
        batch_size=batch_size,
        batch_timeout=batch_timeout,
        clock=clock,
        retry_base=1.0,
        retry_max=8.0,
    )


@pytest.fixture
def saver(db, ledger, recorder, clock) -> BatchSaver:
    """A saver whose flusher thread is not started: tests call `flush()` themselves."""
    return make_saver(db, ledger, recorder, clock)


def daily_rows(code: str, days: list[str], close: float = 10.0) -> list[list]:
    out = []
    for day in days:
        v = {"ts_code": code, "trade_date": day, "close": close}
        out.append([v.get(f) for f in DAILY.fields])
    return out


def saving_unit(ledger: Ledger, api: str, code: str) -> Unit:
    """A unit the fast side has downloaded and handed to the slow queue."""
    u = Unit(api, {"ts_code": code}, (code,), "b1")
    with ledger.adding("b1", api, [u]):
        pass
    ledger.mark_saving(u, "save-" + u.id, 0)
    return u


def count(db: Database, table: str) -> int:
    with db.reader() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def days(n: int, start: int = 1) -> list[str]:
    return [f"2024{(i // 28) + 1:02d}{(i % 28) + 1:02d}" for i in range(start - 1, start - 1 + n)]


# --------------------------------------------------------------------------- when it flushes


def test_nothing_buffered_is_never_due(saver: BatchSaver, clock: FakeClock) -> None:
    assert saver._due_in(clock()) == float("inf")
    assert saver.flush() is True
    assert saver.buffered_rows == 0


def test_due_after_batch_timeout_counted_from_the_oldest_frame(
    saver: BatchSaver, clock: FakeClock
) -> None:
    saver.add("daily", DAILY.fields, daily_rows(A, days(3)), "u1")
    assert saver.buffered_rows == 3
    assert saver._due_in(clock()) == 30.0
    clock.now += 20
    saver.add("daily", DAILY.fields, daily_rows(B, days(3)), "u2")  # does not reset the timer
    assert saver._due_in(clock()) == pytest.approx(10.0)
    saver.add("adj_factor", ADJ_FACTOR.fields, [[A, "20240102", 1.0]], "u3")
    assert saver._due_in(clock()) == pytest.approx(10.0)  # the oldest table decides
    clock.now += 10
    assert saver._due_in(clock()) == 0.0


def test_due_at_once_when_a_table_reaches_batch_size(saver: BatchSaver, clock: FakeClock) -> None:
    saver.add("daily", DAILY.fields, daily_rows(A, days(99)), "u1")
    assert saver._due_in(clock()) == 30.0
    saver.add("adj_factor", ADJ_FACTOR.fields, [[A, "20240102", 1.0]], "u2")
    assert saver._due_in(clock()) == 30.0  # 100 rows, but in two tables
    saver.add("daily", DAILY.fields, daily_rows(A, ["20240601"]), "u3")
    assert saver._due_in(clock()) == 0.0


def test_the_flusher_writes_at_batch_size_without_waiting_for_the_timer(
    db, ledger, recorder, clock
) -> None:
    saver = make_saver(db, ledger, recorder, clock, batch_size=50, batch_timeout=3600).start()
    try:
        saver.add("daily", DAILY.fields, daily_rows(A, days(49)), "u1")
        time.sleep(0.05)
        assert count(db, "daily") == 0
        saver.add("daily", DAILY.fields, daily_rows(B, days(1)), "u2")
        assert wait_for(lambda: recorder._counts[("saver", "batches")] == 1)
        assert count(db, "daily") == 50
        assert saver.buffered_rows == 0
    finally:
        assert saver.close() is True


def test_the_flusher_writes_when_the_timer_fires(db, ledger, recorder, clock) -> None:
    saver = make_saver(db, ledger, recorder, clock, batch_size=1000, batch_timeout=30).start()
    try:
        saver.add("daily", DAILY.fields, daily_rows(A, days(5)), "u1")
        clock.now += 29.9
        time.sleep(0.05)
        assert recorder._counts[("saver", "batches")] == 0
        clock.now += 0.1
        with saver._cond:  # the flusher re-reads the clock at least once a second; don't wait
            saver._cond.notify_all()
        assert wait_for(lambda: recorder._counts[("saver", "batches")] == 1)
        assert count(db, "daily") == 5
    finally:
        assert saver.close() is True


def wait_for(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


# --------------------------------------------------------------------------- what a flush does


def test_one_flush_writes_every_table_and_records_it(saver, db, ledger, recorder) -> None:
    u1 = saving_unit(ledger, "daily", A)
    u2 = saving_unit(ledger, "adj_factor", A)
    u3 = saving_unit(ledger, "stock_basic", "")
    saver.add("daily", DAILY.fields, daily_rows(A, ["20240102", "20240103"]), u1.id)
    saver.add("adj_factor", ADJ_FACTOR.fields, [[A, "20240102", 1.0], [A, "20240103", 1.1]], u2.id)
    basics = [[A, "000001", "平安银行", None, None, None, None, "L", "19910403", None, None]]
    saver.add("stock_basic", STOCK_BASIC.fields, basics, u3.id)
    assert saver.flush() is True
    assert (count(db, "daily"), count(db, "adj_factor"), count(db, "stock_basic")) == (2, 2, 1)
    assert [ledger.get(u.id).state for u in (u1, u2, u3)] == ["saved"] * 3
    assert ledger.watermarks("daily") == {A: "20240103"}
    assert ledger.watermarks("adj_factor") == {A: "20240103"}
    assert ledger.symbols() == [(A, "19910403", "")]
    assert ledger.table_rows() == {"daily": 2, "adj_factor": 2, "stock_basic": 1}
    assert saver.healthy and saver.last_error == "" and saver.buffered_rows == 0
    counts = recorder._counts
    assert counts[("saver", "batches")] == 1
    assert counts[("daily", "rows")] == 2 and counts[("daily", "batches")] == 1
    assert counts[("stock_basic", "rows")] == 1


def test_a_flush_is_one_transaction_across_tables(saver, db, ledger, recorder) -> None:
    u1 = saving_unit(ledger, "daily", A)
    u2 = saving_unit(ledger, "income", A)
    saver.add("daily", DAILY.fields, daily_rows(A, ["20240102"]), u1.id)
    report = {
        "ts_code": A,
        "ann_date": "20240320",
        "f_ann_date": "20240320",
        "end_date": "20231231",
        "report_type": "1",
        "update_flag": "0",
    }
    saver.add("income", INCOME.fields, [[report.get(f) for f in INCOME.fields]], u2.id)
    with db.writer() as conn:  # income's write will fail: daily's must not land alone
        conn.execute("DROP TABLE income")
    assert saver.flush() is False
    assert count(db, "daily") == 0
    assert [ledger.get(u.id).state for u in (u1, u2)] == ["saving", "saving"]
    assert "income" in saver.last_error
    db.ensure_schema()
    assert saver.flush() is True
    assert (count(db, "daily"), count(db, "income")) == (1, 1)
    assert [ledger.get(u.id).state for u in (u1, u2)] == ["saved", "saved"]


def test_quarantined_rows_still_complete_their_unit(saver, db, ledger, recorder) -> None:
    u = saving_unit(ledger, "daily", A)
    rows = daily_rows(A, ["20240102", "20241399"])
    saver.add("daily", DAILY.fields, rows, u.id)
    assert saver.flush() is True
    assert count(db, "daily") == 1 and count(db, "_quarantine") == 1
    assert ledger.get(u.id).state == "saved"
    assert recorder._counts[("daily", "quarantined")] == 1
    # Covered (asking again brings the same bad row) and known to the ledger, for verify.
    assert ledger.quarantined("daily") == {A: [("20241399", "bad date trade_date=20241399")]}


# --------------------------------------------------------------------------- failures


def test_a_failed_flush_keeps_every_row_backs_off_and_writes_them_once_later(
    tmp_path, ledger, recorder, clock
) -> None:
    path = tmp_path / "neo.duckdb"
    path.mkdir()  # a directory where the file should be: every open fails
    db = Database(path)
    saver = make_saver(db, ledger, recorder, clock)
    u = saving_unit(ledger, "daily", A)
    saver.add("daily", DAILY.fields, daily_rows(A, days(5)), u.id)

    assert saver.flush() is False
    assert not saver.healthy
    assert saver.last_error.startswith(f"database {path} could not be opened")
    assert saver.buffered_rows == 5
    assert ledger.get(u.id).state == "saving"
    assert recorder._counts[("saver", "batch_failures")] == 1
    assert recorder._counts[("daily", "batch_failures")] == 1
    assert recorder._gauges["db_error"] == saver.last_error
    for _ in range(3):
        assert saver.flush() is False
    assert saver.buffered_rows == 5

    # More rows arrive meanwhile, including a newer copy of a buffered key.
    saver.add("daily", DAILY.fields, daily_rows(A, ["20240101"], close=99.0), "late")
    path.rmdir()
    db.ensure_schema()
    assert saver.flush() is True
    assert saver.healthy and saver.last_error == ""
    assert recorder._gauges["db_error"] == ""
    with db.reader() as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT trade_date) FROM daily"
        ).fetchone() == (5, 5)
        assert conn.execute(
            "SELECT close FROM daily WHERE trade_date = DATE '2024-01-01'"
        ).fetchone() == (99.0,)  # the newer copy won
    assert ledger.get(u.id).state == "saved"
    assert saver.buffered_rows == 0
    assert recorder._counts[("daily", "rows")] == 5
    assert saver.flush() is True and count(db, "daily") == 5  # nothing left to write again
    assert saver._due_in(clock()) == float("inf")


def test_a_file_locked_by_another_process_delays_the_flush(saver, db, ledger) -> None:
    u = saving_unit(ledger, "daily", A)
    saver.add("daily", DAILY.fields, daily_rows(A, days(3)), u.id)
    with locked_by_another_process(db.path) as proc:
        assert saver.flush() is False
        assert saver.last_error.startswith(f"database {db.path} is locked by another program")
        assert f"pid {proc.pid}" in saver.last_error
        assert not saver.healthy
    assert saver.flush() is True
    assert count(db, "daily") == 3
    assert ledger.get(u.id).state == "saved"


def test_a_failed_flush_of_a_dead_unit_stays_dead(saver, db, ledger) -> None:
    u = saving_unit(ledger, "daily", A)
    saver.add("daily", DAILY.fields, daily_rows(A, days(1)), u.id)
    ledger.mark_dead(u, "given up", "PermanentError")
    assert saver.flush() is True
    assert ledger.get(u.id).state == "dead"


# --------------------------------------------------------------------------- close


def test_close_writes_what_is_left(db, ledger, recorder, clock) -> None:
    saver = make_saver(db, ledger, recorder, clock).start()
    u = saving_unit(ledger, "daily", A)
    saver.add("daily", DAILY.fields, daily_rows(A, days(7)), u.id)
    assert saver.close() is True
    assert count(db, "daily") == 7
    assert ledger.get(u.id).state == "saved"
    assert saver._thread is not None and not saver._thread.is_alive()


def test_close_reports_rows_it_could_not_write(tmp_path, ledger, recorder, clock) -> None:
    path = tmp_path / "neo.duckdb"
    path.mkdir()
    saver = make_saver(Database(path), ledger, recorder, clock)
    saver.add("daily", DAILY.fields, daily_rows(A, days(2)), "u")
    assert saver.flush() is False
    assert saver.close(deadline=0) is False
    assert saver.buffered_rows == 2


def test_adds_from_many_threads_while_the_flusher_runs_are_all_written_once(
    db, ledger, recorder, clock
) -> None:
    saver = make_saver(db, ledger, recorder, clock, batch_size=37).start()

    def worker(code: str) -> None:
        for i in range(20):
            saver.add("daily", DAILY.fields, daily_rows(code, days(5, start=5 * i + 1)), code)

    codes = [f"{i:06d}.SZ" for i in range(8)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert saver.close() is True
    assert count(db, "daily") == 8 * 100
    assert recorder._counts[("daily", "rows")] == 800
    assert recorder._counts[("daily", "replaced")] == 0
    assert saver.buffered_rows == 0


# --------------------------------------------------------------------------- back-off


def broken_saver(tmp_path: Path, ledger, recorder, clock, rows: int) -> BatchSaver:
    path = tmp_path / "broken.duckdb"
    path.mkdir()
    saver = make_saver(Database(path), ledger, recorder, clock, batch_size=100, batch_timeout=30)
    saver.add("daily", DAILY.fields, daily_rows(A, days(rows)), "u")
    return saver


def test_a_full_batch_that_fails_retries_after_a_doubling_back_off(
    tmp_path, ledger, recorder, clock
) -> None:
    saver = broken_saver(tmp_path, ledger, recorder, clock, rows=100)
    assert saver._due_in(clock()) == 0.0
    waits = []
    for _ in range(6):
        assert saver.flush() is False
        waits.append(saver._due_in(clock()))
        clock.now += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # retry_base 1 s, retry_max 8 s


def test_an_overdue_batch_that_fails_retries_after_the_back_off(
    tmp_path, ledger, recorder, clock
) -> None:
    saver = broken_saver(tmp_path, ledger, recorder, clock, rows=5)
    clock.now += 30  # the timer fired
    assert saver._due_in(clock()) == 0.0
    assert saver.flush() is False
    assert saver._due_in(clock()) == 1.0  # retry_base, not batch_timeout (30 s)


def test_an_idle_saver_writes_a_partial_batch_once_rows_stop_coming(db, ledger, recorder, clock):
    saver = BatchSaver(
        db, ledger, recorder, batch_size=1000, batch_timeout=30.0, idle_flush=2.0, clock=clock
    )
    saver.add("daily", DAILY.fields, daily_rows(A, ["20240102"]), "u1")
    assert saver._due_in(clock.now) == pytest.approx(2.0)
    clock.now += 1.5
    saver.add("daily", DAILY.fields, daily_rows(B, ["20240102"]), "u2")  # more arrive
    assert saver._due_in(clock.now) == pytest.approx(2.0)
    clock.now += 2.0
    assert saver._due_in(clock.now) == 0.0
    # Under a steady stream the oldest rows still go out at batch_timeout.
    busy = BatchSaver(
        db, ledger, recorder, batch_size=1000, batch_timeout=3.0, idle_flush=2.0, clock=clock
    )
    for i in range(4):
        busy.add("daily", DAILY.fields, daily_rows(A, [f"2024010{i + 2}"]), f"b{i}")
        clock.now += 1.0
    assert busy._due_in(clock.now) == 0.0


@contextmanager
def fed(saver: BatchSaver) -> Iterator[None]:
    """Rows keep coming (50-row units, a batch each) while the block runs; the saver is
    closed, everything written, after it."""
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < 20_000:
            saver.add("daily", DAILY.fields, daily_rows(f"{i:06d}.SZ", days(50)), f"u{i}")
            i += 1
            time.sleep(0.001)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while saver.database.held_left(saver.hold) is None:  # the first flush has the file
            assert time.monotonic() < deadline, "no flush"
            time.sleep(0.002)
        yield
    finally:
        stop.set()
        feeder.join()
        assert saver.close()


def test_while_rows_keep_coming_the_file_is_reopened_every_hold_seconds(
    db, ledger, recorder
) -> None:
    saver = BatchSaver(db, ledger, recorder, batch_size=50, batch_timeout=30, hold=0.3).start()
    with fed(saver):
        opened, last = 0, None
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            left = db.held_left(saver.hold)
            if left is not None and last is not None and left > last + 0.05:
                opened += 1  # a younger connection than the one seen before
            last = left if left is not None else last
            time.sleep(0.005)
    assert 3 <= opened <= 8, opened  # 2 s / (0.3 s hold + a flush)


def test_once_nothing_is_buffered_the_file_is_free_before_the_rows_count_as_saved(
    db, ledger, recorder
) -> None:
    """Whoever waits for `neo status` to say saved finds the file closed: an idle flusher
    does not hold it."""
    import duckdb

    saver = BatchSaver(db, ledger, recorder, batch_size=2, batch_timeout=30, hold=60).start()
    try:
        saver.add("daily", DAILY.fields, daily_rows(A, days(2)), "u1")
        deadline = time.monotonic() + 10
        while recorder._counts[("daily", "rows")] < 2:
            assert time.monotonic() < deadline, "no flush"
            time.sleep(0.002)
        conn = duckdb.connect(str(db.path), read_only=True)  # raises while the saver holds it
        assert conn.execute("SELECT count(*) FROM daily").fetchone() == (2,)
        conn.close()
    finally:
        assert saver.close()


READER = """
import sys, time
from pathlib import Path
from neo_cli.db.database import Database
t = time.monotonic()
with Database(Path(sys.argv[1])).reader(wait=20) as conn:
    n = conn.execute("SELECT count(*) FROM daily").fetchone()[0]
print(n, round(time.monotonic() - t, 3), flush=True)
"""

PLAIN_READER = """
import sys, time, duckdb
t = time.monotonic()
while True:
    try:
        conn = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.Error:
        if time.monotonic() - t > 20:
            raise
        time.sleep(0.02)
print(conn.execute("SELECT count(*) FROM daily").fetchone()[0], round(time.monotonic() - t, 3))
"""


@pytest.mark.parametrize(
    ("reader", "hold"),
    [
        (READER, 60.0),  # neo's reader asks: let in at once, however long the hold
        (PLAIN_READER, 0.3),  # the duckdb CLI, a notebook: retries, and finds a gap
    ],
    ids=["asks", "retries"],
)
def test_a_reader_gets_in_while_flushes_follow_each_other(
    db, ledger, recorder, reader, hold
) -> None:
    import subprocess
    import sys

    saver = BatchSaver(db, ledger, recorder, batch_size=50, batch_timeout=30, hold=hold).start()
    with fed(saver):
        out = subprocess.run(
            [sys.executable, "-c", reader, str(db.path)], capture_output=True, text=True, timeout=60
        )
    count, waited = out.stdout.split()
    assert int(count) > 0 and float(waited) < 3, out
