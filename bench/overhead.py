"""Overhead: what neo's machinery costs when the API costs nothing.

    neo   a provider that answers at once (bench/instant.py: the simulated market's universe,
          one made-up row per bar call, no history generated), limits of 1,000,000/min, one
          unit per symbol (one day of daily bars: one row), through both
          queues, the ledger and the batch saver; units/s from the ledger's count of units
          still on their way, and every row checked in the database afterwards
    bare  Huey alone on the same storage (SqliteHuey, WAL, fsync as neo's default), the same
          number of thread workers as neo's download consumer, passing no-op tasks

The built-in simulated provider is not used: it builds a stock's whole history (`simulated_ms`
of CPU, in the fast consumer's process) to answer a one-day query — 58% of that process's
py-spy samples in the 2026-12-03 run — the API's cost, not neo's. Both are timed over the
steady middle of the drain (from 10% to 90% of the work done), so the start-up of processes
counts for neither. Target: neo ≥ 50% of bare Huey.

    .venv/bin/python bench/overhead.py [--symbols 20000] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import neo, wait_idle  # noqa: E402

DAY = "20261120"  # the simulated market's last day here
WORKERS = 50  # neo's [fast] workers default
INSTANT = "bench.instant:provider"
SYMBOLS, TASKS = 20000, 20000  # about 19,000 listed on the day: units, and as many tasks


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Work per second between 10% and 90% done, from (time, work left) samples."""
    done = [(t, total - left) for t, left in samples]
    t_a, a = next(p for p in done if p[1] >= 0.1 * total)
    t_b, b = next(p for p in done if p[1] >= 0.9 * total)
    return (b - a) / (t_b - t_a) if t_b > t_a else float("nan")


def drain(left: Callable[[], int], every: float, timeout: float, what: str) -> list:
    """(time, work left) samples every `every` seconds until nothing is left."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = left()
        samples.append((time.monotonic(), n))
        if not n:
            return samples
        time.sleep(every)
    raise RuntimeError(f"{what} not drained after {timeout:.0f}s")


def neo_units_per_second(symbols: int, timeout: float = 600, profile: bool = False) -> dict:
    """Units/s through neo; with `profile`, py-spy samples the fast consumer meanwhile (and
    slows it: the rate of a profiled drain is not the figure)."""
    import duckdb

    from neo_cli import config
    from neo_cli.ledger import Ledger

    # Every neo process here (the consumers, status) imports the provider from the repository.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, paths)])
    with tempfile.TemporaryDirectory(prefix="neo-bench-overhead-") as tmp:
        home = Path(tmp)
        unlimited = "".join(f"{api} = 1000000\n" for api in config.SCHEMA["rate_limits"])
        (home / "neo.toml").write_text(
            f'[paths]\ndata_dir = "{home / "data"}"\n[schedule]\nupdate = ""\n'
            f'[provider]\nname = "{INSTANT}"\n'
            f"[provider.simulated]\nsymbols = {symbols}\nlatency_ms = 0\njitter_ms = 0\n"
            f'end_date = "{DAY}"\n[rate_limits]\n{unlimited}'
            "[plan]\nmulti_symbol = false\nwhole_market = false\n"
            "[limiter]\nmargin_seconds = 0\n"
        )
        neo(home, "start")
        neo(home, "enqueue", "-t", "stock_basic")
        wait_idle(home, 120)
        neo(home, "stop")
        out = neo(home, "enqueue", "-t", "daily", "--start-date", DAY, "--end-date", DAY,
                  timeout=600).stdout  # fmt: skip
        units = int(out.split()[1])
        ledger = Ledger(home / "data" / "ledger.db")
        t0 = time.monotonic()
        neo(home, "start")
        profiler = None
        try:
            if profile:
                status = json.loads(neo(home, "status", "--json").stdout)
                profiler = Profile(status["processes"]["fast"]["pid"], home / "fast.prof")
            samples = drain(ledger.live_count, 0.2, timeout, "neo")
        finally:
            neo(home, "stop")
            ledger.close()
        if profiler is not None:
            return profiler.result()
        conn = duckdb.connect(str(home / "data" / "neo.duckdb"), read_only=True)
        try:
            rows, keys = conn.execute(
                "SELECT count(*), count(DISTINCT (ts_code, trade_date)) FROM daily"
            ).fetchone()
        finally:
            conn.close()
    if not rows == keys == units:
        raise RuntimeError(f"{units} units but {rows} rows ({keys} distinct) in the database")
    return {
        "units": units,
        "rows": rows,
        "units_per_s": round(steady_rate(samples, units), 1),
        "wall_s": round(samples[-1][0] - t0, 1),
    }


PROFILE_SECONDS = 8  # of a second drain's ten or so
# Where the fast consumer's time goes, by the deepest frame of each sample that names a step
# (first match from the leaf up), else the deepest of neo's own frames.
STEPS = (
    ("the provider (bench/instant.py)", ("instant.py", "providers/")),
    ("limiter: ready() for the gate", ("Limiter.ready", "View.get")),
    ("limiter: take() a slot", ("Limiter.take",)),
    ("ledger (SQLite)", ("Ledger.",)),
    ("hand-over to the save queue (GroupCommit)", ("GroupCommit.",)),
    ("task (de)serialising", ("serialize_task", "Serializer.")),
    ("metrics", ("Recorder.",)),
    ("the gated dequeue (SQLite)", ("Huey.dequeue",)),
)


class Profile:
    """py-spy (`make bench` installs it) sampling one process's GIL-holding threads for
    `seconds` from now, in the background; `result()` gives the share of samples per step."""

    def __init__(self, pid: int, out: Path, seconds: int = PROFILE_SECONDS):
        self.out, self.proc = out, None
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            self.error = "py-spy is not installed"
            return
        self.proc = subprocess.Popen(
            [str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "50", "--gil",
             "-f", "raw", "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def result(self) -> dict:
        if self.proc is None:
            return {"skipped": self.error}
        _, err = self.proc.communicate(timeout=60)
        if self.proc.returncode or not self.out.exists():
            return {"skipped": f"py-spy failed: {err.decode(errors='replace').strip()[-200:]}"}
        shares: dict[str, int] = {}
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            step = next(
                (
                    name
                    for frame in reversed(frames)
                    for name, marks in STEPS
                    if any(m in frame for m in marks)
                ),
                "neo's other code" if any("neo_cli/" in f for f in frames) else "Huey, Python",
            )
            shares[step] = shares.get(step, 0) + int(count)
            total += int(count)
        if not total:
            return {"skipped": "py-spy took no samples"}
        ranked = sorted(shares.items(), key=lambda kv: -kv[1])
        return {
            "samples": total,
            "seconds": PROFILE_SECONDS,
            "shares": {k: round(v / total, 3) for k, v in ranked},
        }


CONSUMER = """
import sys
from huey import SqliteHuey
huey = SqliteHuey("bare", filename=sys.argv[1], fsync=True, journal_mode="wal", timeout=30,
                  results=False)
