"""Limit adherence: neo's limiter beside Huey's built-in `rate_limit`, in one run.

Each interface at its limit (a 5,000-point account's: daily and adj_factor 500/min, the three
statements 200/min) for a steady stretch of at least five minutes, each side against a
protocol server of its own, in its own process, counting every call at arrival and refusing
any over a limit in a sliding 60 s window:

    neo     as shipped, one symbol per call (so every interface keeps a backlog)
    hueyrl  two Huey queues (50 download threads, 4 save threads, a save per task), paced by
            Huey's `rate_limit(name, limit, 60)`, a fixed window per interface
            (bench/baseline.py); a task over the window raises and Huey reschedules it

Both run at the same time on the same machine, with the same symbols and dates (the last
`YEARS` years, so a call is a few hundred rows and the saves keep up). Figures per interface,
all from the servers: calls/min over the stretch and its share of the limit (the fill
ratio), the most calls in any 60 s window of the whole run, rate-limit replies; and Huey's own
count of the tasks it bounced (`SIGNAL_RATE_LIMITED`).

    .venv/bin/python bench/adherence.py [--seconds 300] [--symbols 3500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from designs import running_baseline, running_neo  # noqa: E402
from fullmarket import limits as default_limits  # noqa: E402
from run import neo, serve, window_figures  # noqa: E402

APIS = ("daily", "adj_factor", "income", "balancesheet", "cashflow")
TOKEN = "bench-adherence"
START = "20240101"  # about three years of bars and reports a call
WARMUP = 15.0


def serve_both(homes: dict[str, Path], symbols: int, served: dict[str, int]) -> dict:
    """A protocol server for each side, started at once: each makes its whole market before
    it listens, and two cores make two markets in the time of one."""
    with ThreadPoolExecutor(len(homes)) as pool:
        started = {side: pool.submit(serve, h, symbols, served, TOKEN) for side, h in homes.items()}
    servers = {side: f.result() for side, f in started.items() if not f.exception()}
    failed = [f.exception() for f in started.values() if f.exception()]
    if failed:
        for server in servers.values():
            server.stop()
        raise failed[0]
    return servers


def measure(seconds: float = 300.0, symbols: int = 3500) -> dict:
    limits = {api: n for api, n in default_limits().items() if api in APIS}
    served = {**limits, "stock_basic": 60, "trade_cal": 60}
    os.environ["TUSHARE_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory(prefix="neo-bench-adherence-") as tmp:
        root = Path(tmp)
        homes = {side: root / side for side in ("neo", "hueyrl")}
        for home in homes.values():
            home.mkdir()
        servers = serve_both(homes, symbols, served)
        stats = {}
        try:
            with (
                running_neo(homes["neo"], servers["neo"].url, limits, START),
                running_baseline(
                    "hueyrl", homes["hueyrl"], servers["hueyrl"].url, symbols, limits, START
                ),
            ):
                t0 = time.monotonic() + WARMUP
                t1 = t0 + seconds
                time.sleep(max(0.0, t1 - time.monotonic()))
                left = json.loads(neo(homes["neo"], "status", "--json").stdout)["task_types"]
        finally:
            for side, server in servers.items():
                stats[side] = server.stop()
            os.environ.pop("TUSHARE_TOKEN", None)
        bounced_file = homes["hueyrl"] / "bounced.fast"
        bounced = int(bounced_file.read_text()) if bounced_file.exists() else 0
    out: dict = {"seconds": seconds, "symbols": symbols, "start": START, "bounced": bounced}
    for side, s in stats.items():
        out[side] = {
            api: {
                **window_figures(s["arrivals"][api], t0, t1, limits[api]),
                "rejected": s["apis"][api]["rejected"],
            }
            for api in APIS
        }
    for api in APIS:
        out["neo"][api]["backlog_left"] = left[api]["pending"] + left[api]["scheduled"]
    return out


def section(r: dict) -> list[str]:
    lines = [
        "## Limit adherence: neo's limiter beside Huey's `rate_limit`",
        "",
        "Every interface at a 5,000-point account's limit, both sides at once on this "
        f"machine, each against its own protocol server (its own process) holding a "
        f"{r['symbols']:,}-symbol market and refusing any call over a limit in a sliding 60 s "
        f"window; one call per (interface, symbol), bars and reports from {r['start']}; a "
        f"steady stretch of {r['seconds'] / 60:.1f} minutes after a {WARMUP:.0f} s warm-up "
        "(bench/adherence.py).",
        "",
        "- **neo**: as shipped, one symbol per call",
        "- **hueyrl**: two Huey queues (50 download threads, 4 save threads, a save per task) "
        "paced by Huey's `rate_limit(name, limit, 60)` — a fixed 60 s window per interface",
        "",
        "| interface | limit/min | neo calls/min | neo fill | neo worst 60 s | neo rate-limit "
        "replies | Huey calls/min | Huey fill | Huey worst 60 s | Huey rate-limit replies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for api, mine in r["neo"].items():
        huey = r["hueyrl"][api]
        lines.append(
            f"| {api} | {mine['limit']} | {mine['calls_per_min']} | {mine['share']:.1%} | "
            f"{mine['worst_window']} | {mine['rejected']} | {huey['calls_per_min']} | "
            f"{huey['share']:.1%} | {huey['worst_window']} | {huey['rejected']} |"
        )
    worst = min(v["share"] for v in r["neo"].values())
    over = sum(max(0, v["worst_window"] - v["limit"]) for v in r["neo"].values())
    left = min(v["backlog_left"] for v in r["neo"].values())
    lines += [
        "",
        f"neo: the lowest fill **{worst:.1%}** (target ≥ 98%), "
        f"{'no window over its limit' if not over else f'{over} calls over a limit'}, "
        f"{sum(v['rejected'] for v in r['neo'].values())} rate-limit replies; every interface "
        f"still had work queued at the end (at least {left:,} tasks), so the fill is the "
        "limiter's, not a backlog that ran out.",
        "",
        f"Huey's `rate_limit` bounced {r['bounced']:,} tasks (its `SIGNAL_RATE_LIMITED`: a "
        "task over the window, put back to run again). Its window is fixed — counted from "
        "the wall clock's minute — so the calls of one window's end and the next one's start "
        "land in one sliding 60 s window: the server accepts at most the limit in any window "
        "(so no worst window here is above it) and refuses the rest, which is Huey's "
        f"{sum(v['rejected'] for v in r['hueyrl'].values()):,} rate-limit replies, each a "
        "failed attempt Huey retries.",
        "",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--symbols", type=int, default=3500)
    args = parser.parse_args()
    result = measure(args.seconds, args.symbols)
    print(json.dumps(result, indent=1))
    print("\n".join(section(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
