"""Monitoring: truthful counters and rates, /metrics and /api/status, the alert rules and the
dashboard — checked by promtool and by a real Prometheus server scraping a real neo."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import kill_tree_for, wait_for
from prometheus_client.parser import text_string_to_metric_families
from redis_server import free_port
from test_download import Clock, Scripted, bars, recorded, runtime

from neo_cli import __version__
from neo_cli.download import attempt
from neo_cli.errors import EXIT_CODES, EXIT_INPUT, PermanentError, RateLimited, TransientError
from neo_cli.exporter import METRICS, NeoCollector, family_names
from neo_cli.metrics import CALL_OUTCOMES, MetricsStore, Recorder, outcomes
from neo_cli.tasktypes import INTERFACES

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "configs" / "prometheus" / "neo-alerts.yml"
DASHBOARD = ROOT / "configs" / "grafana" / "neo.json"


# --------------------------------------------------------------------------- counting


@pytest.fixture
def ledger(tmp_path):
    from neo_cli.ledger import Ledger

    led = Ledger(tmp_path / "ledger.db")
    yield led
    led.close()


def test_each_call_and_each_download_is_counted_once_by_how_it_ended(ledger):
    clock = Clock()
    unit = recorded(ledger)
    rt = runtime(
        Scripted(
            TransientError("HTTP 502", "daily"),
            RateLimited("每分钟最多访问该接口300次", "daily"),
            bars(["20240103", "20240102"]),
        ),
        ledger,
        clock,
        max_attempts=3,
    )
    kinds = [attempt(rt, unit).kind for _ in range(3)]
    assert kinds == ["retried", "rate_limited", "done"]
    counts = dict(rt.recorder._counts)
    assert counts[("daily", "calls")] == 3
    assert {o: counts.get(("daily", f"calls_{o}"), 0) for o in CALL_OUTCOMES} == {
        "ok": 1,
        "retried": 1,
        "rate_limited": 1,
        "dead": 0,
    }
    assert (counts[("daily", "done")], counts[("daily", "retried")]) == (1, 1)
    assert counts[("daily", "rate_limited")] == 1


def test_a_dead_letter_is_a_failure_not_a_success(ledger):
    unit = recorded(ledger)
    rt = runtime(Scripted(PermanentError("参数错误", "daily")), ledger, Clock())
    assert attempt(rt, unit).kind == "dead"
    counts = dict(rt.recorder._counts)
    assert counts[("daily", "dead")] == 1 and ("daily", "done") not in counts
    assert counts[("daily", "calls_dead")] == counts[("daily", "calls")] == 1
    done, failed = outcomes("fast", lambda s, n: counts.get((s, n), 0))
    assert (done, failed) == (0, {"retried": 0, "rate_limited": 0, "dead": 1})


class Time:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_rates_are_right_seconds_after_a_start_and_fall_to_zero_after_a_stall(tmp_path):
    clock = Time(1_000_000.0)
    store = MetricsStore(tmp_path / "metrics.db", clock=clock)
    started = clock.t
    # 300 calls/min for 18 s, written once a second as a consumer does.
    for _ in range(18):
        clock.t += 1
        store.add({("daily", "calls"): 5}, {"heartbeat": clock.t}, "fast")
    w = store.recent(started=started, process="fast")
    assert w.per_min("daily", "calls") == 300  # not 90: the 18 s are divided by 18 s
    # A stall: no calls, the process still writing its heartbeat.
    for _ in range(25):
        clock.t += 1
        store.add({}, {"heartbeat": clock.t}, "fast")
    assert store.recent(started=started, process="fast").per_min("daily", "calls") == 0
    store.close()


def test_a_histogram_of_flush_times_keeps_every_observation(tmp_path):
    rec = Recorder(None, "slow")
    for s in (0.003, 0.02, 0.02, 0.4, 99.0):
        rec.observe("saver", "flush_seconds", s)
    counts = dict(rec._counts)
    assert counts[("saver", "flush_seconds:count")] == 5
    assert counts[("saver", "flush_seconds:le=0.025")] == 2
    assert counts[("saver", "flush_seconds:le=+Inf")] == 1
    assert counts[("saver", "flush_seconds:sum_us")] == round(99.443 * 1e6)


# --------------------------------------------------------------------------- /metrics offline


def scrape_of(home, writer: bool = True) -> str:
    """The exposition of a collector over a store holding a known history."""
    from prometheus_client import CollectorRegistry, generate_latest

    home.data.mkdir(parents=True, exist_ok=True)
    store = MetricsStore(home.data / "metrics.db")
    store.add(
        {
            ("daily", "calls"): 12,
            ("daily", "calls_ok"): 10,
            ("daily", "calls_retried"): 1,
            ("daily", "calls_dead"): 1,
            ("daily", "done"): 10,
            ("daily", "dead"): 1,
            ("daily", "rows"): 5000,
            ("daily", "wait_ms"): 1500,
            ("saver", "batches"): 3,
            ("saver", "flush_seconds:le=0.1"): 3,
            ("saver", "flush_seconds:count"): 3,
            ("saver", "flush_seconds:sum_us"): 150_000,
        },
        {},
        "fast",
    )
    store.close()
    settings = home.settings()
    status = {
        "queues": {
            "fast": {"pending": 7, "scheduled": 2, "in_flight": 1},
            "slow": {"pending": 0, "scheduled": 0, "in_flight": 0, "buffered_rows": 40},
        },
        "units_in_progress": 10,
        "task_types": {
            "daily": {
                "pending": 7,
                "scheduled": 2,
                "dead_lettered": 1,
                "paused": "",
                "table_rows": 5000,
            }
        },
        "coverage": {"symbols_with_holes": {"daily": 2}, "checked": 1.7e9},
        "cluster": [],
        "healthy": True,
    }
    collector = NeoCollector(
        settings,
        lambda: {"fast": {"state": "running", "restarts": 2, "rss_bytes": 10**8}},
        lambda: status,
        host="h1",
    )
    collector.writer = writer
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_follow_prometheus_conventions_and_say_what_was_counted(home, promtool):
    text = scrape_of(home)
    got = samples(text)

    def one(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert one("neo_api_calls_total", interface="daily", outcome="ok", host="h1") == 10
    assert one("neo_api_calls_total", interface="daily", outcome="dead", host="h1") == 1
    assert one("neo_downloads_total", interface="daily", outcome="dead", host="h1") == 1
    assert one("neo_limiter_wait_seconds_total", interface="daily", host="h1") == 1.5
    assert one("neo_rows_saved_total", table="daily", host="h1") == 5000
    assert one("neo_flush_seconds_count", host="h1") == 3
    assert one("neo_flush_seconds_bucket", host="h1", le="0.1") == 3
    assert one("neo_flush_seconds_sum", host="h1") == 0.15
    assert one("neo_consumer_restarts_total", role="fast", host="h1") == 2
    assert one("neo_queue_tasks", queue="fast", state="pending") == 7
    assert one("neo_coverage_holes", interface="daily") == 2
    assert one("neo_build_info", version=__version__, python=_python(), host="h1") == 1
    # No symbol, URL or token in any label: only the low-cardinality ones.
    labels = {k for name, ls in got for k, _ in ls}
    assert labels <= {"interface", "outcome", "table", "queue", "state", "role", "host", "le"} | {
        "version",
        "python",
    }
    names = {name for name, _ in got}
    assert {n for n in names if not n.startswith("neo_")} == set()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _python() -> str:
    import platform

    return platform.python_version()


def test_only_the_writer_exports_figures_of_the_whole_queue(home):
    download_machine = {name for name, _ in samples(scrape_of(home, writer=False))}
    assert "neo_api_calls_total" in download_machine
    assert not download_machine & {
        "neo_queue_tasks",
        "neo_dead_letters",
        "neo_units_in_progress",
        "neo_coverage_holes",
        "neo_cluster_consumers",
    }


# --------------------------------------------------------------------------- rules, dashboard


def test_alert_rules_pass_promtool_check_and_their_unit_tests(promtool):
    check = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0 and "SUCCESS: 11 rules found" in check.stdout, check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", str(ROOT / "tests" / "prometheus" / "neo-alerts.test.yml")],
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_dashboard_and_the_rules_name_only_metrics_neo_exports():
    exported = family_names() | {"up"}
    rules = ALERTS.read_text()
    for text in [*dashboard_exprs(), rules]:
        used = set(re.findall(r"\b(neo_[a-z_]+|up)\b(?=\s*[{\[(]|\s*[=<>!)]|\s*$)", text))
        assert used <= exported, used - exported
    dash = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for want in ("calls per minute", "rows saved", "queue depth", "save success", "consumers"):
        assert want in titles


def test_every_exported_family_is_declared():
    assert len({name for _, name in METRICS}) == len(METRICS)
    assert "neo_build_info" in family_names()


# --------------------------------------------------------------------------- start-up errors


def test_a_metrics_port_in_use_or_out_of_range_is_one_line_at_start(home):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = home.cli("start", "--metrics-port", str(port))
    assert result.exit_code == EXIT_INPUT
    assert result.output.count("\n") == 1, result.output
    assert f"[metrics] port = {port} on 127.0.0.1" in result.output
    assert "in use" in result.output and "allowed: a free port from 1 to 65535" in result.output
    assert not (home.data / "run" / "supervisor.pid").exists()

    result = home.cli("start", "--metrics-port", "70000")
    assert result.exit_code == EXIT_INPUT and result.output.count("\n") == 1, result.output
    assert "70000" in result.output and "0 to 65535" in result.output


def test_one_exit_code_table_for_every_process():
    from neo_cli.errors import describe_exit

    assert describe_exit(7) == f"exit code 7 ({EXIT_CODES[7]})"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert len(set(EXIT_CODES)) == len(EXIT_CODES) == 10
    consumer = (ROOT / "neo_cli" / "consumer.py").read_text()
    assert not re.search(r"return [1-9]\b", consumer)  # codes come from neo_cli.errors


# --------------------------------------------------------------------------- a real Prometheus

VOLATILE = {"time", "processes", "eta_seconds"}


def stable(data: dict) -> dict:
    """`neo status --json` without what changes from one read to the next when idle: the
    time, process samples, and the rates of the last seconds."""
    out = {k: v for k, v in data.items() if k not in VOLATILE}
    out["queues"] = {
        q: {k: v for k, v in d.items() if not k.endswith("_per_min")}
        for q, d in data["queues"].items()
    }
    out["task_types"] = {
        api: {k: v for k, v in d.items() if not k.endswith("_per_min") or k == "limit_per_min"}
        for api, d in data["task_types"].items()
    }
    out["schedule"] = {k: v for k, v in data["schedule"].items() if k != "next"}
    return out


@pytest.mark.slow
def test_prometheus_scrapes_what_neo_status_reports(home, prometheus, promtool):
    port = free_port()
    home.configure(
        provider__simulated={
            "symbols": 30,
            "error_rate": 0.08,
            "deny_symbols": "000002.SZ,600000.SH",
        },
        retry={"max_attempts": 2, "base_delay": 0.1, "max_delay": 0.5},
        rate_limits={"stock_basic": 600, "daily": 1200, "adj_factor": 1200},
        metrics={"port": port},
    )
    server = prometheus([f"127.0.0.1:{port}"])
    started = home.run("start", check=True)
    assert f"http://127.0.0.1:{port}/metrics" in started.stdout
    home.run("enqueue", "--task-type", "stock_basic", check=True)
    home.wait_idle(timeout=60)
    home.run("enqueue", "--task-type", "daily_qfq", check=True)
    home.wait_idle(timeout=180)
    assert home.run("verify", "--task-type", "daily").returncode == 9  # denied symbols

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            assert r.status == 200
            return r.read()

    # /api/status is `neo status --json`: the same schema and, idle, the same figures.
    served = json.loads(get("/api/status"))
    shown = json.loads(home.run("status", "--json").stdout)
    assert served["schema"] == shown["schema"] == 2 and served["version"] == __version__
    assert stable(served) == stable(shown)
    assert set(served["processes"]) == set(shown["processes"])

    fast = shown["queues"]["fast"]["totals"]
    assert fast["failed"]["retried"] > 0 and fast["failed"]["dead"] > 0, fast
    daily = shown["task_types"]["daily"]
    assert sum(daily["calls_by_outcome"].values()) == daily["calls_total"] > 0
    # The denied symbols leave holes, and so does any unit that failed twice by chance
    # (error_rate 0.08 against two attempts): every hole is a dead letter's symbol.
    from neo_cli.ledger import Ledger

    ledger = Ledger(home.data / "ledger.db")
    lost = {code for record in ledger.dead("daily") for code in record.unit.codes}
    ledger.close()
    assert {"000002.SZ", "600000.SH"} <= lost
    assert shown["coverage"]["symbols_with_holes"]["daily"] == len(lost)

    # /metrics: valid exposition, and the same counts.
    text = get("/metrics").decode()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    got = samples(text)
    host = socket.gethostname()

    def metric(name: str, **labels: str) -> float:
        return got[(name, frozenset({**labels, "host": host}.items()))]

    for api in ("stock_basic", "daily", "adj_factor"):
        v = shown["task_types"][api]
        for o in CALL_OUTCOMES:
            assert (
                metric("neo_api_calls_total", interface=api, outcome=o)
                == (v["calls_by_outcome"][o])
            ), (api, o)
        assert metric("neo_rows_saved_total", table=api) == v["rows_saved"]
        assert (
            got[("neo_dead_letters", frozenset({"interface": api}.items()))] == (v["dead_lettered"])
        )
        assert metric("neo_downloads_total", interface=api, outcome="dead") == v["dead_lettered"]
    assert (
        sum(metric("neo_downloads_total", interface=api, outcome="done") for api in INTERFACES)
        == (shown["queues"]["fast"]["totals"]["done"])
    )

    # The terminal view shows the same totals.
    table = home.run("status").stdout
    row = next(line for line in table.splitlines() if line.startswith("fast "))
    done_shown, failed_shown = (int(x.replace(",", "")) for x in row.split()[-2:])
    assert (done_shown, failed_shown) == (fast["done"], sum(fast["failed"].values()))

    # Prometheus scraped it: its query API returns what neo's status reports.
    calls = sum(v["calls_total"] for v in shown["task_types"].values())
    rows = sum(v["rows_saved"] for v in shown["task_types"].values())
    wait_for(
        lambda: server.value("sum(neo_api_calls_total)") == calls,
        30,
        f"Prometheus to report {calls} calls",
    )
    assert server.value("sum(neo_rows_saved_total)") == rows
    assert server.value('sum(neo_downloads_total{outcome="dead"})') == fast["failed"]["dead"]
    assert server.value(f'neo_build_info{{version="{__version__}"}}') == 1
    assert server.value("sum(neo_consumer_up)") == 2

    # Every dashboard query runs on it; the rules loaded, and the two that should fire do.
    for expr in dashboard_exprs():
        server.query(expr)
    rules = [r for g in server.api("rules")["groups"] for r in g["rules"]]
    assert len(rules) == 11 and all(r["health"] == "ok" for r in rules), rules
    wait_for(
        lambda: (
            {a["labels"]["alertname"] for a in server.api("alerts")["alerts"]}
            >= {"NeoDeadLettersGrowing", "NeoCoverageHoles"}
        ),
        30,
        "the dead-letter and coverage alerts",
    )
    home.run("stop", check=True)
    time.sleep(0.2)
    with pytest.raises(OSError):
        get("/metrics")  # the exporter stops with its supervisor


@pytest.mark.slow
def test_three_machines_on_redis_counted_once_each_as_the_server_counted(
    tmp_path, own_redis, prometheus
):
    """One writer and two download machines, each with its exporter, one Prometheus scraping
    all three: summed over machines, the calls are what the protocol server counted (in its
    own process), and figures of the whole queue come from the writer alone."""
    from conftest import tushare_home
    from test_shared_budget import TOKEN, listed, serve

    apis = ("stock_basic", "daily", "adj_factor")
    server = serve(tmp_path, ",".join(f"{a}=600" for a in (*apis, "trade_cal")))
    shared = {
        "queue": {"storage": "redis", "redis_url": own_redis.url, "cluster": "mon"},
        "limiter": {"backend": "redis"},
        "rate_limits": {a: 600 for a in apis},
        "plan": {"multi_symbol": False, "whole_market": False},
        "fast": {"workers": 4},
    }
    ports = [free_port() for _ in range(3)]
    homes = [
        tushare_home(
            tmp_path / f"machine{i}",
            server.url,
            TOKEN,
            **shared,
            supervisor={"role": role},
            metrics={"port": port},
        )
        for i, (role, port) in enumerate(zip(("slow", "fast", "fast"), ports, strict=True))
    ]
    writer = homes[0]
    prom = prometheus([f"127.0.0.1:{p}" for p in ports])
    try:
        for h in homes:
            h.run("start", check=True)
        writer.run("enqueue", "-t", "stock_basic", check=True)
        writer.wait_idle(timeout=60)
        writer.run("enqueue", "-t", "daily_qfq", "--symbols", ",".join(listed(20)), check=True)
        writer.wait_idle(timeout=120)
        wait_for(
            lambda: prom.value("count(up == 1)") == 3 and prom.value("sum(neo_consumer_up)") == 3,
            30,
            "three machines scraped, three consumers up",
        )
        shown = json.loads(writer.run("status", "--json").stdout)
        rows = sum(v["rows_saved"] for v in shown["task_types"].values())
        wait_for(
            lambda: prom.value("sum(neo_rows_saved_total)") == rows,
            30,
            f"Prometheus to report the {rows} rows saved",
        )
        by_api = {
            r["metric"]["interface"]: float(r["value"][1])
            for r in prom.query("sum by (interface) (neo_api_calls_total)")
        }
        per_machine = prom.query('sum by (instance) (neo_api_calls_total{interface="daily"})')
        writers = {r["metric"]["instance"] for r in prom.query("neo_queue_tasks")}
        assert writers == {f"127.0.0.1:{ports[0]}"}  # queue depths from the writer only
        assert prom.value("count(neo_build_info)") == 3
        for h in homes:
            h.run("stop", check=True)
    finally:
        stats = server.stop()
        for h in homes:
            kill_tree_for(h.data)
    assert stats is not None
    for api in apis:
        assert by_api[api] == len(stats["arrivals"][api]), (api, by_api, stats["apis"][api])
    # Both download machines called (the sum is not one machine's figure shown twice).
    assert len([r for r in per_machine if float(r["value"][1]) > 0]) == 2, per_machine
    print(
        "\ncalls summed over 3 machines' /metrics by Prometheus: "
        + ", ".join(f"{a} {by_api[a]:.0f}" for a in apis)
        + "; the server counted the same"
    )


def test_the_readme_scrape_config_is_one_prometheus_accepts(tmp_path, promtool):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Monitoring") :]
    block = section[section.index("```yaml\n") + 8 :]
    config = block[: block.index("```")]
    assert "job_name: neo" in config
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace("/etc/prometheus/neo-alerts.yml", str(ALERTS)))
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_counter_neo_records_is_documented():
    from neo_cli.metrics import COUNTERS

    source = "\n".join(p.read_text() for p in (ROOT / "neo_cli").rglob("*.py"))
    named = set(re.findall(r'\.incr\(\s*[^,]+,\s*"([a-z_]+)"', source))
    named |= {f"calls_{o}" for o in CALL_OUTCOMES}  # counted as f"calls_{ended}"
    assert named - {"done"} and named <= set(COUNTERS), named - set(COUNTERS)
