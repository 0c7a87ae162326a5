"""One contract for every queue storage (SQLite, Redis): what neo needs of a queue, run
against each on real files and a real redis-server — Huey's `StorageTests` idea."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from neo_cli.queues.factory import make_huey

KINDS = ["daily", "adj_factor", "income"]
_ids = itertools.count()


@pytest.fixture(params=["sqlite", "redis"])
def huey(request, tmp_path):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        h = make_huey("fast", storage="redis", path=tmp_path / "unused.db", kinds=KINDS,
                      fsync=False, redis_url=server.url, cluster=uuid.uuid4().hex)  # fmt: skip
        h.storage.lease = 1.0
        h.storage.owner = "box:1:fast"
    else:
        h = make_huey("fast", storage="sqlite", path=tmp_path / "fast.db", kinds=KINDS, fsync=False)
    ran: list[tuple[str, int]] = []

    @h.task(name="download")
    def download(kind, n):
        ran.append((kind, n))

    h.ran = ran
    h.download = download
    yield h
    h.storage.close() if hasattr(h.storage, "close") else None


def task(h, kind: str, priority: int = 0, tid: str | None = None):
    n = next(_ids)
    return h.download.task_class(args=(kind, n), id=tid or f"{kind}-{n}", priority=priority or None)


def items(h, tasks):
    return [(h.serialize_task(t), t.priority, t.args[0], t.id) for t in tasks]


def take(h):
    data = h.storage.dequeue()
    return None if data is None else h.deserialize_task(data)


def test_enqueue_many_counts_and_ids(huey):
    tasks = [task(huey, k) for k in ("daily", "daily", "income")]
    assert huey.storage.enqueue_many(items(huey, tasks)) == 3
    assert huey.storage.counts_by_kind() == {"daily": (2, 0), "income": (1, 0)}
    assert huey.storage.queued_ids() == {t.id for t in tasks}
    assert huey.storage.queue_size() == 3 and huey.pending_count() == 3


def test_the_gate_decides_and_priority_then_age_order_across_kinds(huey):
    low, high, old, young = (task(huey, "daily"), task(huey, "income", 5),
                             task(huey, "adj_factor"), task(huey, "adj_factor"))  # fmt: skip
    huey.storage.enqueue_many(items(huey, [low, high, old, young]))
    taken: list[str] = []
    huey.storage.taken = taken.append
    huey.storage.gate = lambda: ["daily", "adj_factor"]
    assert take(huey).id == low.id  # oldest of the allowed, the high one not allowed
    huey.storage.gate = lambda: []
    assert take(huey) is None
    huey.storage.gate = lambda: None
    assert [take(huey).id for _ in range(3)] == [high.id, old.id, young.id]
    assert take(huey) is None
    assert taken == ["daily", "income", "adj_factor", "adj_factor"]


def test_a_scheduled_task_waits_then_runs(huey):
    later = task(huey, "income")
    later.eta = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=30)
    huey.add_schedule(later)
    huey.enqueue(task(huey, "daily"))
    assert huey.storage.counts_by_kind() == {"income": (0, 1), "daily": (1, 0)}
    assert huey.storage.backlog() == 2  # the queue and the schedule, in one look
    assert take(huey).args[0] == "daily"
    assert later.id in huey.storage.queued_ids()
    now = datetime.now(UTC).replace(tzinfo=None)
    for due in huey.read_schedule(now):  # what the consumer's scheduler does
        huey.enqueue(due)
    assert take(huey) is None
    for due in huey.read_schedule(now + timedelta(seconds=31)):
        huey.enqueue(due)
    got = take(huey)
    assert got is not None and got.id == later.id
    assert huey.storage.counts_by_kind() == {}


def test_executing_a_task_ends_its_lease(huey):
    t = task(huey, "daily")
    huey.enqueue(t)
    got = take(huey)
    if huey.storage.has_leases:
        assert huey.storage.leased_ids() == {t.id}
        assert huey.storage.queued_ids() == set()  # held, not waiting
    huey.execute(got)
    assert huey.ran == [("daily", t.args[1])]
    assert huey.storage.leased_ids() == set()


def test_a_lease_not_renewed_puts_its_task_back(huey):
    if not huey.storage.has_leases:
        pytest.skip("SQLite has no leases: recovery at restart finds lost work")
    kept, lost = task(huey, "daily"), task(huey, "income")
    huey.storage.enqueue_many(items(huey, [kept, lost]))
    huey.storage.owner = "alive:1:fast"
    assert take(huey).id == kept.id
    huey.storage.owner = "dead:2:fast"
    assert take(huey).id == lost.id
    assert huey.storage.reap() == 0  # nothing expired yet
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        assert huey.storage.renew("alive:1:fast") == 1
        time.sleep(0.2)
    assert huey.storage.reap() == 1  # the dead one's, after its lease; the live one's stays
    assert huey.storage.leased_ids() == {kept.id}
    assert huey.storage.queued_ids() == {lost.id}
    again = take(huey)
    assert again.id == lost.id and again.args == lost.args


def test_a_reaped_task_already_back_is_not_doubled(huey):
    if not huey.storage.has_leases:
        pytest.skip("SQLite has no leases")
    t = task(huey, "daily")
    huey.enqueue(t)
    got = take(huey)
    huey.enqueue(got)  # retried by its worker, which then died before its ack
    time.sleep(1.1)
    assert huey.storage.reap() == 0
    assert huey.storage.counts_by_kind() == {"daily": (1, 0)}
    assert huey.storage.leased_ids() == set()


def test_a_task_runs_without_a_revoke_lookup(huey):
    """neo revokes nothing, so running a task reads no revoke key from the storage (Huey's own
    check costs a query per task on each queue)."""
    huey.enqueue(task(huey, "daily"))

    def no_lookups(keys):
        raise AssertionError(f"revoke keys read: {keys}")

    huey.storage.peek_many = no_lookups
    huey.execute(huey.dequeue())
    assert [kind for kind, _ in huey.ran] == ["daily"]


def test_a_task_runs_without_clearing_a_revoke_key(huey):
    """Huey clears the task's revoke key after it ran — a write per task on each queue; neo
    sets none."""
    huey.enqueue(task(huey, "daily"))

    def no_writes(key):
        raise AssertionError(f"revoke key cleared: {key}")

    huey.storage.delete_data = huey.storage.pop_data = no_writes
    huey.execute(huey.dequeue())
    assert [kind for kind, _ in huey.ran] == ["daily"]


def sqlite_huey(tmp_path, fsync: bool):
    return make_huey("fast", storage="sqlite", path=tmp_path / "q.db", kinds=KINDS, fsync=fsync)


def test_sqlite_dequeues_commit_unsynced_and_enqueues_synced(tmp_path):
    """[queue] fsync = true makes what is enqueued durable; a dequeue's delete need not be
    (lost in a power cut, its task runs again: tasks are idempotent)."""
    h = sqlite_huey(tmp_path, fsync=True)
    download = h.task(name="download")(lambda kind, n: None)
    h.storage.enqueue_many(items(h, [download.s("daily", 1)]))
    statements: list[str] = []
    h.storage.conn.set_trace_callback(statements.append)
    assert h.storage.dequeue() is not None
    assert not any(s.startswith("delete") for s in statements)  # not on the synced one
    assert h.storage.conn.execute("pragma synchronous").fetchone() == (2,)  # FULL
    assert h.storage._taker.execute("pragma synchronous").fetchone() == (1,)  # NORMAL
    h.storage.close()


def test_sqlite_idle_workers_stop_querying_a_drained_queue(tmp_path):
    h = sqlite_huey(tmp_path, fsync=False)
    download = h.task(name="download")(lambda kind, n: None)
    h.storage.enqueue_many(items(h, [download.s("daily", 1)]))
    assert h.storage.dequeue() is not None
    assert h.storage.dequeue() is None  # found nothing: the kind is known to be gone
    statements: list[str] = []
    h.storage.conn.set_trace_callback(statements.append)
    h.storage._taker.set_trace_callback(statements.append)
    assert [h.storage.dequeue() for _ in range(5)] == [None] * 5
    assert statements == []  # until the next look (PRESENT_TTL) or enqueue
    h.storage.close()
