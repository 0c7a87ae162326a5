"""Full-market scale: from an empty data directory to a complete database.

A 5,000-symbol market (listed, delisted and paused) on the Tushare-protocol test server in its
own process, at a 5,000-point account's limits (neo's defaults: 500/min for bars and factors,
200/min for statements). neo as shipped: `neo start`, stock_basic, then the full history of
daily_qfq (daily + adj_factor) and the three statements; timed until nothing is in progress,
then `neo verify` of the whole market. Calls per interface are the server's, next to the
row-cap minimum (rows ÷ row cap); every process's memory is sampled over the whole run.

    .venv/bin/python bench/fullmarket.py [--symbols 5000] [--timeout 1500]

Prints JSON; `bench/run.py` writes the same figures into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import neo, serve  # noqa: E402

from neo_cli.config import SCHEMA  # noqa: E402

TOKEN = "bench-full-market"
KINDS = ("daily_qfq", "income", "balancesheet", "cashflow")
TABLES = ("stock_basic", "daily", "adj_factor", "income", "balancesheet", "cashflow")


def limits() -> dict[str, int]:
    """neo's default limits (a 5,000-point account), which the server enforces too."""
    return {api: key.default for api, key in SCHEMA["rate_limits"].items()}


def row_caps() -> dict[str, int]:
    return {api: key.default for api, key in SCHEMA["row_caps"].items()}


class Sampler:
    """Every process of the run (server, supervisor, consumers) sampled by psutil every
    `every` seconds from outside, with `neo status --json` timed as a whole process."""

    def __init__(self, home: Path, server_pid: int, every: float = 5.0):
        self.home, self.server_pid, self.every = home, server_pid, every
        self.t0 = time.monotonic()
        self.memory: dict[str, list[tuple[float, float]]] = {}
        self.status_seconds: list[tuple[float, float, int]] = []  # (t, seconds, backlog)
        self.throttled: dict[str, int] = {}  # "queue: reason" -> samples that showed it
        self.cpu: dict[str, list[tuple[float, float]]] = {}  # CPU seconds used so far
        self.next = self.t0

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def sample(self) -> dict:
        t = time.perf_counter()
        data = json.loads(neo(self.home, "status", "--json").stdout)
        took = time.perf_counter() - t
        at = time.monotonic() - self.t0
        backlog = sum(q["pending"] + q["scheduled"] for q in data["queues"].values())
        self.status_seconds.append((at, took, backlog))
        for name, q in data["queues"].items():  # why a consumer held back, and how often
            if q.get("throttled"):
                why = f"{name}: " + re.sub(r"\d[\d,.]*", "N", q["throttled"].split(":")[0])
                self.throttled[why] = self.throttled.get(why, 0) + 1
        pids = {name: p.get("pid") for name, p in data["processes"].items()}
        pids["server"] = self.server_pid
        for name, pid in pids.items():
            if not pid:
                continue
            try:
                process = psutil.Process(pid)
                rss = process.memory_info().rss / 2**20
                cpu = process.cpu_times()
            except psutil.Error:
                continue
            self.memory.setdefault(name, []).append((round(at, 1), round(rss, 1)))
            self.cpu.setdefault(name, []).append((round(at, 1), cpu.user + cpu.system))
        self.next = time.monotonic() + self.every
        return data