@huey.task()
def noop(i):
    return None
if sys.argv[2] == "enqueue":
    for i in range(int(sys.argv[3])):
        noop(i)
else:
    from huey.consumer import Consumer
    Consumer(huey, workers=int(sys.argv[3]), worker_type="thread").run()
"""


def bare_tasks_per_second(tasks: int, workers: int = WORKERS, timeout: float = 600) -> dict:
    from huey import SqliteHuey

    with tempfile.TemporaryDirectory(prefix="neo-bench-bare-") as tmp:
        db = str(Path(tmp) / "bare.db")
        script = Path(tmp) / "bare.py"
        script.write_text(CONSUMER)
        subprocess.run([sys.executable, str(script), db, "enqueue", str(tasks)], check=True)
        huey = SqliteHuey("bare", filename=db, journal_mode="wal", timeout=30)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(script), db, "consume", str(workers)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            samples = drain(huey.pending_count, 0.1, timeout, "bare Huey")
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "tasks": tasks,
        "tasks_per_s": round(steady_rate(samples, tasks), 1),
        "wall_s": round(samples[-1][0] - t0, 1),
    }


def simulated_reply_ms(symbols: int, calls: int = 200) -> float:
    """CPU milliseconds the built-in simulated market takes to answer the one-day query of a
    stock it has not answered before (the drain's every call), mean of `calls` stocks."""
    from neo_cli.providers.market import Market
    from neo_cli.providers.simulated import DEFAULTS, market_end_date
    from neo_cli.tasktypes import DAILY

    market = Market(DEFAULTS["seed"], symbols, market_end_date(DAY))
    codes = market.ts_codes("L")[:calls]
    params = {"start_date": DAY, "end_date": DAY}
    started = time.process_time()
    for code in codes:
        market.items(DAILY.api, {**params, "ts_code": code}, DAILY.fields)
    return round((time.process_time() - started) / len(codes) * 1000, 2)


def measure(symbols: int = SYMBOLS, tasks: int = TASKS) -> dict:
    bare = bare_tasks_per_second(tasks)
    mine = neo_units_per_second(symbols)
    mine["profile"] = neo_units_per_second(symbols, profile=True)
    return {
        "bare": bare,
        "neo": mine,
        "ratio": round(mine["units_per_s"] / bare["tasks_per_s"], 3),
        "workers": WORKERS,
        "simulated_ms": simulated_reply_ms(symbols),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=SYMBOLS)
    parser.add_argument("--tasks", type=int, default=TASKS)
    args = parser.parse_args()
    os.environ.pop("TUSHARE_TOKEN", None)
    print(json.dumps(measure(args.symbols, args.tasks), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
