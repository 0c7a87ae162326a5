"""Roles and Redis settings at the edges: one line and an exit code for each mistake, a
warning for Redis settings that can lose queued work, and status when Redis is away."""

from __future__ import annotations

import json
import uuid

from redis_server import free_port

from neo_cli import config
from neo_cli.control import redis_notes
from neo_cli.pipeline import Pipeline


def test_a_role_that_does_not_exist_and_fast_without_redis_are_one_line(home):
    result = home.cli("start", "--role", "download")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "neo: error: invalid [supervisor] role = 'download' (from --role); "
        "allowed: one of 'all', 'fast', 'slow'"
    )
    result = home.cli("start", "--role", "fast")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "neo: error: role 'fast' (from --role) needs [queue] storage = \"redis\": the queues "
        "every machine shares; allowed on one machine: 'all'"
    )


def test_redis_settings_that_lose_queued_work_are_warned_of(tmp_path, redis_server):
    client = redis_server.client()
    settings = config.load(
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "queue.storage": "redis",
            "queue.redis_url": redis_server.url,
            "queue.cluster": uuid.uuid4().hex,
        },
        environ={},
        cwd=tmp_path,
    )
    old = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        notes = redis_notes(Pipeline(settings), "all")
    finally:
        client.config_set("maxmemory-policy", old)
    where = redis_server.url
    assert notes == [
        f"Redis at {where}: maxmemory-policy is 'allkeys-lru': under memory pressure Redis may "
        "evict queued tasks; set maxmemory-policy noeviction",
        f"Redis at {where}: appendonly is 'no': a Redis restart loses every queued task; "
        "set appendonly yes (appendfsync everysec)",
    ]


def test_status_and_enqueue_say_redis_is_unreachable(home):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    home.configure(queue={"storage": "redis", "redis_url": url})
    home.data.mkdir()
    result = home.cli("status", "--json")
    data = json.loads(result.output)
    assert result.exit_code == 3  # not running; running, it would be 5 (unhealthy)
    assert data["queue_error"].startswith(f"queue: Redis unreachable at {url} (")
    assert not data["healthy"]
    text = home.cli("status").output
    assert f"queue: Redis unreachable at {url}" in text
    result = home.cli("enqueue", "-t", "stock_basic")
    assert result.exit_code == 8
    assert result.output.startswith(f"neo: error: queue: Redis unreachable at {url} (")
    assert result.output.count("\n") == 1


def test_a_cluster_name_that_cannot_be_a_key_is_one_line(home):
    home.configure(queue={"cluster": "my db"})
    result = home.cli("status")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"neo: error: invalid [queue] cluster = 'my db' (from {home.config}); "
        "allowed: letters, digits, '-', '_' or '.'"
    )