def flat(series: list[tuple[float, float]]) -> dict:
    """Growth in the second half of a run: the last quarter against the second (both after
    the start-up), by their peaks and by their medians — a process that allocates for each
    flush peaks with each flush, and its level shows in the median."""
    if len(series) < 8:
        return {"samples": len(series)}
    n = len(series)
    second = sorted(v for _, v in series[n // 4 : n // 2])
    last = sorted(v for _, v in series[3 * n // 4 :])
    mid2, mid4 = second[len(second) // 2], last[len(last) // 2]
    return {
        "samples": n,
        "peak_mb": max(v for _, v in series),
        "second_quarter_max_mb": second[-1],
        "last_quarter_max_mb": last[-1],
        "growth_second_half": round(last[-1] / second[-1] - 1, 3) if second[-1] else None,
        "second_quarter_median_mb": mid2,
        "last_quarter_median_mb": mid4,
        "median_growth_second_half": round(mid4 / mid2 - 1, 3) if mid2 else None,
    }


def measure(symbols: int = 5000, timeout: float = 1500.0) -> dict:
    lim = limits()
    caps = row_caps()
    with tempfile.TemporaryDirectory(prefix="neo-bench-full-") as tmp:
        home = Path(tmp)
        server = serve(home, symbols, lim, TOKEN)
        os.environ["TUSHARE_TOKEN"] = TOKEN
        (home / "neo.toml").write_text(
            f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
            f'[provider]\nname = "tushare"\n[provider.tushare]\nurl = "{server.url}"\n'
        )
        sampler = Sampler(home, server.process.pid)
        enqueue_s: dict[str, float] = {}
        out: dict = {"symbols": symbols}
        try:
            t_start = time.perf_counter()
            neo(home, "start")
            t = time.perf_counter()
            neo(home, "enqueue", "-t", "stock_basic")
            enqueue_s["stock_basic"] = time.perf_counter() - t
            deadline = time.monotonic() + timeout
            listed = False
            data: dict = {}
            while time.monotonic() < deadline:
                if sampler.due():
                    data = sampler.sample()
                    if not listed and not data["units_in_progress"]:
                        listed = True
                        for kind in KINDS:
                            t = time.perf_counter()
                            neo(home, "enqueue", "-t", kind, timeout=600)
                            enqueue_s[kind] = time.perf_counter() - t
                        sampler.next = time.monotonic()
                    elif listed and not data["units_in_progress"]:
                        break
                time.sleep(0.5 if listed else 0.2)
            else:
                raise RuntimeError(f"not complete after {timeout:.0f}s")
            wall = time.perf_counter() - t_start
            neo(home, "stop", "--timeout", "60")
            t = time.perf_counter()
            verified = neo(home, "verify", timeout=900)
            verify_s = time.perf_counter() - t
            db = home / "data" / "neo.duckdb"
            import duckdb

            conn = duckdb.connect(str(db), read_only=True)
            try:
                rows = {
                    table: conn.execute(f"select count(*) from {table}").fetchone()[0]
                    for table in TABLES
                }
                distinct = "select count(distinct ts_code) from {}"
                symbols_with = {
                    table: conn.execute(distinct.format(table)).fetchone()[0]
                    for table in TABLES[1:]
                }
            finally:
                conn.close()
            out.update(
                wall_s=round(wall, 1),
                enqueue_s={k: round(v, 2) for k, v in enqueue_s.items()},
                verify_s=round(verify_s, 1),
                verify=verified.stdout.strip().splitlines()[-3:],
                rows=rows,
                symbols_with_rows=symbols_with,
                db_mb=round(db.stat().st_size / 2**20, 1),
                dead_letters=sum(t.get("dead_lettered", 0) for t in data["task_types"].values()),
            )
        finally:
            stats = server.stop()
            os.environ.pop("TUSHARE_TOKEN", None)
        calls = {}
        for api, s in (stats or {}).get("apis", {}).items():
            if not s["accepted"] and not s["rejected"]:
                continue
            cap = caps.get(api)
            calls[api] = {
                "calls": s["accepted"],
                "rejected": s["rejected"],
                "rows": s["rows"],
                "row_cap": cap,
                "minimum": math.ceil(s["rows"] / cap) if cap else None,
                "limit": lim.get(api),
                "max_in_window": s["max_in_window"],
            }
        out["calls"] = calls
        began = sampler.t0  # both clocks are the machine's monotonic one
        out["arrivals"] = {
            api: [round(t - began, 2) for t in times]
            for api, times in (stats or {}).get("arrivals", {}).items()
            if times
        }
        out["throttled"] = sampler.throttled
        out["cpu_series"] = sampler.cpu
        out["samples"] = len(sampler.status_seconds)
        out["memory"] = {k: flat(v) for k, v in sampler.memory.items()}
        out["memory_series"] = sampler.memory
        status = sorted(s for _, s, _ in sampler.status_seconds)
        out["status_s"] = {
            "median": round(status[len(status) // 2], 3) if status else None,
            "max": round(status[-1], 3) if status else None,
            "most_backlog": max((b for _, _, b in sampler.status_seconds), default=0),
        }
        return out


def section(r: dict, shown: dict[str, str]) -> list[str]:
    """The BENCHMARKS.md section for one full-market result; `shown`: its plots' paths."""
    lines = [
        f"## Full market: {r['symbols']:,} symbols from an empty data directory",
        "",
        "The Tushare-protocol test server in its own process holds the market (listed, "
        "delisted and paused symbols) and enforces a 5,000-point account's limits on a "
        "sliding 60 s window: 500/min for daily and adj_factor, 200/min for the statements "
        "(neo's defaults). neo as shipped: `neo start`, `neo enqueue -t stock_basic`, then "
        "`daily_qfq`, `income`, `balancesheet`, `cashflow` for the whole market's history, "
        "timed until nothing is in progress; then `neo stop` and `neo verify`.",
        "",
        f"**From `neo start` to a complete database: {r['wall_s'] / 60:.1f} minutes** "
        + (
            "(target ≤ 20). "
            if r["symbols"] >= 5000
            else "(the 20-minute target is for 5,000 symbols; this run is smaller). "
        )
        + f"`neo verify`: {r['verify_s']} s. DuckDB file: {r['db_mb']:,} MB. "
        f"Dead letters: {r['dead_letters']}.",
        "",
        "| interface | calls (server) | rows | row cap | minimum calls | calls ÷ minimum | "
        "most in any 60 s | limit | rate-limit replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for api, c in r["calls"].items():
        ratio = f"{c['calls'] / c['minimum']:.2f}×" if c["minimum"] else "-"
        lines.append(
            f"| {api} | {c['calls']:,} | {c['rows']:,} | {c['row_cap'] or '-'} | "
            f"{c['minimum'] or '-'} | {ratio} | {c['max_in_window']} | {c['limit']} | "
            f"{c['rejected']} |"
        )
    lines += [
        "",
        "| table | rows | symbols with rows |",
        "|---|---:|---:|",
        *(f"| {t} | {n:,} | {r['symbols_with_rows'].get(t, '-')} |" for t, n in r["rows"].items()),
        "",
        "`neo enqueue` per task type (whole process, seconds): "
        + ", ".join(f"{k} {v}" for k, v in r["enqueue_s"].items())
        + ".",
        "",
        f"`neo status --json` as a whole process, sampled every 5 s during the run: median "
        f"{r['status_s']['median']} s, worst {r['status_s']['max']} s (at most "
        f"{r['status_s']['most_backlog']:,} tasks queued).",
        "",
        "Memory (RSS, MB, psutil from outside, every 5 s): flat means the last quarter of the "
        "run is no higher than the second quarter — by its peak and by its median (the slow "
        "consumer allocates for each flush, so its peaks come and go with the flushes).",
        "",
        "| process | samples | peak | max in 2nd quarter | max in last quarter | growth of the max "
        "| median in 2nd quarter | median in last quarter | growth of the median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {p} | {m['samples']} | {m.get('peak_mb', '-')} | "
            f"{m.get('second_quarter_max_mb', '-')} | {m.get('last_quarter_max_mb', '-')} | "
            f"{m.get('growth_second_half', 0):+.1%} | {m.get('second_quarter_median_mb', '-')} | "
            f"{m.get('last_quarter_median_mb', '-')} | "
            f"{m.get('median_growth_second_half', 0):+.1%} |"
            for p, m in r["memory"].items()
            if "peak_mb" in m
        ),
    ]
    if "memory" in shown:
        lines += ["", f"![memory over the full-market run]({shown['memory']})"]
    if "calls" in shown:
        lines += [
            "",
            "Calls per minute as the server counted them, per interface, over the whole run "
            "(60 s bins):",
            "",
            f"![calls per interface over the full-market run]({shown['calls']})",
        ]
    if "cpu" in shown:
        lines += [
            "",
            "Cores each process kept busy (psutil, between 5 s samples; the machine has "
            f"{os.cpu_count()}):",
            "",
            f"![CPU per process over the full-market run]({shown['cpu']})",
        ]
    if "throttled" in r:
        seen = ", ".join(f"{k} in {n}" for k, n in sorted(r["throttled"].items())) or "never"
        lines += [
            "",
            f"Consumers holding back (a `neo status` sample showing a reason; {r['samples']} "
            f"samples): {seen}.",
        ]
    return lines + [""]


def plots_of(result: dict) -> dict[str, str]:
    """The run's PNGs (memory, calls, CPU over time), by name, relative to the repository;
    none without matplotlib (`make bench` installs it)."""
    try:
        import plots
    except ImportError as exc:
        print(f"no plots: {exc}")
        return {}
    head = f"Full market, {result['symbols']:,} symbols"
    made = {
        "memory": plots.memory_over_time(
            result["memory_series"], f"{head}: memory of every process"
        ),
        "calls": plots.calls_per_interface(
            result["arrivals"], f"{head}: calls per interface (server)"
        ),
        "cpu": plots.cpu_over_time(result["cpu_series"], f"{head}: CPU per process"),
    }
    return {name: str(path.relative_to(ROOT)) for name, path in made.items()}


def write(result: dict, output: Path) -> list[str]:
    """Merge the section for `result` into `output` (BENCHMARKS.md), with its plots."""
    from run import machine, merge

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = section(result, plots_of(result))
    lines[2:2] = [f"Measured {when} on {machine()}, by `bench/fullmarket.py`.", ""]
    merge(output, "fullmarket", lines)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=1500)
    parser.add_argument("--output", type=Path, help="merge the figures into this BENCHMARKS.md")
    parser.add_argument("--from-json", type=Path, help="a saved result instead of a new run")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        result = measure(args.symbols, args.timeout)
        Path(tempfile.gettempdir(), "neo-fullmarket.json").write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k != "memory_series"}, indent=1))
    if args.output:
        print("\n".join(write(result, args.output)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
