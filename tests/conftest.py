"""Fixtures shared by the tests: a data directory with its own config, and ways to run neo.

Tests use the real thing — consumer subprocesses, DuckDB and SQLite files, HTTP on 127.0.0.1 —
with fakes only for time and randomness.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_server import PrometheusServer, prometheus_binary, promtool_binary
from redis_server import RedisServer, redis_binary
from typer.testing import CliRunner

from neo_cli import config
from neo_cli.cli import app

END_DATE = "20261120"  # a fixed "today" for the simulated market


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def base_sections(data_dir: Path, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "paths": {"data_dir": str(data_dir)},
        "provider.simulated": {
            "symbols": 40,
            "end_date": END_DATE,
            "latency_ms": 2.0,
            "jitter_ms": 1.0,
        },
        "slow": {"batch_timeout": 0.5},
        # No test runs the daily update by chance (one left running across 18:30 in China
        # would); the schedule's own tests turn it on.
        "schedule": {"update": ""},
    }
    for section, keys in extra.items():
        sections.setdefault(section.replace("__", "."), {}).update(keys)
    return sections


@dataclass
class Home:
    """A data directory and its config file, and helpers to run neo against it."""

    root: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def settings(self) -> config.Settings:
        return config.load(self.config, environ={})

    def configure(self, **sections: dict[str, Any]) -> None:
        write_config(self.config, base_sections(self.data, **sections))

    def cli(self, *args: str, input: str | None = None):
        """In-process: exact output and exit codes."""
        runner = CliRunner()
        return runner.invoke(
            app,
            [*args, "--config", str(self.config)]
            if args and args[0] not in ("--help",)
            else list(args),
            input=input,
            env={"NEO_CONFIG": "", "NEO_HOME": "", **self.env},
        )

    def run(
        self, *args: str, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess:
        """As a real subprocess, the way a user runs it."""
        env = self.subprocess_env()
        proc = subprocess.run(
            [sys.executable, "-m", "neo_cli", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.root,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"neo {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NEO_HOME", "NEO_CONFIG")}
        return {**env, **self.env}

    def wait_idle(self, timeout: float = 300) -> dict:
        """Poll `status --json` until every unit is saved or dead."""
        import json

        deadline = time.monotonic() + timeout
        while True:
            data = json.loads(self.run("status", "--json").stdout)
            queues = data["queues"].values()
            if data["units_in_progress"] == 0 and all(
                q["pending"] + q["scheduled"] + q["in_flight"] == 0 for q in queues
            ):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"not idle after {timeout}s: {data}")
            time.sleep(2.0)  # each status is a new process: do not starve what is measured


def kill_tree_for(data_dir: Path) -> None:
    """Kill any neo process still running for `data_dir` (a failed test must not leak)."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if "neo_cli" in cmd and str(data_dir) in cmd:
            with contextlib.suppress(psutil.Error):
                proc.kill()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(root=tmp_path, config=tmp_path / "neo.toml")
    h.configure()
    yield h
    run_dir = h.data / "run"
    pid_file = run_dir / "supervisor.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while psutil.pid_exists(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        except (ValueError, ProcessLookupError):
            pass
    # Consumers carry the settings path, which is under the data directory.
    kill_tree_for(h.data)


def assert_saved_exactly(
    home: Home,
    symbols: int,
    apis=("daily", "adj_factor", "income", "balancesheet", "cashflow"),
    skip: frozenset[str] = frozenset(),
    end_date: str = END_DATE,
    statuses: tuple[str, ...] = ("L", "D", "P"),
) -> dict[str, int]:
    """Every row the simulated market holds for its symbols, of every listing status, is in
    the database, once, with its values; returns rows per table. `skip`: symbols expected to
    be missing. `statuses=("L",)` for a `--listed-only` run."""
    from datetime import datetime

    import duckdb

    from neo_cli.providers.market import Market

    market = Market(20240101, symbols, datetime.strptime(end_date, "%Y%m%d").date())
    listed = [
        c for c in market.ts_codes() if c not in skip and market.stock(c)["list_status"] in statuses
    ]
    counts = {}
    conn = duckdb.connect(str(home.data / "neo.duckdb"), read_only=True)
    try:
        for api in apis:
            want = {}
            for code in listed:
                n = len(
                    market.rows(
                        api, {"ts_code": code, "start_date": "19900101", "end_date": end_date}
                    )
                )
                if n:
                    want[code] = n
            got = dict(conn.execute(f"SELECT ts_code, count(*) FROM {api} GROUP BY 1").fetchall())
            for code in skip:
                got.pop(code, None)
            assert want == got, f"{api}: rows per symbol differ"
            counts[api] = sum(got.values())
        code = listed[0]
        bars = market.rows(
            "daily", {"ts_code": code, "start_date": "19900101", "end_date": end_date}
        )
        saved = conn.execute(
            "SELECT strftime(trade_date, '%Y%m%d'), open, high, low, close, vol, amount "
            "FROM daily WHERE ts_code = ?",
            [code],
        ).fetchall()
        assert sorted(saved) == sorted(
            (b["trade_date"], b["open"], b["high"], b["low"], b["close"], b["vol"], b["amount"])
            for b in bars
        )
        assert conn.execute("SELECT count(*) FROM _quarantine").fetchone()[0] == 0
    finally:
        conn.close()
    return counts


