"""The shared limiter at the edges a user meets: bad settings, an unreachable Redis, live work
that recovery must leave alone."""

from __future__ import annotations

import json
import sqlite3

from redis_server import free_port

from neo_cli.errors import EXIT_INPUT, EXIT_LIMITER, EXIT_NOT_RUNNING
from neo_cli.ledger import Ledger
from neo_cli.pipeline import Pipeline
from neo_cli.recovery import recover
from neo_cli.runstate import Owner
from neo_cli.units import Unit


def unreachable(home) -> str:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    home.configure(limiter={"backend": "redis"}, queue={"redis_url": url})
    return url


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_commands_that_would_call_refuse_while_redis_is_unreachable(home) -> None:
    url = unreachable(home)
    shown = url.replace("s3cret", "***")
    for args in (
        ("enqueue", "-t", "stock_basic"),
        ("enqueue", "-t", "stock_basic", "--inline"),
        ("enqueue", "-t", "daily", "--symbols", "000001.SZ", "--dry-run"),
        ("start",),
    ):
        result = home.cli(*args)
        assert result.exit_code == EXIT_LIMITER, (args, result.output)
        line = one_line(result)
        assert line.startswith(f"neo: error: limiter: Redis unreachable at {shown}"), line
        assert "s3cret" not in result.output
    # Nothing was enqueued half-way, nothing recorded: the queue files were never made.
    assert not (home.data / "queues" / "fast.db").exists()
    assert not (home.data / "ledger.db").exists()


def test_status_names_an_unreachable_limiter_instead_of_a_traceback(home) -> None:
    url = unreachable(home)
    result = home.cli("status", "--json")
    assert result.exit_code == EXIT_NOT_RUNNING
    data = json.loads(result.output)
    assert data["limiter"]["error"].startswith(
        f"limiter: Redis unreachable at {url.replace('s3cret', '***')}"
    )
    text = home.cli("status")
    assert "limiter: Redis unreachable at redis://:***@127.0.0.1:" in text.output
    assert "Traceback" not in text.output and "s3cret" not in text.output


def test_bad_limiter_settings_get_one_line(home) -> None:
    home.configure(limiter={"backend": "cloud"})
    result = home.cli("status")
    assert result.exit_code == EXIT_INPUT
    assert one_line(result) == (
        f"neo: error: invalid [limiter] backend = 'cloud' (from {home.config}); "
        "allowed: one of 'local', 'redis'"
    )
    for url in ("redis//nope", "redis://127.0.0.1:notaport/0", "http://127.0.0.1/0", "redis://h/x"):
        home.configure(limiter={"backend": "redis"}, queue={"redis_url": url})
        result = home.cli("enqueue", "-t", "stock_basic")
        assert result.exit_code == EXIT_INPUT, url
        assert one_line(result) == (
            f"neo: error: invalid [queue] redis_url = {url!r} (from {home.config}); allowed: "
            "redis://[:password@]host[:port][/db], rediss://… or unix:///path"
        )
    # A password in a bad URL is masked too.
    home.configure(limiter={"backend": "redis"}, queue={"redis_url": "redis://:pw@h:x/0"})
    assert "pw" not in home.cli("status").output.replace("password", "")


def test_recovery_leaves_a_live_owners_units_and_adopts_a_dead_ones(home) -> None:
    settings = home.settings()
    pipeline = Pipeline(settings)
    ledger = Ledger(pipeline.paths.ledger)
    live, dead = Owner(pipeline.paths, "inline"), Owner(pipeline.paths, "inline")
    ours = [Unit("income", {"ts_code": "000001.SZ"}, ("000001.SZ",), "b1")]
    theirs = [
        Unit("income", {"ts_code": "000002.SZ"}, ("000002.SZ",), "b2"),
        Unit("income", {"ts_code": "000004.SZ"}, ("000004.SZ",), "b2"),
    ]
    with ledger.adding("b1", "income", ours, owner=live.name):
        pass
    with ledger.adding("b2", "income", theirs, owner=dead.name):
        pass
    ledger.mark_saving(theirs[1], "inline", 10)  # its rows died in the run's buffer
    dead.release()  # the kernel drops the lock of a process that dies, however it dies
    found = recover(pipeline, ledger)
    assert (found.downloads, found.saves) == (1, 1)
    queued = pipeline.fast.storage.queued_ids()
    assert queued == {u.id for u in theirs}  # the live run's unit is its own, not lost
    assert ledger.owners() == {live.name}
    assert {r.unit.id: r.state for r in ledger.live_units()}[theirs[1].id] == "queued"
    # Once recovered, never again: the units are on the queue now.
    assert recover(pipeline, ledger).downloads == 0
    live.release()
    ledger.close()


def test_an_old_ledger_gains_the_owner_column(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "create table units (id text primary key, batch text not null, api text not null,"
        " codes text not null, params text not null, priority integer not null default 0,"
        " state text not null, attempts integer not null default 0, rows integer,"
        " save_id text, error text, error_class text, created real not null,"
        " updated real not null)"
    )
    conn.execute(
        "insert into units values ('u1', 'b', 'income', '000001.SZ', '{}', 0, 'queued', 0,"
        " null, null, null, null, 1, 1)"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(path)
    [record] = ledger.live_units()
    assert record.unit.id == "u1" and record.owner is None
    ledger.close()
