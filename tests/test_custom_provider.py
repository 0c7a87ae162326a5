"""A provider of one's own: `[provider] name = "package.module:factory"`, checked when the
config loads (one line naming what is missing), built by the consumers, run like the built-in
ones. The one used here is the benchmark's provider that costs nothing (bench/instant.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from neo_cli.config import load
from neo_cli.errors import InputError
from neo_cli.providers import build_provider

ROOT = Path(__file__).resolve().parent.parent
INSTANT = "bench.instant:provider"


def configured(tmp_path: Path, name: str):
    path = tmp_path / "neo.toml"
    path.write_text(f'[provider]\nname = "{name}"\n[provider.simulated]\nsymbols = 20\n')
    return load(path, environ={}, cwd=tmp_path)


def test_the_factory_named_builds_the_provider(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    provider = build_provider(configured(tmp_path, INSTANT))
    assert provider.name == "instant"
    reply = provider.call(
        "daily",
        {"ts_code": "000001.SZ,600000.SH", "start_date": "20240101", "end_date": "20240105"},
        "ts_code,trade_date,close,change",
    )
    assert reply.fields == ("ts_code", "trade_date", "close", "change")
    assert reply.items == [
        ["000001.SZ", "20240105", 10.0, 0.0],
        ["600000.SH", "20240105", 10.0, 0.0],
    ]
    assert len(provider.call("stock_basic", {"list_status": "L"}, [])) > 0  # the market's own


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("bench.instant", ""),  # no factory named
        ("no_such_module:make", ": cannot import 'no_such_module' (ModuleNotFoundError: "),
        ("json:no_such_factory", ": 'json' has no callable 'no_such_factory'"),
        ("json:__name__", ": 'json' has no callable '__name__'"),
    ],
)
def test_a_factory_that_is_not_there_is_one_line_at_load(tmp_path, monkeypatch, name, why):
    monkeypatch.syspath_prepend(str(ROOT))
    with pytest.raises(InputError) as caught:
        configured(tmp_path, name)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid [provider] name = {name!r} (from {tmp_path / 'neo.toml'})")
    assert why in message
    assert message.endswith(
        "allowed: 'simulated', 'tushare', or a provider of your own as 'package.module:factory'"
    )


@pytest.mark.parametrize(
    ("module", "body", "why"),
    [
        ("gives_an_int", "return 42", "returned int, not a Provider"),
        ("raises_in_factory", "raise KeyError('token')", "failed: KeyError: 'token'"),
    ],
)
def test_a_factory_that_builds_no_provider_is_one_line(tmp_path, monkeypatch, module, body, why):
    (tmp_path / f"{module}.py").write_text(f"def make(settings):\n    {body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = configured(tmp_path, f"{module}:make")
    with pytest.raises(InputError) as caught:
        build_provider(settings)
    assert str(caught.value) == f"[provider] name = '{module}:make' {why}"


@pytest.mark.slow
def test_the_pipeline_saves_what_a_provider_of_ones_own_answers(home) -> None:
    home.env["PYTHONPATH"] = str(ROOT)
    home.configure(
        provider={"name": INSTANT},
        provider__simulated={"symbols": 40, "latency_ms": 0, "jitter_ms": 0},
        plan={"multi_symbol": False, "whole_market": False},
    )
    home.run("start", check=True)
    home.run("enqueue", "-t", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    day = "20261120"
    out = home.run("enqueue", "-t", "daily", "--start-date", day, "--end-date", day, check=True)
    units = int(out.stdout.split()[1])
    home.wait_idle(timeout=120)
    home.run("stop", check=True)
    conn = duckdb.connect(str(home.data / "neo.duckdb"), read_only=True)
    try:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT ts_code), min(close), max(close) FROM daily"
        ).fetchone()
    finally:
        conn.close()
    assert units > 25
    assert rows == (units, units, 10.0, 10.0)