LOCK_HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
hold = float(sys.argv[2])
if hold < 0:
    sys.stdin.read()
else:
    time.sleep(hold)
conn.close()
"""


@contextmanager
def locked_by_another_process(path: Path, hold: float = -1) -> Iterator[subprocess.Popen]:
    """Another process holds `path` read-write: until we exit, or for `hold` seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path), str(hold)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def wait_for(predicate, timeout: float, what: str):
    """Poll `predicate` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(home: Home) -> tuple[int, dict]:
    """`neo status --json` as a subprocess: (exit code, data)."""
    import json

    proc = home.run("status", "--json")
    return proc.returncode, json.loads(proc.stdout)


# --------------------------------------------------------------------------- a real Redis


def _redis_binary_or_skip() -> str:
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the Redis tests")
        pytest.skip("redis-server is not installed (make test installs it)")
    return binary


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may restart."""
    server = RedisServer(tmp_path, _redis_binary_or_skip())
    yield server
    server.stop()


@pytest.fixture
def persistent_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test's own with AOF on, which it may restart and keep its data."""
    server = RedisServer(tmp_path, _redis_binary_or_skip(), persistent=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A real redis-server for the session. Missing: skipped locally, a failure under CI
    (the Makefile installs it there)."""
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the Redis tests")
        pytest.skip("redis-server is not installed (make test installs it)")
    server = RedisServer(tmp_path_factory.mktemp("redis"), binary)
    yield server
    server.stop()


# --------------------------------------------------------------------------- a real Prometheus


def _server_or_skip(binary: str | None, name: str) -> str:
    """A server's binary. Missing: skipped locally, a failure under CI (the Makefile installs
    it there)."""
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI must run the tests that need it")
        pytest.skip(f"{name} is not installed (make test installs it)")
    return binary


@pytest.fixture
def promtool() -> str:
    return _server_or_skip(promtool_binary(), "promtool (Debian's prometheus)")


@pytest.fixture
def prometheus(tmp_path):
    """Start a real Prometheus scraping the given targets: `prometheus(["127.0.0.1:9464"])`."""
    binary = _server_or_skip(prometheus_binary(), "prometheus")
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        directory = tmp_path / f"prometheus{len(started)}"
        directory.mkdir()
        started.append(PrometheusServer(directory, binary, targets))
        return started[-1]

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- counted by the server


def worst_window(arrivals: list[float], window: float = 60.0) -> int:
    """The most arrivals in any half-open `window`-second stretch."""
    import bisect

    a = sorted(arrivals)
    return max((bisect.bisect_left(a, t + window) - i for i, t in enumerate(a)), default=0)


def calls_per_minute(arrivals: list[float]) -> float:
    """The sustained rate between the first and the last arrival."""
    a = sorted(arrivals)
    return (len(a) - 1) / (a[-1] - a[0]) * 60 if len(a) > 1 and a[-1] > a[0] else 0.0


def tushare_home(root: Path, server_url: str, token: str, **sections: dict[str, Any]) -> Home:
    """A data directory whose neo calls the protocol server at `server_url`."""
    root.mkdir(parents=True, exist_ok=True)
    h = Home(root=root, config=root / "neo.toml", env={"TUSHARE_TOKEN": token})
    h.configure(
        provider={"name": "tushare"},
        provider__tushare={"url": server_url},
        **sections,
    )
    return h


def assert_rows_once(
    home: Home, api: str, codes: list[str], symbols: int, end_date: str = END_DATE
) -> int:
    """Every row the server's market holds for `codes` is saved, and no key twice."""
    from datetime import datetime

    import duckdb

    from neo_cli.providers.market import Market
    from neo_cli.tasktypes import DATASETS

    market = Market(20240101, symbols, datetime.strptime(end_date, "%Y%m%d").date())
    want = {}
    for code in codes:
        n = len(market.rows(api, {"ts_code": code, "start_date": "19900101", "end_date": end_date}))
        if n:
            want[code] = n
    keys = ", ".join(DATASETS[api].keys)
    conn = duckdb.connect(str(home.data / "neo.duckdb"), read_only=True)
    try:
        got = dict(conn.execute(f"SELECT ts_code, count(*) FROM {api} GROUP BY 1").fetchall())
        distinct = conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {api})")
        total = sum(got.values())
        assert distinct.fetchone()[0] == total, f"{api}: a key saved twice"
    finally:
        conn.close()
    assert got == want, f"{api}: rows per symbol differ"
    return total
