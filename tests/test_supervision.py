"""`neo start` / `neo status` / `neo stop` as real subprocesses, and what the supervisor does when
consumers die: restarts with back-off, gives up with a reason, kills on a stop timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import status_of as status
from conftest import wait_for

pytestmark = pytest.mark.slow

FAST_RESTARTS = {
    "restart_base_delay": 0.2,
    "restart_max_delay": 1.0,
    "min_uptime": 3.0,
    "stable_after": 5.0,
    "max_quick_failures": 3,
}


def test_start_status_stop(home):
    started = home.run("start", check=True)
    assert "neo started for" in started.stdout
    for name in ("supervisor", "fast", "slow"):
        assert f"{name}" in started.stdout
    assert str(home.data / "logs" / "fast.log") in started.stdout

    code, data = status(home)
    assert code == 0
    assert data["running"] and data["healthy"]
    procs = data["processes"]
    assert {procs[q]["state"] for q in ("fast", "slow", "supervisor")} == {"running"}
    for q in ("fast", "slow"):
        assert psutil.pid_exists(procs[q]["pid"])
        assert procs[q]["rss_mb"] > 10

    table = home.run("status")
    assert table.returncode == 0
    assert "healthy" in table.stdout and "Task types" in table.stdout

    stopped = home.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "neo stopped" in stopped.stdout
    for q in ("fast", "slow"):
        assert (
            not psutil.pid_exists(procs[q]["pid"])
            or psutil.Process(procs[q]["pid"]).status() == psutil.STATUS_ZOMBIE
        )

    code, data = status(home)
    assert code == 3 and not data["running"]
    again = home.run("stop")
    assert again.returncode == 3
    assert "not running" in again.stderr


def test_second_start_is_refused(home):
    home.run("start", check=True)
    second = home.run("start")
    assert second.returncode == 4
    assert "already running" in second.stderr
    assert second.stderr.count("\n") == 1  # one line, no traceback
    assert status(home)[0] == 0  # the first one is untouched


def test_two_data_directories_run_side_by_side(home, tmp_path):
    from conftest import Home

    other = Home(root=tmp_path / "other", config=tmp_path / "other" / "neo.toml")
    other.root.mkdir()
    other.configure()
    try:
        home.run("start", check=True)
        other.run("start", check=True)
        assert status(home)[0] == 0 and status(other)[0] == 0
    finally:
        other.run("stop")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_pid_file_is_reported_and_replaced(home):
    run = home.data / "run"
    run.mkdir(parents=True)
    pid = dead_pid()
    (run / "supervisor.pid").write_text(f"{pid}\n")
    started = home.run("start", check=True)
    assert f"removed a stale pid file (process {pid} is gone)" in started.stdout
    assert int((run / "supervisor.pid").read_text()) != pid


def test_pid_reused_by_another_program_is_not_neo(home):
    run = home.data / "run"
    run.mkdir(parents=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "supervisor.pid").write_text(f"{stranger.pid}\n")
        code, data = status(home)
        assert code == 3 and not data["running"]
        started = home.run("start", check=True)
        assert f"pid {stranger.pid} now belongs to another program" in started.stdout
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_garbage_pid_file_is_never_overwritten(home):
    run = home.data / "run"
    run.mkdir(parents=True)
    (run / "supervisor.pid").write_text("hello world\n")
    started = home.run("start")
    assert started.returncode == 2
    assert "holds 'hello world', not a pid" in started.stderr
    assert (run / "supervisor.pid").read_text() == "hello world\n"


def test_killed_consumer_is_restarted_and_counted(home):
    home.configure(supervisor=FAST_RESTARTS)
    home.run("start", check=True)
    _, data = status(home)
    old = data["processes"]["fast"]["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted():
        code, d = status(home)
        fast = d["processes"]["fast"]
        return d if fast["state"] == "running" and fast["pid"] != old else None

    data = wait_for(restarted, 30, "the fast consumer to come back")
    assert data["processes"]["fast"]["restarts"] == 1
    assert data["processes"]["fast"]["last_exit"] == -signal.SIGKILL
    assert data["processes"]["slow"]["restarts"] == 0
    log = (home.data / "logs" / "supervisor.log").read_text()
    assert "killed by SIGKILL" in log


def test_consumer_that_keeps_crashing_ends_failed_with_its_reason(home):
    home.configure(supervisor=FAST_RESTARTS)
    home.run("start", check=True)
    # The consumers re-read this file when they start: garbage makes every restart fail fast.
    (home.data / "run" / "settings.json").write_text("{not json")
    _, data = status(home)
    os.kill(data["processes"]["slow"]["pid"], signal.SIGKILL)

    def failed():
        code, d = status(home)
        return (code, d) if d["processes"]["slow"]["state"] == "failed" else None

    code, data = wait_for(failed, 60, "the slow consumer to be marked failed")
    assert code == 5 and not data["healthy"]
    slow = data["processes"]["slow"]
    assert slow["last_exit"] == 2  # EXIT_INPUT: bad settings
    assert "3 times in a row" in slow["reason"]
    assert "bad settings file" in slow["reason"]  # the tail of its output
    assert data["processes"]["fast"]["state"] == "running"
    table = home.run("status")
    assert table.returncode == 5 and "failed" in table.stdout


def test_stop_timeout_kills_a_consumer_that_does_not_finish(home):
    # Every API call takes a minute: a graceful stop cannot wait for it.
    home.configure(provider__simulated={"latency_ms": 60_000.0, "jitter_ms": 0.0})
    home.run("start", check=True)
    home.run("enqueue", "--task-type", "stock_basic", check=True)
    wait_for(lambda: status(home)[1]["queues"]["fast"]["in_flight"] > 0, 15, "a call in flight")
    t0 = time.monotonic()
    stopped = home.run("stop", "--timeout", "2")
    took = time.monotonic() - t0
    assert stopped.returncode == 0, stopped.stderr
    assert "killed after 2s: fast" in stopped.stdout
    assert took < 15
    # The killed call's unit was not lost: the ledger still has it, and the next start
    # puts it back on the queue.
    from neo_cli.ledger import Ledger

    ledger = Ledger(home.data / "ledger.db")
    try:
        assert ledger.live_count("stock_basic") == 3
    finally:
        ledger.close()


def test_foreground_stops_gracefully_on_ctrl_c(home):
    env = {k: v for k, v in os.environ.items() if k not in ("NEO_HOME", "NEO_CONFIG")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "neo_cli", "start", "--foreground", "--config", str(home.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=home.root,
    )
    try:
        data = wait_for(
            lambda: (lambda d: d if d[0] == 0 else None)(status(home)),
            30,
            "foreground neo to be healthy",
        )[1]
        pids = [data["processes"][q]["pid"] for q in ("fast", "slow")]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Ctrl-C stops it" in out
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert status(home)[0] == 3


def test_logs_show_each_process(home):
    home.run("start", check=True)
    fast = home.run("logs", "fast")
    assert fast.returncode == 0 and "fast consumer up" in fast.stdout
    sup = home.run("logs", "supervisor", "-n", "5")
    assert sup.returncode == 0 and "consumer ready" in sup.stdout
    assert len(sup.stdout.splitlines()) <= 5


def test_captured_output_rotates_in_place_and_the_writer_goes_on(tmp_path) -> None:
    from neo_cli.logs import rotate_output

    path = tmp_path / "fast.stderr"
    writer = open(path, "ab")  # noqa: SIM115 - as a consumer's stderr is: for appending
    try:
        writer.write(b"x" * 100)
        writer.flush()
        assert rotate_output(path, max_bytes=1000) is False
        for n in range(7):
            writer.write(bytes([65 + n]) * 2000)
            writer.flush()
            assert rotate_output(path, max_bytes=1000, keep=3) is True
        writer.write(b"after")
        writer.flush()
        assert path.read_bytes() == b"after"  # written at the new end, not past a hole
        kept = sorted(p.name for p in tmp_path.iterdir())
        assert kept == ["fast.stderr", "fast.stderr.1", "fast.stderr.2", "fast.stderr.3"]
        assert path.with_name("fast.stderr.1").read_bytes() == b"G" * 2000  # the newest
        assert path.with_name("fast.stderr.3").read_bytes() == b"E" * 2000
    finally:
        writer.close()
