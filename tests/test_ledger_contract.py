"""One contract for the ledger as a download sees it: written directly on the machine that
keeps it, or from a download machine through ledger tasks on the slow queue (real Redis),
applied by the slow side. The same calls leave the same ledger."""

from __future__ import annotations

import uuid

import pytest

from neo_cli import config
from neo_cli.ledger import Ledger
from neo_cli.ledger.remote import RemoteLedger, publish_universe
from neo_cli.pipeline import Pipeline, SlowRuntime
from neo_cli.units import Unit


@pytest.fixture(params=["local", "remote"])
def side(request, tmp_path):
    """(the download side's ledger, the ledger file's, the pipeline, drain())"""
    overrides = {"paths.data_dir": str(tmp_path / "data"), "schedule.update": ""}
    if request.param == "remote":
        server = request.getfixturevalue("redis_server")
        overrides.update({"queue.storage": "redis", "queue.redis_url": server.url,
                          "queue.cluster": uuid.uuid4().hex})  # fmt: skip
    settings = config.load(overrides=overrides, environ={}, cwd=tmp_path)
    pipeline = Pipeline(settings)
    ledger = Ledger(pipeline.paths.ledger)
    pipeline.slow_rt = SlowRuntime(saver=None, recorder=None, ledger=ledger)
    client = RemoteLedger(pipeline) if request.param == "remote" else ledger

    def drain() -> int:
        """What the slow consumer does with the ledger tasks: apply them, in order."""
        n = 0
        while (data := pipeline.slow.storage.dequeue()) is not None:
            pipeline.slow.execute(pipeline.slow.deserialize_task(data))
            n += 1
        return n

    yield client, ledger, pipeline, drain
    ledger.close()


def units(n: int, api: str = "income") -> list[Unit]:
    return [
        Unit(api, {"ts_code": f"00000{i}.SZ"}, (f"00000{i}.SZ",), "b1", 0) for i in range(1, n + 1)
    ]


def test_the_same_calls_leave_the_same_ledger(side):
    client, ledger, pipeline, drain = side
    a, b, c, d = units(4)
    with ledger.adding("b1", "income", [a, b, c, d], universe=["000001.SZ", "000002.SZ"]):
        pipeline.enqueue_units([a, b, c, d])
    publish_universe(pipeline, "b1", ["000001.SZ", "000002.SZ"], keep_days=1)
    assert client.universe("b1") == {"000001.SZ", "000002.SZ"}

    assert client.attempt_failed(a, "HTTP 502", "transient") == 1
    assert client.attempt_failed(a, "timed out", "transient") == 2
    client.note(b, "too many calls", "rate-limited (minute)")
    client.mark_dead(c, "bad parameters", "permanent")
    client.mark_empty(d)
    children = units(2, "income")
    children = [Unit(u.api, u.params, u.codes, "b1", 0) for u in children]
    parent = Unit("income_vip", {"period": "20241231"}, ("*",), "b1", 0)
    with ledger.adding("b1", "income", [parent]):
        pass
    client.split_units(parent, children, pipeline.enqueue_units)
    assert client.refuse_vip("income", "no points") is True
    assert client.refuse_vip("income", "no points") is False
    drain()

    state = {r.unit.id: (r.state, r.attempts, r.error) for r in ledger.live_units()}
    assert state[a.id] == ("retrying", 2, "timed out")
    assert state[b.id] == ("queued", 0, "too many calls")
    dead = {r.unit.id: (r.error, r.error_class) for r in ledger.dead()}
    assert dead == {c.id: ("bad parameters", "permanent")}
    assert ledger.get(d.id).state == "saved"
    assert ledger.get(parent.id).state == "split"
    assert {u.id for u in children} <= set(state)
    assert {u.id for u in children} <= pipeline.fast.storage.queued_ids()
    assert ledger.vip_refused("income") == "no points"
    assert client.vip_refused("income") == "no points"


def test_a_save_from_a_download_machine_marks_its_unit_when_taken(side):
    client, ledger, pipeline, drain = side
    (unit,) = units(1)
    with ledger.adding("b1", "income", [unit]):
        pipeline.enqueue_units([unit])
    carried = unit.to_dict() if client.remote else None
    save = pipeline.save.s("income", ("ts_code",), [["000001.SZ"]], unit.id, carried)
    pipeline.slow.enqueue(save)
    client.mark_saving(unit, save.id, 1)

    class Buffer:
        rows: list = []

        def add(self, *args):
            self.rows.append(args)

    pipeline.slow_rt.saver = Buffer()
    drain()
    record = ledger.get(unit.id)
    assert (record.state, record.rows) == ("saving", 1)
    assert Buffer.rows == [("income", ("ts_code",), [["000001.SZ"]], unit.id)]
