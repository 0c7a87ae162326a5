"""`make bench`: measure what the product promises and write BENCHMARKS.md, section by section
(each is written as soon as it is measured, so a run cut short keeps what it measured):

    designs     the seed's scenario: one shared pool, two queues with a save per task, and neo,
                at a 1,200 calls/min budget (bench/designs.py)
    adherence   every interface at its limit for five minutes, neo beside Huey's own
                `rate_limit` (bench/adherence.py)
    fullmarket  5,000 symbols from an empty data directory to a complete database
                (bench/fullmarket.py)
    redis       1, 2 and 3 download machines on one Redis: the global limit and Redis's
                commands per call
    saver       the batch saver through its flusher against DuckDB's bulk write and row by row
                (bench/saver.py)
    overhead    neo on a free API against bare Huey's no-op tasks (bench/overhead.py)
    status      `neo enqueue` of 35,000 tasks and `neo status` with ~100,000 queued
    limiter     what a slot costs on each limiter backend

Calls are counted by the Tushare-protocol test server in its own process. Every loop is
bounded in count and time.

    .venv/bin/python bench/run.py [--sections designs,saver] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def neo(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neo_cli", *args, "--config", str(home / "neo.toml")],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=home,
        check=True,
    )


def window_figures(arrivals: list[float], t0: float, t1: float, limit: int) -> dict:
    """What the server saw of one interface: calls/min over [t0, t1), the worst 60 s window
    over the whole run, and the share of the limit used."""
    import bisect

    a = sorted(arrivals)
    inside = sum(1 for t in a if t0 <= t < t1)
    per_min = inside / (t1 - t0) * 60 if t1 > t0 else 0.0
    worst = max((bisect.bisect_left(a, t + 60) - i for i, t in enumerate(a)), default=0)
    return {
        "limit": limit,
        "calls_per_min": round(per_min, 1),
        "share": round(per_min / limit, 4),
        "worst_window": worst,
    }


def serve(home: Path, symbols: int, limits: dict[str, int], token: str):
    """The Tushare-protocol test server in its own process: it counts every call at arrival.
    It makes the whole market's histories before it listens (a few seconds per 1,000
    symbols), so what neo's calls wait for is the API, not the rig's first touch."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tushare_server import ServerProcess

    spec = ",".join(f"{api}={n}" for api, n in limits.items())
    return ServerProcess(
        home,
        "--warm",
        "--symbols",
        str(symbols),
        "--end-date",
        "20261120",
        "--token",
        token,
        "--limits",
        spec,
        timeout=30 + symbols * 0.02,
    )


def tushare_config(home: Path, url: str, limits: dict[str, int], extra: str = "") -> None:
    (home / "neo.toml").write_text(
        f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
        f'[provider]\nname = "tushare"\n[provider.tushare]\nurl = "{url}"\n'
        "[rate_limits]\n"
        + "".join(f"{api} = {n}\n" for api, n in limits.items())
        + "[slow]\nbatch_size = 5000\nbatch_timeout = 2.0\n"
        + extra
    )


