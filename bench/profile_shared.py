"""Where the old design's workers spend their time: the shared pool of bench/designs.py (800
symbols, the seed's 1,200 calls/min) run for 15 s, then py-spy samples its consumer's worker
threads for 20 s, idle ones included, each sample put to the step it was in. Not part of
`make bench` (the profiler slows what it watches): the figure behind "what holds the shared
pool back" in BENCHMARKS.md's first section.

    .venv/bin/python bench/profile_shared.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import designs as D  # noqa: E402

SECONDS = 20
STEPS = (  # first match from the leaf up
    ("waiting for the writer's turn (the lock file)", ("FileLock", "locks.py")),
    ("DuckDB open and close (checkpoint)", ("Database.writer", "Database._open")),
    ("DuckDB write()", ("db/writer.py",)),
    ("waiting for a call slot (limiter)", ("limits/",)),
    ("the HTTP call", ("tushare.py", "requests", "urllib3", "http/client")),
    ("no task to take (Huey's worker sleep)", ("Worker.sleep",)),
    ("Huey's queue (SQLite)", ("storage.py",)),
)


def main() -> int:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy is not installed (make .venv/.bench-stamp)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="neo-bench-profile-") as tmp:
        home = Path(tmp)
        server = D.serve(home, 800, {**D.BUDGET, "stock_basic": 60, "trade_cal": 60}, D.TOKEN)
        os.environ["TUSHARE_TOKEN"] = D.TOKEN
        raw = home / "shared.raw"
        try:
            with D.running_baseline("shared", home, server.url, 800, D.BUDGET):
                time.sleep(15)
                consumer = next(
                    c for c in psutil.Process().children(recursive=True) if "consume" in c.cmdline()
                )
                subprocess.run(
                    [str(spy), "record", "-p", str(consumer.pid), "-d", str(SECONDS), "-r",
                     "50", "-f", "raw", "-o", str(raw), "--idle", "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                )  # fmt: skip
        finally:
            server.stop()
        shares: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if not any("Worker.loop" in f for f in frames):
                continue  # the pool's workers only
            step = next(
                (n for f in reversed(frames) for n, marks in STEPS if any(m in f for m in marks)),
                "other",
            )
            shares[step] += int(count)
    total = sum(shares.values())
    print(f"{total:,} samples of the shared pool's worker threads over {SECONDS} s:")
    for step, n in shares.most_common():
        print(f"{n / total:7.1%}  {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
