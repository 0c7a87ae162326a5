"""The seed's scenario, three designs side by side on one machine and one protocol server:

    shared  one Huey pool doing downloads and saves (the old design; bench/baseline.py)
    split   two queues, a save per task (bench/baseline.py)
    neo     neo as shipped: two queues, the batch saver, the ledger

A total budget of 1,200 calls/min (daily and adj_factor 300/min, the three statements 200/min),
one task per (interface, symbol) — neo's planner set to one symbol per call, so every design
makes the same calls — and real saves (DuckDB writes of a unit's rows). Calls are counted by
the protocol server in its own process; rows saved are read from the DuckDB file at the start
and end of the steady stretch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import neo, serve, tushare_config, wait_idle, window_figures  # noqa: E402

BUDGET = {"daily": 300, "adj_factor": 300, "income": 200, "balancesheet": 200, "cashflow": 200}
TABLES = tuple(BUDGET)
TOKEN = "bench-designs"
# From 2003: every symbol's bars and factors fit one call (under 6,000 rows, the row cap), so
# neo's planner makes the baselines' calls — one per (interface, symbol) — and gets the same
# rows. From 1990 a long history took neo two calls where a baseline's one call was cut at the
# cap and lost the oldest rows, and rows per minute compared a complete download with a cut one.
FIRST = "20030101"


def rows_in(path: Path, wait: float = 20.0) -> int:
    """Rows in the five tables, read while the writer may be between writes."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        try:
            tables = conn.execute("select table_name from information_schema.tables").fetchall()
            have = {r[0] for r in tables}
            return sum(
                conn.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES if t in have
            )
        finally:
            conn.close()


def stretch(warmup: float, seconds: float, path: Path) -> tuple[float, float, int, int]:
    t0 = time.monotonic() + warmup
    time.sleep(max(0.0, t0 - time.monotonic()))
    r0 = rows_in(path)
    t1 = t0 + seconds
    time.sleep(max(0.0, t1 - time.monotonic()))
    r1 = rows_in(path)
    return t0, t1, r0, r1


def listed_codes(url: str, n: int, token: str = TOKEN) -> list[str]:
    from neo_cli.providers.tushare import TushareProvider
    from neo_cli.tasktypes import dataset

    p = TushareProvider({"url": url, "token": token})
    try:
        d = dataset("stock_basic")
        reply = p.call("stock_basic", {"list_status": "L"}, d.fields)
        at = reply.fields.index("ts_code")
        return sorted(row[at] for row in reply.items)[:n]
    finally:
        p.close()


@contextlib.contextmanager
def running_baseline(
    design: str, home: Path, url: str, symbols: int, limits: dict[str, int], start: str = FIRST
) -> Iterator[None]:
    """A design of bench/baseline.py with its tasks enqueued and its consumers running; on
    leaving, the consumers are stopped at once (what is still queued is not counted)."""
    from neo_cli.db.database import Database

    Database(home / "bench.duckdb").ensure_schema()
    spec = ",".join(f"{a}={n}" for a, n in limits.items())
    script = [sys.executable, str(ROOT / "bench" / "baseline.py")]
    common = ["--design", design, "--home", str(home), "--url", url, "--limits", spec]
    codes = listed_codes(url, symbols, os.environ["TUSHARE_TOKEN"])
    enqueue = [*script, "enqueue", *common, "--codes", ",".join(codes), "--start-date", start]
    subprocess.run(enqueue, check=True, timeout=300)
    queues = [("fast", 54)] if design == "shared" else [("fast", 50), ("slow", 4)]
    procs = [
        subprocess.Popen(
            [*script, "consume", *common, "--queue", q, "--workers", str(w)],
            stdout=subprocess.DEVNULL,
            stderr=open(home / f"{q}.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        for q, w in queues
    ]
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)  # immediate: what is queued is not counted
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextlib.contextmanager
def running_neo(home: Path, url: str, limits: dict[str, int], start: str = FIRST) -> Iterator[Path]:
    """neo as shipped, one symbol per call (so it makes the calls the baselines make), with
    the market listed and bars and the three statements from `start` enqueued; yields its
    DuckDB file and stops neo on leaving."""
    tushare_config(
        home,
        url,
        {**limits, "stock_basic": 60, "trade_cal": 60},
        '[plan]\nmulti_symbol = false\nwhole_market = false\nstatements_vip = "false"\n',
    )
    neo(home, "start", "--fast-workers", "50", "--slow-workers", "4")
    try:
        neo(home, "enqueue", "--task-type", "stock_basic")
        wait_idle(home, 60)
        for kind in ("daily_qfq", "income", "balancesheet", "cashflow"):
            neo(home, "enqueue", "--task-type", kind, "--start-date", start)
        yield home / "data" / "neo.duckdb"
    finally:
        neo(home, "stop", "--timeout", "30")


def run_design(design: str, symbols: int, warmup: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"neo-bench-{design}-") as tmp:
        home = Path(tmp)
        limits = {**BUDGET, "stock_basic": 60, "trade_cal": 60}
        server = serve(home, symbols, limits, TOKEN)
        os.environ["TUSHARE_TOKEN"] = TOKEN
        try:
            if design == "neo":
                with running_neo(home, server.url, BUDGET) as db:
                    t0, t1, r0, r1 = stretch(warmup, seconds, db)
            else:
                with running_baseline(design, home, server.url, symbols, BUDGET):
                    t0, t1, r0, r1 = stretch(warmup, seconds, home / "bench.duckdb")
        finally:
            stats = server.stop()
            os.environ.pop("TUSHARE_TOKEN", None)
        per_api = {
            api: {
                **window_figures(stats["arrivals"][api], t0, t1, n),
                "rejected": stats["apis"][api]["rejected"],
            }
            for api, n in BUDGET.items()
        }
        calls = sum(f["calls_per_min"] for f in per_api.values())
        rejected = sum(stats["apis"][api]["rejected"] for api in BUDGET)
        timeline = {
            api: [round(t - t0, 2) for t in stats["arrivals"][api] if t0 - 5 <= t < t1]
            for api in BUDGET
        }
        return {
            "design": design,
            "calls_per_min": round(calls, 1),
            "budget": sum(BUDGET.values()),
            "share": round(calls / sum(BUDGET.values()), 4),
            "rows_per_min": round((r1 - r0) / (t1 - t0) * 60),
            "rejected": rejected,
            "per_api": per_api,
            "arrivals": timeline,
        }


def compare(symbols: int = 800, warmup: float = 15.0, seconds: float = 90.0) -> dict:
    results = {d: run_design(d, symbols, warmup, seconds) for d in ("shared", "split", "neo")}
    base = results["shared"]
    for r in results.values():
        r["calls_vs_shared"] = round(r["calls_per_min"] / max(base["calls_per_min"], 1e-9), 2)
        r["rows_vs_shared"] = round(r["rows_per_min"] / max(base["rows_per_min"], 1), 2)
    return {
        "symbols": symbols,
        "start": FIRST,
        "warmup": warmup,
        "seconds": seconds,
        "results": results,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=90)
    args = parser.parse_args()
    out = compare(args.symbols, seconds=args.seconds)
    for r in out["results"].values():
        print(json.dumps({k: v for k, v in r.items() if k != "arrivals"}), flush=True)