def redis_scale_benchmark(
    seconds: float, limit: int = 300, most: int = 3, warmup: float = 15.0
) -> list[dict]:
    """Queues and limiter on one real Redis: one writer (`--role slow`) and one download
    machine (`--role fast`, its own data directory and consumer), then a second and a third
    joining the same cluster, income statements at `limit`/min for all of them. After each
    machine joins, a warm-up and a stretch of `seconds`: the server counts the calls, and
    Redis the commands it served in the stretch (INFO commandstats), per call."""
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import RedisServer, redis_binary

    binary = redis_binary()
    if binary is None:
        return [{"skipped": "redis-server is not installed"}]
    token = "bench-redis-token"
    limits = {"income": limit, "stock_basic": 60, "trade_cal": 60}
    stretches = []
    with tempfile.TemporaryDirectory(prefix="neo-bench-redis-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root, binary, persistent=True)
        server = serve(root, 2000, limits, token)
        os.environ["TUSHARE_TOKEN"] = token
        homes: list[Path] = []

        def join(role: str) -> None:
            home = root / f"machine{len(homes)}"
            home.mkdir()
            tushare_config(
                home,
                server.url,
                limits,
                '[limiter]\nbackend = "redis"\n[queue]\nstorage = "redis"\n'
                f'redis_url = "{redis.url}"\ncluster = "bench"\n'
                f'[supervisor]\nrole = "{role}"\n[plan]\nstatements_vip = "false"\n',
            )
            homes.append(home)
            neo(home, "start")

        try:
            join("slow")
            join("fast")
            neo(homes[0], "enqueue", "-t", "stock_basic")
            wait_idle(homes[0], 60)
            neo(homes[0], "enqueue", "-t", "income")  # 2,000 calls: more than the stretches
            client = redis.client()
            begun = time.monotonic()
            for k in range(1, most + 1):
                if k > 1:
                    join("fast")
                t0 = time.monotonic() + warmup
                time.sleep(max(0.0, t0 - time.monotonic()))
                before = client.info("commandstats")
                t1 = t0 + seconds
                time.sleep(max(0.0, t1 - time.monotonic()))
                stretches.append((k, begun, t0, t1, before, client.info("commandstats")))
                begun = t1
            for home in reversed(homes):
                neo(home, "stop", "--timeout", "30")
        finally:
            stats = server.stop()
            redis.stop()
            os.environ.pop("TUSHARE_TOKEN", None)
    arrivals = stats["arrivals"]["income"]
    refusals = stats["refusals"]["income"]
    out = []
    for k, begun, t0, t1, before, after in stretches:
        # The worst window of the run so far, and the refusals since the last stretch ended.
        figures = window_figures([t for t in arrivals if t < t1], t0, t1, limit)
        calls = sum(1 for t in arrivals if t0 <= t < t1)
        served = {c: v["calls"] - before.get(c, {}).get("calls", 0) for c, v in after.items()}
        scripts = sum(n for c, n in served.items() if c in ("cmdstat_evalsha", "cmdstat_eval"))
        figures.update(
            download_machines=k,
            rejected=sum(1 for t in refusals if begun <= t < t1),
            redis_commands_per_call=round(sum(served.values()) / calls, 1) if calls else None,
            redis_scripts_per_call=round(scripts / calls, 1) if calls else None,
        )
        out.append(figures)
        print(json.dumps(figures), flush=True)
    return out


def limiter_cost(slots: int = 5000) -> dict:
    """Microseconds to hand out one slot (and to read the state `ready()` reads) on each
    backend, from one thread and with three processes at once on the local file."""
    from neo_cli.limits.local import LocalBackend
    from neo_cli.limits.memory import MemoryBackend

    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import RedisServer, redis_binary

    out = {}
    with tempfile.TemporaryDirectory(prefix="neo-bench-") as tmp:
        backends = {
            "memory": MemoryBackend(),
            "local": LocalBackend(Path(tmp) / "limiter.db", "bench"),
        }
        redis = None
        binary = redis_binary()
        if binary is not None:
            from neo_cli.limits.redis import RedisBackend

            redis = RedisServer(Path(tmp), binary)
            from neo_cli.config import SCHEMA

            backends["redis"] = RedisBackend(redis.url, "bench", list(SCHEMA["rate_limits"]))
        try:
            for name, backend in backends.items():
                t = time.perf_counter()
                for _ in range(slots):
                    backend.reserve("daily", 0.0, 1e9)
                reserve = (time.perf_counter() - t) / slots * 1e6
                t = time.perf_counter()
                for _ in range(slots):
                    backend.state("daily")
                state = (time.perf_counter() - t) / slots * 1e6
                out[name] = {"reserve_us": round(reserve, 1), "state_us": round(state, 1)}
                backend.close()
        finally:
            if redis is not None:
                redis.stop()
        code = (
            "import sys, time; from pathlib import Path; "
            "from neo_cli.limits.local import LocalBackend; "
            "b = LocalBackend(Path(sys.argv[1]), 'bench'); t = time.perf_counter(); "
            f"[b.reserve('income', 0.0, 1e9) for _ in range({slots})]; "
            f"print((time.perf_counter() - t) / {slots} * 1e6)"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(Path(tmp) / "limiter.db")],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(3)
        ]
        each = [float(p.communicate(timeout=300)[0]) for p in procs]
        out["local, 3 processes at once"] = {"reserve_us": round(sum(each) / 3, 1)}
    return out


