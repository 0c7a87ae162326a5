"""`make bench`: measure what the product promises and write BENCHMARKS.md.

0. The seed's scenario: three designs side by side (bench/designs.py) — one shared pool, two
   queues with a save per task, neo — at a 1,200 calls/min budget, calls counted by the server.
1. Rate: real consumers (50 fast, 4 slow) against the Tushare-protocol test server in its own
   process, which counts every call at arrival and refuses any over a limit in a sliding
   60-second window. All six interfaces busy at once; calls per minute from the server's
   arrival times over a steady stretch.
2. Shared budget: three instances (data directories) on one token and one real Redis; the
   server counts the calls, Redis counts the limiter's scripts.
3. Slot cost of each limiter backend.
4. The save path (bench/saver.py): the batch saver through its flusher at batch_size 1, 100,
   1,000 and 10,000, fresh rows and updates on recent or scattered dates, beside DuckDB's own
   bulk write (the ceiling) and row-by-row inserts (the floor).
5. Overhead (bench/overhead.py): neo end to end on a free API against bare Huey's no-op tasks.
6. Full market (bench/fullmarket.py): 5,000 symbols from an empty data directory.

Every loop is bounded in count and time. Figures are from one run on this machine.
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
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


LIMITS = {
    "stock_basic": 60,
    "daily": 500,
    "adj_factor": 500,
    "income": 200,
    "balancesheet": 200,
    "cashflow": 200,
}


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
    """The Tushare-protocol test server in its own process: it counts every call at arrival."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tushare_server import ServerProcess

    spec = ",".join(f"{api}={n}" for api, n in limits.items())
    return ServerProcess(
        home,
        "--symbols",
        str(symbols),
        "--end-date",
        "20261120",
        "--token",
        token,
        "--limits",
        spec,
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


def rate_benchmark(seconds: float, symbols: int) -> dict:
    """Every interface at its limit at once, real consumers (50 fast, 4 slow), real saves,
    against the protocol server in its own process; calls/min, the worst window and the
    rate-limit replies as the server counted them, over a steady stretch."""
    limits = {**LIMITS, "trade_cal": 60}
    token = "bench-token"
    with tempfile.TemporaryDirectory(prefix="neo-bench-") as tmp:
        home = Path(tmp)
        server = serve(home, symbols, limits, token)
        os.environ["TUSHARE_TOKEN"] = token
        samples = []
        try:
            # One call per symbol for the statements, so every interface has a backlog to
            # run at its limit (whole-market statements would finish in a few calls).
            tushare_config(
                home,
                server.url,
                limits,
                '[plan]\nstatements_vip = "false"\nmulti_symbol = false\nwhole_market = false\n',
            )
            neo(home, "start", "--fast-workers", "50", "--slow-workers", "4")
            try:
                neo(home, "enqueue", "--task-type", "stock_basic")
                wait_idle(home, 60)
                for kind in ("daily_qfq", "income", "balancesheet", "cashflow"):
                    neo(home, "enqueue", "--task-type", kind)
                t0 = time.monotonic() + 15.0  # warm-up
                t1 = t0 + seconds
                while time.monotonic() < t1:
                    time.sleep(5)
                    samples.append(json.loads(neo(home, "status", "--json").stdout))
                last = samples[-1]
            finally:
                neo(home, "stop", "--timeout", "30")
        finally:
            stats = server.stop()
            os.environ.pop("TUSHARE_TOKEN", None)
        per_api = {}
        for api, limit in LIMITS.items():
            figures = window_figures(stats["arrivals"][api], t0, t1, limit)
            figures["rejected"] = stats["apis"][api]["rejected"]
            figures["backlog_left"] = (
                last["task_types"][api]["pending"] + last["task_types"][api]["scheduled"]
            )
            per_api[api] = figures
        rss = {k: [s["processes"][k]["rss_mb"] or 0 for s in samples] for k in ("fast", "slow")}
        third = max(1, len(samples) // 3)
        memory = {
            k: {"first_third_max": max(v[:third]), "last_third_max": max(v[-third:])}
            for k, v in rss.items()
        }
        return {
            "minutes": round(seconds / 60, 2),
            "symbols": symbols,
            "per_api": per_api,
            "memory_mb": memory,
        }


def redis_scale_benchmark(seconds: float, limit: int = 300, most: int = 3) -> list[dict]:
    """Queues and limiter on one real Redis: one writer (`--role slow`) and 1, 2, then 3
    download machines (`--role fast`, each its own data directory and consumer), income
    statements at `limit`/min for all of them. The server counts calls; Redis counts the
    commands it served (INFO commandstats), per call."""
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import RedisServer, redis_binary

    binary = redis_binary()
    if binary is None:
        return [{"skipped": "redis-server is not installed"}]
    token = "bench-redis-token"
    limits = {"income": limit, "stock_basic": 60, "trade_cal": 60}
    out = []
    for k in range(1, most + 1):
        with tempfile.TemporaryDirectory(prefix="neo-bench-redis-") as tmp:
            root = Path(tmp)
            redis = RedisServer(root, binary, persistent=True)
            server = serve(root, 2000, limits, token)
            os.environ["TUSHARE_TOKEN"] = token
            homes = []
            try:
                for i in range(k + 1):
                    home = root / f"machine{i}"
                    home.mkdir()
                    role = "slow" if i == 0 else "fast"
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
                writer = homes[0]
                neo(writer, "enqueue", "-t", "stock_basic")
                wait_idle(writer, 60)
                neo(writer, "enqueue", "-t", "income")
                client = redis.client()
                client.config_resetstat()
                reset = time.monotonic()
                t0 = reset + 15.0
                t1 = t0 + seconds
                time.sleep(max(0.0, t1 - time.monotonic()))
                commands = client.info("commandstats")
                for home in reversed(homes):
                    neo(home, "stop", "--timeout", "30")
            finally:
                stats = server.stop()
                redis.stop()
                os.environ.pop("TUSHARE_TOKEN", None)
            arrivals = stats["arrivals"]["income"]
            figures = window_figures(arrivals, t0, t1, limit)
            calls = sum(1 for t in arrivals if reset <= t < t1)
            everything = sum(v["calls"] for v in commands.values())
            scripts = sum(
                v["calls"] for c, v in commands.items() if c in ("cmdstat_evalsha", "cmdstat_eval")
            )
            figures.update(
                download_machines=k,
                rejected=stats["apis"]["income"]["rejected"],
                redis_commands_per_call=round(everything / calls, 1) if calls else None,
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
            backends["redis"] = RedisBackend(redis.url, "bench", list(LIMITS))
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


def plans_benchmark(symbols: int = 300, limit: int = 500) -> list[dict]:
    """A full-history download of `symbols` symbols' daily bars from the Tushare protocol test
    server (its own process), at `limit` calls/min: one call per symbol and range, then with
    the call-saving plans. Calls counted by the server; time from enqueue to all saved."""
    sys.path.insert(0, str(ROOT / "tests"))

    out = []
    for label, plans in (("per-symbol only", "false"), ("call-saving plans", "true")):
        with tempfile.TemporaryDirectory(prefix="neo-bench-") as tmp:
            home = Path(tmp)
            server = serve(
                home, symbols, {"daily": limit, "stock_basic": 60, "trade_cal": 60}, "bench-token"
            )
            try:
                (home / "neo.toml").write_text(
                    f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
                    f'[provider]\nname = "tushare"\n[provider.tushare]\nurl = "{server.url}"\n'
                    f"[rate_limits]\ndaily = {limit}\n"
                    f"[plan]\nmulti_symbol = {plans}\nwhole_market = {plans}\n"
                    "[slow]\nbatch_size = 20000\nbatch_timeout = 1.0\n"
                )
                os.environ["TUSHARE_TOKEN"] = "bench-token"
                neo(home, "start")
                neo(home, "enqueue", "--task-type", "stock_basic")
                wait_idle(home, 60)
                t = time.perf_counter()
                neo(home, "enqueue", "--task-type", "daily", "--end-date", "20261120")
                wait_idle(home, 900)
                seconds = time.perf_counter() - t
                neo(home, "stop")
            finally:
                stats = server.stop()
                os.environ.pop("TUSHARE_TOKEN", None)
            daily = stats["apis"]["daily"]
            out.append(
                {
                    "plan": label,
                    "calls": daily["accepted"],
                    "rows": daily["rows"],
                    "seconds": round(seconds, 1),
                    "rejected": daily["rejected"],
                    "max_in_window": daily["max_in_window"],
                }
            )
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


def status_benchmark(units_wanted: int = 100_000) -> dict:
    """`neo status` with a big backlog: enqueue at least `units_wanted` tasks, start the
    consumers (they drain at the API's limit meanwhile) and time status, in and out of process."""
    from neo_cli import config
    from neo_cli.status import collect

    with tempfile.TemporaryDirectory(prefix="neo-bench-") as tmp:
        home = Path(tmp)
        (home / "neo.toml").write_text(
            f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
        )
        codes = [f"{n:06d}.SZ" for n in range(1, units_wanted // 4 + 2)]
        (home / "codes.txt").write_text("\n".join(codes))
        t = time.perf_counter()
        enqueued = 0
        # One task per symbol and interface (adj_factor and the statements are asked for one
        # symbol a call), so the backlog is as many tasks as there are symbols times four.
        for kind in ("adj_factor", "income", "balancesheet", "cashflow"):
            out = neo(
                home,
                "enqueue",
                "--task-type",
                kind,
                "--symbols-file",
                str(home / "codes.txt"),
                "--start-date",
                "20100101",
                "--end-date",
                "20261120",
                timeout=900,
            ).stdout
            enqueued += int(out.split()[1])
        enqueue_s = time.perf_counter() - t
        neo(home, "start")
        try:
            settings = config.load(home / "neo.toml", environ={})
            inproc, cli = [], []
            for _ in range(5):
                t = time.perf_counter()
                data = collect(settings)
                inproc.append(time.perf_counter() - t)
                cli.append(status_process_seconds(home))
            backlog = data["queues"]["fast"]["pending"] + data["queues"]["fast"]["scheduled"]
        finally:
            neo(home, "stop")
    return {
        "enqueued": enqueued,
        "enqueue_s": round(enqueue_s, 1),
        "backlog": backlog,
        "collect_s_median": round(sorted(inproc)[2], 3),
        "cli_s_median": round(sorted(cli)[2], 3),
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
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; duckdb "
        f"{duckdb.__version__}"
    )


def marked(name: str, lines: list[str]) -> list[str]:
    """A section between markers, so `--sections` can replace it alone later."""
    return [f"<!-- bench:{name} -->", *lines, f"<!-- /bench:{name} -->", ""]


def merge(path: Path, name: str, lines: list[str], before: str = "## API budget used") -> None:
    """Put one marked section into BENCHMARKS.md, replacing its older copy."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    block = "\n".join(marked(name, lines))
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    elif before in text:
        head, rest = text.split(before, 1)
        text = head + block + "\n" + before + rest
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
        f"{designs['symbols']}-symbol market, one task per (interface, symbol) with its whole "
        "history (neo's planner set to one symbol per call, so all three make the same calls), "
        "real saves into DuckDB. Each design on a fresh protocol server in its own process, "
        f"one after another in this run; a steady stretch of {designs['seconds']:.0f} s after "
        "a 15 s warm-up. Rows saved are read from the DuckDB file at both ends of the stretch.",
        "",
        "- **shared**: the old design — one Huey queue, one pool of 54 threads doing downloads "
        "and saves; a save (one unit's rows, one transaction) holds its worker "
        "(bench/baseline.py)",
        "- **split**: two queues (50 download threads, 4 save threads), a save per task "
        "(bench/baseline.py)",
        "- **neo**: as shipped (two queues, the batch saver, the ledger)",
        "",
        "- **hueyrl**: split, paced by Huey's built-in `rate_limit` (a fixed 60 s window per "
        "interface) instead of neo's limiter; *bounced* counts the tasks Huey put back because "
        "the window was full (its `SIGNAL_RATE_LIMITED`)",
        "",
        "| design | calls/min (server) | share of 1,200 | rows saved/min | calls vs shared | "
        "rows vs shared | worst 60 s window over its limit | rate-limit replies | bounced |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in designs["results"].items():
        over = max(v["worst_window"] - v["limit"] for v in r["per_api"].values())
        lines.append(
            f"| {name} | {r['calls_per_min']:,} | {r['share']:.1%} | {r['rows_per_min']:,} | "
            f"{r['calls_vs_shared']:.2f}× | {r['rows_vs_shared']:.2f}× | {over:+d} | "
            f"{r['rejected']} | {r.get('bounced', '-')} |"
        )
    lines += ["", "Per interface (calls/min, server):", ""]
    apis = list(D.BUDGET)
    lines.append("| design | " + " | ".join(f"{a} ({D.BUDGET[a]})" for a in apis) + " |")
    lines.append("|---|" + "---:|" * len(apis))
    for name, r in designs["results"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(str(r["per_api"][a]["calls_per_min"]) for a in apis)
            + " |"
        )
    if plot:
        lines += ["", f"![calls/min over time per design]({plot})"]
    lines.append(f"\nTarget: neo ≥ 98% of {budget:,} and ≥ 1.9× the shared pool.")
    return lines + [""]


def saver_section(savers: list[dict]) -> list[str]:
    import saver as SV

    return [
        "## The save path: rows/s into DuckDB",
        "",
        f"`BatchSaver` through its real flusher thread, into a table already holding a history "
        f"({SV.SYMBOLS:,} symbols; daily: {SV.DAYS:,} trading days each, statements: a report a "
        f"quarter for {SV.QUARTERS // 4} years), rows as the API sends them, in frames of "
        "min(batch_size, 1,000) rows with a bounded backlog. *fresh*: new keys; *recent*: keys "
        "already saved, on the latest dates; *scattered*: keys already saved, at random dates "
        "through history. The ceiling is DuckDB's own bulk write of the same typed rows in one "
        "transaction (an append for fresh rows, delete + insert for updates); the floor is one "
        "`INSERT OR REPLACE` per row.",
        "",
        SV.table(savers),
        "",
        "Target: ≥ 100,000 rows/s at 1,000-row batches for both update patterns.",
        "",
    ]


def overhead_section(r: dict) -> list[str]:
    return [
        "## Overhead: neo against bare Huey, when the API costs nothing",
        "",
        "neo on the built-in simulated provider with no latency and limits of 1,000,000/min, "
        f"{r['neo']['units']:,} units of one row each (one day of daily bars per symbol) through "
        "both queues, the ledger and the batch saver; bare Huey (SqliteHuey, WAL, fsync, "
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
    ]


def report(
    rate: dict,
    savers: list[dict],
    status: dict,
    plans: list[dict],
    shared: list[dict],
    costs: dict,
    designs: dict | None = None,
    plot: str | None = None,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {when} on {machine()}, by `make bench` (bench/run.py). One run; figures",
        "side by side are from the same run. Calls are counted by the Tushare-protocol test",
        "server (tests/tushare_server.py) in its own process, when they arrive — not by neo.",
        "",
        *(marked("designs", designs_section(designs, plot)) if designs else []),
        "## API budget used: every interface at once, real consumers",
        "",
        f"50 fast workers, 4 slow, real saves, one symbol per call (so every interface keeps a "
        f"backlog); the server holds a {rate['symbols']}-symbol market"
        " and refuses any call over each interface's limit in a sliding 60 s window. Steady "
        f"stretch of {rate['minutes']} minutes after a 15 s warm-up.",
        "",
        "| interface | limit/min | calls/min (server) | share of limit | worst 60 s window | "
        "rate-limit replies | backlog left |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for api, v in rate["per_api"].items():
        lines.append(
            f"| {api} | {v['limit']} | {v['calls_per_min']} | {v['share']:.1%} | "
            f"{v['worst_window']} | {v['rejected']} | {v['backlog_left']} |"
        )
    lines += [
        "",
        "An interface whose backlog ran out before the end of the stretch (stock_basic has three "
        "calls) shows less than its limit: it had nothing left to ask. The margin "
        "(`[limiter] margin_seconds` = 0.6) leaves 1% of each limit unused on purpose.",
        "",
        "## On Redis: 1, 2 and 3 download machines, one writer, one budget",
        "",
    ]
    if shared and "skipped" in shared[0]:
        lines.append(f"Skipped: {shared[0]['skipped']}.")
    else:
        lines += [
            "Queues and limiter on one real Redis (`[queue] storage` and `[limiter] backend` = "
            '"redis"): one `--role slow` writer and 1, 2, then 3 `--role fast` download '
            "machines (each its own data directory and consumer, 50 workers), income "
            f"statements at {shared[0]['limit']}/min for all of them, a fresh Redis and server "
            "each time. Redis's own counters (INFO commandstats) from the start of the work to "
            "the end of the stretch, per call the server counted.",
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
        ]
    lines += [
        "",
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
    lines += [
        "Memory of the rate run (RSS, MB, sampled every 5 s): is it flat?",
        "",
        "| consumer | max in the first third | max in the last third |",
        "|---|---:|---:|",
        *(
            f"| {k} | {v['first_third_max']} | {v['last_third_max']} |"
            for k, v in rate["memory_mb"].items()
        ),
        "",
    ]
    lines += marked("saver", saver_section(savers))
    lines += [
        "",
        "## Call-saving plans: full history of 300 symbols' daily bars at 500 calls/min",
        "",
        "Against the Tushare-protocol test server (tests/tushare_server.py, its own process, "
        "enforcing 500/min on a sliding window); calls counted by the server, time from "
        "`neo enqueue` to every row saved.",
        "",
        "| plan | calls | rows | time | rejections | most calls in any 60 s |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {p['plan']} | {p['calls']:,} | {p['rows']:,} | {p['seconds']} s | "
            f"{p['rejected']} | {p['max_in_window']} |"
            for p in plans
        ),
    ]
    lines += [
        "",
        "## `neo status` with a big backlog",
        "",
        f"{status['enqueued']:,} tasks enqueued by four `neo enqueue` runs in "
        f"{status['enqueue_s']} s; "
        f"consumers running and draining; {status['backlog']:,} still queued while timing.",
        "",
        "| what | median of 5 |",
        "|---|---:|",
        f"| `collect()` (the data behind `status`), in process | {status['collect_s_median']} s |",
        f"| `neo status --json`, a whole new process | {status['cli_s_median']} s |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    import designs as D
    import saver as SV

    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--symbols", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="under 3 minutes; prints only")
    parser.add_argument(
        "--sections",
        default="",
        help="designs,saver: measure only these and replace them in --output",
    )
    args = parser.parse_args()
    if args.sections:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        stamp = f"Measured {when} on {machine()}, by `bench/run.py --sections`."
        for name in args.sections.split(","):
            if name == "designs":
                designs = D.compare(symbols=800, warmup=15, seconds=60)
                import plots

                plot = plots.calls_over_time(designs["results"], sum(D.BUDGET.values()))
                section = designs_section(designs, str(plot.relative_to(ROOT)))
            elif name == "saver":
                section = saver_section(SV.measure())
            elif name == "overhead":
                import overhead

                section = overhead_section(overhead.measure())
            elif name == "fullmarket":
                import fullmarket

                print("\n".join(fullmarket.write(fullmarket.measure(), args.output)))
                continue
            else:
                parser.error(
                    f"unknown section {name!r}; allowed: designs, saver, overhead, fullmarket"
                )
            section.insert(2, stamp)
            section.insert(3, "")
            merge(args.output, name, section)
            print("\n".join(section), flush=True)
        return 0
    if args.quick:
        designs = D.compare(symbols=500, warmup=10, seconds=20)
        savers = SV.measure(quick=True, datasets=(SV.DAILY,))
        print("\n".join(designs_section(designs, None) + saver_section(savers)))
        return 0
    designs = D.compare(symbols=800, warmup=15, seconds=60)
    plot = None
    try:
        import plots

        path = plots.calls_over_time(designs["results"], sum(D.BUDGET.values()))
        plot = str(path.relative_to(ROOT))
    except ImportError as exc:  # matplotlib: `make bench` installs it
        print(f"no plot: {exc}")
    print(json.dumps({k: {**v, "arrivals": "…"} for k, v in designs["results"].items()}))
    costs = limiter_cost()
    print(json.dumps(costs, indent=1))
    shared = redis_scale_benchmark(45)
    savers = SV.measure()
    print(SV.table(savers))
    plans = plans_benchmark()
    print(json.dumps(plans, indent=1))
    status = status_benchmark()
    print(json.dumps(status, indent=1))
    rate = rate_benchmark(args.seconds, args.symbols)
    print(json.dumps(rate, indent=1))
    import overhead

    costs_of_machinery = overhead.measure()
    print(json.dumps(costs_of_machinery, indent=1))
    import fullmarket

    full = fullmarket.measure()
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    args.output.write_text(report(rate, savers, status, plans, shared, costs, designs, plot))
    merge(args.output, "overhead", overhead_section(costs_of_machinery))
    fullmarket.write(full, args.output)
    # The planner at 5,000 symbols and the ledger after a year take 40 minutes of their own:
    # `make bench-completeness` measures them; their last figures are carried over.
    begin, end = "<!-- completeness", "<!-- /completeness -->"
    if begin in old and end in old:
        kept = begin + old.split(begin, 1)[1].split(end, 1)[0] + end
        args.output.write_text(args.output.read_text(encoding="utf-8") + "\n" + kept + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
