"""The ledger on a real SQLite file: the unit state machine, the catalog and dead letters."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from neo_cli.ledger import LIVE, STATES, Ledger, UnitRecord
from neo_cli.units import Unit

A, B, C = "000001.SZ", "600000.SH", "830799.BJ"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "ledger.db", clock=clock)
    yield led
    led.close()


def unit(code: str = A, api: str = "daily", batch: str = "b1", **params) -> Unit:
    return Unit(
        api,
        {"ts_code": code, "start_date": "20240101", "end_date": "20240131", **params},
        (code,),
        batch,
        3,
    )


def add(ledger: Ledger, *units: Unit, batch: str = "b1", task_type: str = "daily") -> None:
    with ledger.adding(batch, task_type, list(units)):
        pass


def state(ledger: Ledger, u: Unit) -> str | None:
    rec = ledger.get(u.id)
    return rec.state if rec else None


# --------------------------------------------------------------------------- enqueue


def test_adding_records_units_queued(ledger: Ledger, clock: FakeClock) -> None:
    u = unit()
    add(ledger, u)
    rec = ledger.get(u.id)
    assert rec == UnitRecord(
        unit=u,
        state="queued",
        attempts=0,
        rows=None,
        save_id=None,
        error=None,
        error_class=None,
        created=clock.now,
        updated=clock.now,
    )
    assert rec.unit.params == u.params and rec.unit.codes == (A,) and rec.unit.priority == 3


def test_adding_rolls_back_when_its_body_raises(ledger: Ledger) -> None:
    u = unit()
    with pytest.raises(RuntimeError, match="queue down"), ledger.adding("b1", "daily", [u]):
        assert ledger.get(u.id) is not None  # visible inside its own transaction
        raise RuntimeError("queue down")
    assert ledger.get(u.id) is None
    assert ledger.batch("b1") is None
    assert ledger.live_count() == 0
    add(ledger, u)  # and the ledger still works afterwards
    assert state(ledger, u) == "queued"


def test_adding_the_same_unit_twice_fails_and_records_nothing_new(ledger: Ledger) -> None:
    u, v = unit(A), unit(B)
    add(ledger, u)
    with pytest.raises(sqlite3.IntegrityError), ledger.adding("b2", "daily", [v, u]):
        pass
    assert ledger.get(v.id) is None
    assert ledger.batch("b2") is None


def test_batches_count_units_across_chunks(ledger: Ledger, clock: FakeClock) -> None:
    add(ledger, unit(A), unit(B))
    clock.now += 5
    add(ledger, unit(C))  # a second chunk of the same enqueue
    assert ledger.batch("b1") == ("daily", clock.now - 5, {"queued": 3})
    assert ledger.batch("nope") is None


def test_live_codes_and_count(ledger: Ledger) -> None:
    q, r, s, done, dead = unit(A), unit(B), unit(C), unit("000002.SZ"), unit("000003.SZ")
    other_api = unit("000004.SZ", api="adj_factor")
    add(ledger, q, r, s, done, dead, other_api)
    ledger.attempt_failed(r, "timeout", "TransientError")
    ledger.mark_saving(s, "save-1", 10)
    ledger.mark_empty(done)
    ledger.mark_dead(dead, "bad params", "PermanentError")
    assert ledger.live_codes("daily") == {A, B, C}
    assert ledger.live_codes("adj_factor") == {"000004.SZ"}
    assert ledger.live_codes("income") == set()
    assert ledger.live_count("daily") == 3
    assert ledger.live_count() == 4
    multi = Unit("stock_basic", {"list_status": "L"}, (), "b1")
    add(ledger, multi)
    assert ledger.live_codes("stock_basic") == set()  # no codes: nothing to skip by symbol
    assert ledger.live_count("stock_basic") == 1


# --------------------------------------------------------------------------- fast consumer


def test_attempt_failed_counts_attempts(ledger: Ledger, clock: FakeClock) -> None:
    u = unit()
    add(ledger, u)
    clock.now += 1
    assert ledger.attempt_failed(u, "timeout", "TransientError") == 1
    assert ledger.attempt_failed(u, "reset", "TransientError") == 2
    rec = ledger.get(u.id)
    assert (rec.state, rec.attempts, rec.error, rec.error_class) == (
        "retrying",
        2,
        "reset",
        "TransientError",
    )
    assert rec.updated == clock.now and rec.created == clock.now - 1


def test_note_records_why_without_counting(ledger: Ledger) -> None:
    u = unit()
    add(ledger, u)
    ledger.note(u, "rate limited", "RateLimited")
    rec = ledger.get(u.id)
    assert (rec.state, rec.attempts, rec.error) == ("queued", 0, "rate limited")


def test_mark_saving_with_a_save_id_and_without(ledger: Ledger) -> None:
    u, v = unit(A), unit(B)
    add(ledger, u, v)
    ledger.attempt_failed(u, "timeout", "TransientError")
    ledger.mark_saving(u, "save-1", 250)
    rec = ledger.get(u.id)
    assert (rec.state, rec.save_id, rec.rows, rec.error, rec.attempts) == (
        "saving",
        "save-1",
        250,
        None,
        1,
    )
    ledger.mark_empty(v)  # no rows to save: done at once
    assert (ledger.get(v.id).state, ledger.get(v.id).rows) == ("saved", 0)


def test_mark_dead_and_dead_letters(ledger: Ledger) -> None:
    u, v = unit(A), unit(B, api="income")
    add(ledger, u, v)
    ledger.mark_dead(u, "no permission", "AuthError")
    ledger.mark_dead(v, "bad params", "PermanentError")
    assert {r.unit.id for r in ledger.dead()} == {u.id, v.id}
    [rec] = ledger.dead("income")
    assert (rec.unit, rec.error, rec.error_class, rec.state) == (
        v,
        "bad params",
        "PermanentError",
        "dead",
    )


def test_unknown_units_are_recorded_on_first_sight(ledger: Ledger) -> None:
    """A task enqueued before a crash kept its ledger row from committing."""
    u, v, w = unit(A), unit(B), unit(C)
    assert ledger.attempt_failed(u, "timeout", "TransientError") == 1
    assert state(ledger, u) == "retrying"
    ledger.mark_saving(v, "save-9", 5)
    assert state(ledger, v) == "saving"
    ledger.mark_dead(w, "bad", "PermanentError")
    assert state(ledger, w) == "dead"
    assert ledger.get(v.id).unit == v
    ledger.note(unit("000002.SZ"), "paused", "RateLimited")
    assert ledger.live_count() == 3


def test_late_messages_never_move_a_unit_backwards(ledger: Ledger) -> None:
    saving, saved, dead = unit(A), unit(B), unit(C)
    add(ledger, saving, saved, dead)
    ledger.mark_saving(saving, "s1", 1)
    ledger.mark_empty(saved)
    ledger.mark_dead(dead, "bad", "PermanentError")
    # A duplicate delivery of a finished download fails or succeeds again:
    assert ledger.attempt_failed(saving, "late", "TransientError") == 0
    assert ledger.attempt_failed(saved, "late", "TransientError") == 0
    ledger.mark_saving(saved, "s2", 1)
    ledger.mark_saving(dead, "s3", 1)
    ledger.mark_dead(saved, "late", "PermanentError")
    assert [state(ledger, u) for u in (saving, saved, dead)] == ["saving", "saved", "dead"]
    assert ledger.get(saving.id).save_id == "s1"


def test_mark_dead_from_saving_is_allowed(ledger: Ledger) -> None:
    u = unit()
    add(ledger, u)
    ledger.mark_saving(u, "s1", 1)
    ledger.mark_dead(u, "gave up", "PermanentError")
    assert state(ledger, u) == "dead"


# --------------------------------------------------------------------------- slow consumer


def test_record_flush_marks_saved_and_moves_the_catalog(ledger: Ledger, clock: FakeClock) -> None:
    u, v = unit(A), unit(B)
    add(ledger, u, v)
    ledger.mark_saving(u, "s1", 2)
    ledger.mark_saving(v, "s2", 1)
    clock.now += 10
    ledger.record_flush(
        [u.id, v.id],
        {"daily": {A: "20240131", B: "20240115"}},
        [(A, "平安银行", "L", "19910403", None)],
        {"daily": 3},
    )
    assert [state(ledger, x) for x in (u, v)] == ["saved", "saved"]
    assert ledger.get(u.id).updated == clock.now
    assert ledger.watermarks("daily") == {A: "20240131", B: "20240115"}
    assert ledger.watermarks("adj_factor") == {}
    assert ledger.symbols() == [(A, "19910403", "")]
    assert ledger.table_rows() == {"daily": 3}


def test_record_flush_never_resurrects_a_dead_unit(ledger: Ledger) -> None:
    u = unit()
    add(ledger, u)
    ledger.mark_saving(u, "s1", 1)
    ledger.mark_dead(u, "given up", "PermanentError")
    ledger.record_flush([u.id], {})
    assert state(ledger, u) == "dead"
    assert ledger.get(u.id).error == "given up"


def test_record_flush_of_units_the_ledger_never_saw_is_harmless(ledger: Ledger) -> None:
    ledger.record_flush(["no-such-unit"], {"daily": {A: "20240105"}})
    assert ledger.get("no-such-unit") is None
    assert ledger.watermarks("daily") == {A: "20240105"}


def test_record_flush_of_many_units(ledger: Ledger) -> None:
    units = [unit(f"{i:06d}.SZ") for i in range(1234)]
    add(ledger, *units)
    ledger.record_flush([u.id for u in units], {})
    assert ledger.state_counts() == {"daily": {"saved": 1234}}


def test_watermarks_only_move_forward(ledger: Ledger) -> None:
    ledger.record_flush([], {"daily": {A: "20240131"}})
    ledger.record_flush([], {"daily": {A: "20240105", B: "20240110"}})  # an older range later
    assert ledger.watermarks("daily") == {A: "20240131", B: "20240110"}
    ledger.record_flush([], {"daily": {A: "20240201"}})
    assert ledger.watermarks("daily")[A] == "20240201"


def test_symbols_are_replaced_and_filtered_by_status(ledger: Ledger) -> None:
    ledger.record_flush(
        [],
        {},
        [
            (B, "b", "L", "19991110", None),
            (A, "a", "L", "19910403", None),
            (C, "c", "D", "20200101", "20230105"),
            ("000004.SZ", "d", "P", None, None),
        ],
    )
    assert ledger.symbols() == [(A, "19910403", ""), (B, "19991110", "")]  # sorted by code
    assert ledger.symbols(("D", "P")) == [("000004.SZ", "", ""), (C, "20200101", "20230105")]
    ledger.record_flush([], {}, [(A, "a", "D", "19910403", "20240301")])  # delisted since
    assert ledger.symbols() == [(B, "19991110", "")]
    assert ledger.symbols(()) == []


def test_rebuild_catalog_replaces_everything(ledger: Ledger) -> None:
    ledger.record_flush(
        [],
        {"daily": {A: "20240131", B: "20240131"}},
        [(A, "a", "L", "", None)],
        {"daily": 10, "income": 4},
    )
    ledger.rebuild_catalog(
        {"daily": {A: "20240101"}}, [(B, "b", "L", "19991110", None)], {"daily": 1}
    )
    assert ledger.watermarks("daily") == {A: "20240101"}  # may move back: the truth wins
    assert ledger.symbols() == [(B, "19991110", "")]
    assert ledger.table_rows() == {"daily": 1}


# --------------------------------------------------------------------------- recovery, dead letters


def test_requeued_goes_back_to_queued_keeping_attempts(ledger: Ledger) -> None:
    u = unit()
    add(ledger, u)
    ledger.attempt_failed(u, "timeout", "TransientError")
    ledger.mark_saving(u, "s1", 5)
    ledger.requeued([u.id])
    rec = ledger.get(u.id)
    assert (rec.state, rec.save_id, rec.attempts) == ("queued", None, 1)


def test_revive_gives_dead_units_fresh_attempts(ledger: Ledger) -> None:
    u, v = unit(A), unit(B)
    add(ledger, u, v)
    for _ in range(3):
        ledger.attempt_failed(u, "timeout", "TransientError")
    ledger.mark_dead(u, "attempts spent", "TransientError")
    ledger.attempt_failed(v, "timeout", "TransientError")
    with ledger.reviving([u.id, v.id]):
        pass
    assert (state(ledger, u), ledger.get(u.id).attempts) == ("queued", 0)
    assert (state(ledger, v), ledger.get(v.id).attempts) == ("retrying", 1)  # not dead: untouched


def test_purge_deletes_only_dead_units(ledger: Ledger) -> None:
    units = [unit(f"{i:06d}.SZ") for i in range(1100)]
    add(ledger, *units)
    for u in units[:600]:
        ledger.mark_dead(u, "bad", "PermanentError")
    assert ledger.purge([u.id for u in units]) == 600
    assert ledger.state_counts() == {"daily": {"queued": 500}}
    assert ledger.purge([]) == 0


def test_find_by_prefix(ledger: Ledger) -> None:
    u = Unit("daily", {}, (A,), "b1", id="abc123")
    v = Unit("daily", {}, (B,), "b1", id="abd456")
    w = Unit("daily", {}, (C,), "b1", id="zzz")
    add(ledger, w, v, u)
    assert [r.unit.id for r in ledger.find("ab")] == ["abc123", "abd456"]
    assert [r.unit.id for r in ledger.find("ab", limit=1)] == ["abc123"]
    assert ledger.find("abc1")[0].unit == u
    assert ledger.find("nothing") == []


def test_state_counts_and_live_units(ledger: Ledger) -> None:
    q, r, s, d = unit(A), unit(B), unit(C, api="income"), unit("000002.SZ", api="income")
    add(ledger, q, r, s, d)
    ledger.attempt_failed(r, "t", "TransientError")
    ledger.mark_saving(s, "s", 1)
    ledger.mark_dead(d, "x", "PermanentError")
    assert ledger.state_counts() == {
        "daily": {"queued": 1, "retrying": 1},
        "income": {"saving": 1, "dead": 1},
    }
    assert {x.unit.id for x in ledger.live_units()} == {q.id, r.id, s.id}
    assert [x.unit.id for x in ledger.live_units(("saving",))] == [s.id]
    assert set(LIVE) < set(STATES)


def test_the_ledger_is_durable_across_connections(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    first = Ledger(path, durable=True, clock=clock)
    u = unit()
    add(first, u)
    first.record_flush([], {"daily": {A: "20240102"}})
    first.close()
    second = Ledger(path, clock=clock)  # the DDL runs again harmlessly
    try:
        assert second.get(u.id).unit == u
        assert second.watermarks("daily") == {A: "20240102"}
    finally:
        second.close()


def test_prune_forgets_finished_units_but_keeps_coverage_and_dead_letters(tmp_path) -> None:
    now = [1_796_000_000.0]
    ledger = Ledger(tmp_path / "ledger.db", clock=lambda: now[0])
    try:
        params = {"ts_code": A, "start_date": "20240101", "end_date": "20240131"}
        saved, dead, live = (
            Unit("daily", dict(params), (A,), "old"),
            Unit(
                "daily", {**params, "start_date": "20240201", "end_date": "20240229"}, (A,), "old"
            ),
            Unit("income", {**params}, (A,), "old"),
        )
        with ledger.adding("old", "daily", [saved, dead, live], universe=[A]):
            pass
        ledger.mark_empty(saved)
        ledger.mark_dead(dead, "bad", "permanent")
        now[0] += 29 * 86_400
        assert ledger.prune(30) == 0  # not old enough
        now[0] += 2 * 86_400
        assert ledger.prune(30) == 1
        assert ledger.get(saved.id) is None
        assert ledger.get(dead.id).state == "dead" and ledger.get(live.id).state == "queued"
        assert ledger.coverage("daily") == {A: [("20240101", "20240131")]}
        assert ledger.universe("old") == {A}  # the batch still has units
        ledger.mark_empty(live)
        now[0] += 31 * 86_400
        assert ledger.prune(30) == 1
        assert ledger.universe("old") == {A}  # the dead letter's batch stays with it
    finally:
        ledger.close()


def test_mark_saving_many_is_mark_saving_for_each_in_one_go(ledger: Ledger) -> None:
    """The saves of downloads that finished together: the same transitions as one at a time."""
    queued, retrying, saved, unseen = unit(A), unit(B), unit(C), unit("000002.SZ")
    add(ledger, queued, retrying, saved)
    ledger.attempt_failed(retrying, "timeout", "TransientError")
    ledger.mark_empty(saved)
    ledger.mark_saving_many(
        [(queued, "s1", 3), (retrying, "s2", 4), (saved, "s3", 5), (unseen, "s4", 6)]
    )
    recs = [ledger.get(u.id) for u in (queued, retrying, saved, unseen)]
    assert [(r.state, r.save_id, r.rows, r.error) for r in recs] == [
        ("saving", "s1", 3, None),
        ("saving", "s2", 4, None),
        ("saved", None, 0, None),  # never backwards
        ("saving", "s4", 6, None),  # recorded on first sight
    ]
    assert recs[1].attempts == 1