def wait_idle(home: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(neo(home, "status", "--json").stdout)["units_in_progress"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not idle after {timeout}s")
        time.sleep(0.5)


def status_process_seconds(home: Path) -> float:
    """`neo status --json` for the data directory of `home/neo.toml`, as a whole process."""
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "neo_cli", "status", "--json", "--config", str(home / "neo.toml")],
        capture_output=True,
        cwd=home,
        check=False,
    )
    return time.perf_counter() - t


def status_benchmark(per_enqueue: int = 35_000) -> dict:
    """`neo enqueue` of `per_enqueue` tasks (one per symbol, for adj_factor, income and
    balancesheet: ~105,000 queued), then `neo status` timed with the consumers running and
    draining at the API's limits, in process and as a whole new process."""
    from neo_cli import config
    from neo_cli.status import collect

    with tempfile.TemporaryDirectory(prefix="neo-bench-status-") as tmp:
        home = Path(tmp)
        (home / "neo.toml").write_text(
            f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
        )
        codes = [f"{n:06d}.SZ" for n in range(1, per_enqueue + 1)]
        (home / "codes.txt").write_text("\n".join(codes))
        enqueue_s = {}
        # adj_factor and the statements are asked for one symbol a call: a task per symbol.
        for kind in ("adj_factor", "income", "balancesheet"):
            t = time.perf_counter()
            out = neo(home, "enqueue", "--task-type", kind, "--symbols-file",
                      str(home / "codes.txt"), "--start-date", "20100101", "--end-date",
                      "20261120", timeout=900).stdout  # fmt: skip
            enqueue_s[kind] = (int(out.split()[1]), round(time.perf_counter() - t, 2))
        neo(home, "start")
        try:
            settings = config.load(home / "neo.toml", environ={})
            inproc, cli = [], []
            for _ in range(7):
                t = time.perf_counter()
                data = collect(settings)
                inproc.append(time.perf_counter() - t)
                cli.append(status_process_seconds(home))
            backlog = data["queues"]["fast"]["pending"] + data["queues"]["fast"]["scheduled"]
        finally:
            neo(home, "stop")
    return {
        "enqueue": enqueue_s,
        "backlog": backlog,
        "collect_s_median": round(sorted(inproc)[3], 3),
        "cli_s_median": round(sorted(cli)[3], 3),
        "cli_s_max": round(max(cli), 3),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import huey

    mem = psutil.virtual_memory().total / 2**30
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import redis_binary

    redis = redis_binary()
    if redis:
        version = subprocess.run([redis, "--version"], capture_output=True, text=True).stdout
        redis = next((w.split("=", 1)[1] for w in version.split() if w.startswith("v=")), "?")
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; duckdb "
        f"{duckdb.__version__}; huey {huey.__version__}; redis-server {redis or 'absent'}"
    )


def marked(name: str, lines: list[str]) -> list[str]:
    """A section between markers, so `--sections` can replace it alone later."""
    return [f"<!-- bench:{name} -->", *lines, f"<!-- /bench:{name} -->", ""]


COMPLETENESS = "<!-- completeness"  # bench/completeness.py's section, kept at the end


