"""The designs neo is compared with, built for the benchmark only (bench/designs.py runs them).

    shared  the seed's old design: ONE Huey queue and one pool of workers doing both the
            downloads and the saves; a download enqueues its save on the same queue, and a
            save holds its worker while it writes one unit's rows to DuckDB
    split   two queues (50 download workers, 4 save workers) but a save per task: each save
            task opens the database, writes its unit's rows in one transaction, closes
    hueyrl  split, paced by Huey's own `rate_limit` (a fixed window per interface) instead of
            neo's limiter: what a Huey user gets out of the box

Both use neo's own pieces where the design does not differ: the Tushare client, the call
spacing (an in-memory limiter per interface: one process), the upsert (`db.writer.write`)
and the writer's turn-taking lock. One task per (interface, symbol), one call each (no paging:
bench/designs.py asks for histories that fit the row cap).

    python bench/baseline.py consume --design shared --home DIR --url URL --workers 50
    python bench/baseline.py enqueue --design shared --home DIR --url URL
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from huey import SqliteHuey  # noqa: E402
from huey import signals as S  # noqa: E402

from neo_cli.db.database import Database  # noqa: E402
from neo_cli.db.writer import Part, write  # noqa: E402
from neo_cli.errors import SlotTooFar  # noqa: E402
from neo_cli.limits.memory import memory_limiter  # noqa: E402
from neo_cli.providers.tushare import TushareProvider  # noqa: E402
from neo_cli.tasktypes import dataset  # noqa: E402

APIS = ("daily", "adj_factor", "income", "balancesheet", "cashflow")
END = "20261120"


def build(design: str, home: Path, url: str, limits: dict[str, int]):
    """(download queue, save queue, download task, save task)."""
    fast = SqliteHuey("pool" if design == "shared" else "fast", filename=str(home / "q1.db"))
    slow = fast if design == "shared" else SqliteHuey("slow", filename=str(home / "q2.db"))
    state: dict = {}

    def runtime() -> dict:
        if not state:
            state["provider"] = TushareProvider(
                {"url": url, "token": os.environ["TUSHARE_TOKEN"]}, connections=64
            )
            state["limiters"] = {a: memory_limiter(a, n, margin=0.6) for a, n in limits.items()}
            state["db"] = Database(home / "bench.duckdb")
        return state

    # In the shared pool a save goes ahead of the queued downloads, as the old design's chained
    # save did (a worker that finished a download went on to its save): FIFO would starve saves
    # until every download is done.
    @slow.task(name="save", priority=10 if design == "shared" else None)
    def save(api: str, fields: tuple, items: list) -> None:
        d = dataset(api)
        with runtime()["db"].writer() as conn:
            conn.execute("BEGIN TRANSACTION")
            write(conn, d, [Part(tuple(fields), items, "bench")])
            conn.execute("COMMIT")

    windows = {a: fast.rate_limit(a, n, 60) for a, n in limits.items()}

    @fast.task(name="download", retries=3, retry_delay=1)
    def download(api: str, code: str, start: str) -> None:
        rt = runtime()
        if design == "hueyrl":
            windows[api].acquire()  # over the window: RateLimitExceeded, rescheduled by Huey
        else:
            limiter = rt["limiters"][api]
            while True:
                try:
                    limiter.acquire(max_wait=120)
                    break
                except SlotTooFar as exc:
                    time.sleep(min(exc.delay, 1.0))
        d = dataset(api)
        params = {"ts_code": code, "start_date": start, "end_date": END}
        reply = rt["provider"].call(api, params, d.fields)
        if reply.items:
            save(api, tuple(reply.fields), [list(r) for r in reply.items])

    return fast, slow, download, save


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("consume", "enqueue"))
    p.add_argument("--design", choices=("shared", "split", "hueyrl"), required=True)
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--workers", type=int, default=50)
    p.add_argument("--queue", choices=("fast", "slow"), default="fast")
    p.add_argument("--limits", required=True, help="daily=300,income=200,…")
    p.add_argument("--codes", default="", help="comma-separated symbols (enqueue)")
    p.add_argument("--start-date", default="19900101", help="first day asked for (enqueue)")
    args = p.parse_args()
    limits = {k: int(v) for k, v in (kv.split("=") for kv in args.limits.split(","))}
    fast, slow, download, _ = build(args.design, args.home, args.url, limits)
    if args.what == "enqueue":
        codes = [c for c in args.codes.split(",") if c]
        # Interleaved, as a scheduler enqueues every type at once.
        for code in codes:
            for api in APIS:
                download(api, code, args.start_date)
        return 0
    huey = fast if args.queue == "fast" else slow
    bounced = [0]
    count_lock = threading.Lock()
    bounced_file = args.home / f"bounced.{args.queue}"

    @huey.signal(S.SIGNAL_RATE_LIMITED)
    def count(signal, task, *rest) -> None:  # Huey's own figure: a task put back by the window
        with count_lock:
            bounced[0] += 1
            # Whole or not at all: the benchmark reads it after stopping this process,
            # which may land in the middle of a write.
            part = bounced_file.with_suffix(".part")
            part.write_text(str(bounced[0]))
            os.replace(part, bounced_file)

    huey.create_consumer(workers=args.workers, worker_type="thread", max_delay=0.25).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