def merge(path: Path, name: str, lines: list[str]) -> None:
    """Put one marked section into BENCHMARKS.md, replacing its older copy (a new one goes
    before the completeness section)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    block = "\n".join(marked(name, lines))
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    elif COMPLETENESS in text:
        head, rest = text.split(COMPLETENESS, 1)
        text = head + block + "\n" + COMPLETENESS + rest
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def designs_section(designs: dict, plot: str | None) -> list[str]:
    import designs as D

    budget = sum(D.BUDGET.values())
    lines = [
        "## The seed's scenario: three designs, one budget of 1,200 calls/min",
        "",
        f"daily and adj_factor 300/min, income, balancesheet and cashflow 200/min; a "
        f"{designs['symbols']}-symbol market, one task per (interface, symbol) from "
        f"{designs['start'][:4]} — every history under the 6,000-row cap, so neo's planner "
        "(set to one symbol per call) makes the calls the baselines make and all three get the "
        "same rows —, real saves into DuckDB. Each design on a fresh protocol server in its "
        "own process, "
        f"one after another in this run; a steady stretch of {designs['seconds']:.0f} s after "
        f"a {designs['warmup']:.0f} s warm-up. Rows saved are read from the DuckDB file at "
        "both ends of the stretch.",
        "",
        "- **shared**: the old design — one Huey queue, one pool of 54 threads doing downloads "
        "and saves; a save (one unit's rows, one transaction) holds its worker "
        "(bench/baseline.py)",
        "- **split**: two queues (50 download threads, 4 save threads), a save per task "
        "(bench/baseline.py)",
        "- **neo**: as shipped (two queues, the batch saver, the ledger)",
        "",
        "| design | calls/min (server) | share of 1,200 | rows saved/min | calls vs shared | "
        "rows vs shared | worst 60 s window over its limit | rate-limit replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in designs["results"].items():
        over = max(v["worst_window"] - v["limit"] for v in r["per_api"].values())
        lines.append(
            f"| {name} | {r['calls_per_min']:,} | {r['share']:.1%} | {r['rows_per_min']:,} | "
            f"{r['calls_vs_shared']:.2f}× | {r['rows_vs_shared']:.2f}× | {over:+d} | "
            f"{r['rejected']} |"
        )
    lines += ["", "Per interface (calls/min, server):", ""]
    apis = list(D.BUDGET)
    lines.append("| design | " + " | ".join(f"{a} ({D.BUDGET[a]})" for a in apis) + " |")
    lines.append("|---|" + "---:|" * len(apis))
    for name, r in designs["results"].items():
        lines.append(
            f"| {name} | " + " | ".join(str(r["per_api"][a]["calls_per_min"]) for a in apis) + " |"
        )
    if plot:
        lines += ["", f"![calls/min over time per design]({plot})"]
    lines.append(f"\nTarget: neo ≥ 98% of {budget:,} and ≥ 1.9× the shared pool.")
    lines.append(
        "\nWhere the shared pool's workers spend their time: `bench/profile_shared.py` "
        "(py-spy on them, idle included; not part of `make bench`, as the profiler slows what "
        "it watches)."
    )
    return lines + [""]


def saver_section(savers: list[dict]) -> list[str]:
    import saver as SV

    return [
        "## The save path: rows/s into DuckDB",
        "",
        f"`BatchSaver` through its real flusher thread, into a table already holding a history "
        f"({SV.SYMBOLS:,} symbols; daily: {SV.DAYS:,} trading days each, statements: a report a "
        f"quarter for {SV.QUARTERS // 4} years), rows as the API sends them, in frames of "
        "min(batch_size, 1,000) rows, held back as the slow consumer holds back save tasks: "
        "while the rows buffered and being flushed reach max(5 × batch_size, 50,000). A flush "
        "takes every row waiting, so under a backlog batch_size decides when a flush starts, "
        "not how big it is. *fresh*: new keys; *recent*: keys "
        "already saved, on the latest dates; *scattered*: keys already saved, at random dates "
        "through history. The ceiling is DuckDB's own bulk write of the same typed rows in one "
        "transaction (an append for fresh rows, delete + insert for updates); beside it the same "
        "statements in transactions of 1,000 rows, as the saver commits them; the floor is one "
        "upsert per row (DELETE of its key + INSERT, a transaction each). The tables are keyed "
        "NOT NULL without a PRIMARY KEY, as neo makes them (neo_cli/db/schema.py).",
        "",
        SV.table(savers),
        "",
        "Target: ≥ 100,000 rows/s at 1,000-row batches for both update patterns.",
        "",
        "What a 1,000-row transaction costs DuckDB itself (typed rows, no staging of neo's; "
        "milliseconds per transaction, by statement). 100,000 rows/s is 10 ms per 1,000 rows "
        "all told. The saver can beat this column: a flusher that finds more than one batch "
        "waiting writes them in one transaction.",
        "",
        SV.profile_table(savers),
        "",
        f"What one flush of a full buffer ({savers[0]['flush_rows']:,} rows, as 1,000-row "
        "frames) spends in each step of the saver's own `write()`, milliseconds, mean of the "
        f"flushes {savers[0]['rows']:,} rows fill: *frame* is neo's Python (the API's rows into "
        "a DataFrame), *typing and "
        "checks* the SQL that types every value and marks bad rows, *reads after* the "
        "watermarks and the bad-row count.",
        "",
        SV.flush_table(savers),
        "",
    ]


def overhead_section(r: dict) -> list[str]:
    return [
        "## Overhead: neo against bare Huey, when the API costs nothing",
        "",
        "neo on a provider that answers at once (bench/instant.py: the simulated market's "
        "universe, one made-up row per call, no history built; the built-in simulated "
        f"provider spends {r['simulated_ms']} ms of CPU making a stock's whole history for a "
        "one-day query, in the fast consumer's process, which is the API's cost, not neo's) "
        f"with limits of 1,000,000/min: {r['neo']['units']:,} units of one row each (one day "
        "of daily bars per symbol) through both queues, the ledger and the batch saver, every "
        "row found once in "
        "the database afterwards; bare Huey (SqliteHuey, WAL, fsync, "
        f"{r['workers']} thread workers, as neo's download consumer) passing "
        f"{r['bare']['tasks']:,} no-op tasks. Both timed from 10% to 90% of the work done "
        "(bench/overhead.py).",
        "",
        "| what | per second | wall |",
        "|---|---:|---:|",
        f"| bare Huey, no-op tasks | {r['bare']['tasks_per_s']:,} | {r['bare']['wall_s']} s |",
        f"| neo, units end to end | {r['neo']['units_per_s']:,} | {r['neo']['wall_s']} s |",
        "",
        f"neo ÷ bare Huey: **{r['ratio']:.0%}** (target ≥ 50%).",
        "",
        *overhead_profile(r["neo"].get("profile", {})),
    ]


def overhead_profile(p: dict) -> list[str]:
    if "shares" not in p:
        return [f"No profile: {p.get('skipped', 'not taken')}.", ""]
    return [
        f"Where the fast consumer's time goes during the drain: py-spy, {p['seconds']} s at "
        f"50 Hz of the threads holding the GIL ({p['samples']:,} samples), in a second drain "
        "of its own (the profiler slows what it watches, so the timed drain runs without it); "
        "each sample put to the deepest step it was in:",
        "",
        "| step | share |",
        "|---|---:|",
        *(f"| {step} | {share:.1%} |" for step, share in p["shares"].items()),
        "",
    ]


def redis_section(shared: list[dict]) -> list[str]:
    lines = ["## On Redis: 1, 2 and 3 download machines, one writer, one budget", ""]
    if shared and "skipped" in shared[0]:
        return lines + [f"Skipped: {shared[0]['skipped']}.", ""]
    return lines + [
        "Queues and limiter on one real Redis (`[queue] storage` and `[limiter] backend` = "
        '"redis"): one `--role slow` writer and one `--role fast` download machine (each '
        "its own data directory and consumer, 50 workers), then a second and a third joining "
        f"the same cluster while it works; income statements at {shared[0]['limit']}/min for "
        "all of them. After each machine joins, a 15 s warm-up, then a stretch of 40 s: calls "
        "as the server counted them, the worst 60 s window of the run so far, the rate-limit "
        "replies since the stretch before, and Redis's own counters (INFO commandstats, "
        "commands run inside scripts included) over the stretch, per call.",
        "",
        "| download machines | calls/min (server) | share of limit | worst 60 s window | "
        "rate-limit replies | Redis commands per call | of which scripts |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['download_machines']} | {r['calls_per_min']} | {r['share']:.1%} | "
            f"{r['worst_window']} | {r['rejected']} | {r['redis_commands_per_call']} | "
            f"{r['redis_scripts_per_call']} |"
            for r in shared
        ),
        "",
    ]


def limiter_section(costs: dict) -> list[str]:
    return [
        "## What a slot costs",
        "",
        "One thread taking slots as fast as it can (no spacing), and reading the state the "
        "gate reads; microseconds each.",
        "",
        "| backend | per slot | per state read |",
        "|---|---:|---:|",
        *(
            f"| {name} | {v['reserve_us']} µs | "
            + (f"{v['state_us']} µs |" if "state_us" in v else "- |")
            for name, v in costs.items()
        ),
        "",
    ]


def status_section(r: dict) -> list[str]:
    enqueued = sum(n for n, _ in r["enqueue"].values())
    return [
        "## `neo status` and `neo enqueue` with a big backlog",
        "",
        "`neo enqueue` of one task per symbol for 35,000 symbols, whole process: "
        + ", ".join(f"{kind} {n:,} tasks in {s} s" for kind, (n, s) in r["enqueue"].items())
        + f". Then `neo start`; with the consumers draining at the API's limits and "
        f"{r['backlog']:,} of the {enqueued:,} tasks still queued, `neo status` timed:",
        "",
        "| what | median of 7 | worst |",
        "|---|---:|---:|",
        f"| `collect()` (the data behind `status`), in process | {r['collect_s_median']} s | - |",
        f"| `neo status --json`, a whole new process | {r['cli_s_median']} s | "
        f"{r['cli_s_max']} s |",
        "",
        "Target: < 0.5 s as a whole process.",
        "",
    ]


def designs_lines(designs: dict) -> list[str]:
    import designs as D

    plot = None
    try:
        import plots

        path = plots.calls_over_time(designs["results"], sum(D.BUDGET.values()))
        plot = str(path.relative_to(ROOT))
    except ImportError as exc:  # matplotlib: `make bench` installs it
        print(f"no plot: {exc}")
    return designs_section(designs, plot)


def fullmarket_lines(result: dict) -> list[str]:
    import fullmarket

    return fullmarket.section(result, fullmarket.plots_of(result))


def sections(quick: bool) -> dict[str, tuple[Callable[[], Any], Callable[[Any], list[str]]]]:
    """Every section of BENCHMARKS.md, in its order: (measure, render)."""
    import adherence
    import designs as D
    import fullmarket
    import overhead
    import saver as SV

    if quick:  # the seed's designs on short stretches and the daily save path
        return {
            "designs": (lambda: D.compare(symbols=500, warmup=10, seconds=20), designs_lines),
            "saver": (lambda: SV.measure(quick=True, datasets=(SV.DAILY,)), saver_section),
        }
    return {
        "designs": (lambda: D.compare(symbols=800, warmup=15, seconds=60), designs_lines),
        "adherence": (lambda: adherence.measure(seconds=300), adherence.section),
        "fullmarket": (fullmarket.measure, fullmarket_lines),
        "redis": (lambda: redis_scale_benchmark(40), redis_section),
        "saver": (SV.measure, saver_section),
        "overhead": (overhead.measure, overhead_section),
        "status": (status_benchmark, status_section),
        "limiter": (limiter_cost, limiter_section),
    }


def header(when: str) -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"`make bench`, started {when} on {machine()}. One unattended run (bench/run.py); "
            "figures side by side are from the same run, and each section says when it was "
            "measured. Calls are counted by the Tushare-protocol test server "
            "(tests/tushare_server.py) in its own process, when they arrive — not by neo.",
            "",
            "Reproduce: `make bench` (everything below but the last section, about 30 minutes); "
            "`.venv/bin/python bench/run.py --sections designs,adherence` (any of: "
            "designs, adherence, fullmarket, redis, saver, overhead, status, limiter) to measure "
            "some again and replace them here; `make bench-quick` (under 3 minutes, prints "
            "only); `make bench-completeness` (the last section, about 40 minutes).",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="under 3 minutes; prints only")
    parser.add_argument(
        "--sections", default="", help="measure only these and replace them in --output"
    )
    args = parser.parse_args()
    os.environ.pop("TUSHARE_TOKEN", None)
    table = sections(args.quick)
    names = [n.strip() for n in args.sections.split(",") if n.strip()] or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; allowed: {', '.join(table)}")
    if not args.quick and not args.sections:  # a whole run: a new file, completeness kept
        old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        kept = COMPLETENESS + old.split(COMPLETENESS, 1)[1] if COMPLETENESS in old else ""
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.output.write_text(header(started) + ("\n" + kept if kept else ""), "utf-8")
    failed = []
    for name in names:
        measure, render = table[name]
        begun = datetime.now(UTC)
        try:
            lines = render(measure())
        except Exception as exc:  # noqa: BLE001 - one section's failure must not cost the rest
            traceback.print_exc()
            failed.append(name)
            lines = [f"## {name}", "", f"**Failed in this run**: `{type(exc).__name__}: {exc}`"]
        if args.quick:
            print("\n".join(lines), flush=True)
            continue
        where = f"by `bench/run.py --sections {name}`" if args.sections else "in this run"
        ended = datetime.now(UTC).strftime("%H:%M")
        stamp = f"Measured {begun:%Y-%m-%d %H:%M}–{ended} UTC on {machine()}, {where}."
        lines[2:2] = [stamp, ""]
        merge(args.output, name, lines)
        print("\n".join(lines), flush=True)
    if not args.quick:
        print(f"wrote {args.output}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
