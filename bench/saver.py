"""The save path: rows/s of neo's batch saver through its real flusher thread, against DuckDB's
own bulk write into the same keyed table (the ceiling) and row-by-row inserts (the floor).

Each case starts from a table already holding a history (`SYMBOLS` symbols; daily bars: about
`DAYS` trading days each, statements: a report a quarter since 1995) and writes rows as the API
sends them (dates as 'YYYYMMDD' text, numbers as floats), in frames of min(batch_size, 1,000)
rows, the way save tasks hand them over:

    fresh      keys not in the table yet (a new symbol's history)
    recent     keys already saved, on the latest dates (the daily update re-saving its overlap)
    scattered  keys already saved, at random dates all through history (holes repaired, a
               restated report)

`python bench/saver.py` prints the table; `bench/run.py` includes it in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neo_cli.db.database import Database  # noqa: E402
from neo_cli.db.saver import BatchSaver, buffer_limit  # noqa: E402
from neo_cli.ledger import Ledger  # noqa: E402
from neo_cli.metrics import Recorder  # noqa: E402
from neo_cli.tasktypes import DAILY, DATE, DOUBLE, INCOME, Dataset  # noqa: E402

SYMBOLS = 1000
DAYS = 1500  # trading days of history per symbol (daily): 1.5M rows to start from
QUARTERS = 120  # statements: 30 years, one report a quarter
PATTERNS = ("fresh", "recent", "scattered")
BATCHES = (1, 100, 1000, 10_000)
FLUSH_ROWS = 50_000  # a flush that finds the slow consumer's buffer full (buffer_limit(1000))


def code(i: int) -> str:
    return f"{i:06d}.{'SH' if i % 2 else 'SZ'}"


def days(n: int, start: date = date(2005, 1, 3)) -> list[str]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.strftime("%Y%m%d"))
        d += timedelta(days=1)
    return out


@dataclass
class Keys:
    """What the prefilled table holds: symbols and their dates."""

    codes: list[str]
    dates: list[str]


def prefill(conn: duckdb.DuckDBPyConnection, d: Dataset, keys: Keys) -> None:
    """The history, written with DuckDB's own bulk append (not timed)."""
    rows = [(c, day) for c in keys.codes for day in keys.dates]
    frame = pd.DataFrame(rows, columns=["ts_code", d.date_field])
    for name, kind in d.columns:
        if name in ("ts_code", d.date_field):
            continue
        if kind == DATE:
            frame[name] = frame[d.date_field]
        elif kind == DOUBLE:
            frame[name] = 1.0
        else:
            frame[name] = "1"
    typed = typed_frame(d, frame)
    conn.register("_prefill", typed)
    conn.execute(f"INSERT INTO {d.table} SELECT {cols(d)} FROM _prefill")
    conn.unregister("_prefill")


def cols(d: Dataset) -> str:
    return ", ".join(f'"{n}"' for n in d.fields)


def typed_frame(d: Dataset, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name, kind in d.columns:
        if kind == DATE:
            out[name] = pd.to_datetime(out[name], format="%Y%m%d").dt.date
    return out[list(d.fields)]


def api_rows(d: Dataset, pairs: list[tuple[str, str]], rng: random.Random) -> list[list]:
    """Rows as the API sends them for (ts_code, date) keys."""
    out = []
    for c, day in pairs:
        row = []
        for name, kind in d.columns:
            if name == "ts_code":
                row.append(c)
            elif kind == DATE:
                row.append(day)
            elif kind == DOUBLE:
                row.append(round(rng.uniform(1, 100), 2))
            else:
                row.append("1")
        out.append(row)
    return out


def pairs_for(pattern: str, keys: Keys, n: int, rng: random.Random, fresh_from: int):
    if pattern == "fresh":  # new symbols, whole histories
        per = len(keys.dates)
        codes = [code(fresh_from + i) for i in range(n // per + 1)]
        return [(c, day) for c in codes for day in keys.dates][:n]
    if pattern == "recent":  # the latest dates of each symbol
        depth = max(1, n // len(keys.codes) + 1)
        recent = keys.dates[-depth:]
        return [(c, day) for day in recent for c in keys.codes][:n]
    chosen: set[tuple[str, str]] = set()
    while len(chosen) < n:
        chosen.add((rng.choice(keys.codes), rng.choice(keys.dates)))
    return list(chosen)


def saver_rows_per_s(
    database: Database,
    ledger: Ledger,
    d: Dataset,
    rows: list[list],
    batch_size: int,
    budget_s: float,
) -> tuple[int, float]:
    """(rows written, seconds) through BatchSaver and its flusher thread."""
    frame = min(batch_size, 1000)
    limit = buffer_limit(batch_size)
    saver = BatchSaver(
        database,
        ledger,
        Recorder(None, "bench"),
        batch_size=batch_size,
        batch_timeout=3600,
        idle_flush=3600,
    ).start()
    start = time.perf_counter()
    deadline = start + budget_s
    written = 0
    for i in range(0, len(rows), frame):
        chunk = rows[i : i + frame]
        saver.add(d.api, d.fields, chunk, f"bench-{i}")
        written += len(chunk)
        # The slow consumer's own back-pressure: it stops taking save tasks while the rows
        # buffered and being flushed reach buffer_limit (pipeline.attach_slow's gate).
        while saver.buffered_rows >= limit:
            time.sleep(0.001)
        if time.perf_counter() > deadline:
            break
    if not saver.close():
        raise RuntimeError(f"flush failed: {saver.last_error}")
    return written, time.perf_counter() - start


def bulk_rows_per_s(path: Path, d: Dataset, rows: list[list], update: bool) -> float:
    """DuckDB's own bulk write of the same typed rows in one transaction."""
    frame = typed_frame(d, pd.DataFrame(rows, columns=list(d.fields)))
    conn = duckdb.connect(str(path))
    try:
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.register("_bulk", frame)
        if update:
            match = " AND ".join(f't."{k}" = b."{k}"' for k in d.keys)
            conn.execute(f"DELETE FROM {d.table} AS t USING _bulk AS b WHERE {match}")
        conn.execute(f"INSERT INTO {d.table} SELECT {cols(d)} FROM _bulk")
        conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        conn.unregister("_bulk")
    finally:
        conn.close()
    return len(rows) / seconds


def bulk_1000_rows_per_s(
    path: Path, d: Dataset, rows: list[list], update: bool, per: int = 1000
) -> tuple[float, dict[str, float]]:
    """DuckDB's own write of the same typed rows in transactions of `per` rows, as the saver
    commits them, and the milliseconds per transaction each statement took (the profile of
    what a batch costs DuckDB itself, before any of neo's staging)."""
    frame = typed_frame(d, pd.DataFrame(rows, columns=list(d.fields)))
    match = " AND ".join(f't."{k}" = b."{k}"' for k in d.keys)
    spent = {"delete": 0.0, "insert": 0.0, "commit": 0.0}
    conn = duckdb.connect(str(path))
    try:
        start = time.perf_counter()
        batches = 0
        for i in range(0, len(frame), per):
            conn.register("_bulk", frame.iloc[i : i + per])
            conn.execute("BEGIN")
            t = time.perf_counter()
            if update:
                conn.execute(f"DELETE FROM {d.table} AS t USING _bulk AS b WHERE {match}")
            spent["delete"] += time.perf_counter() - t
            t = time.perf_counter()
            conn.execute(f"INSERT INTO {d.table} SELECT {cols(d)} FROM _bulk")
            spent["insert"] += time.perf_counter() - t
            t = time.perf_counter()
            conn.execute("COMMIT")
            spent["commit"] += time.perf_counter() - t
            conn.unregister("_bulk")
            batches += 1
        seconds = time.perf_counter() - start
    finally:
        conn.close()
    return len(rows) / seconds, {k: round(v / batches * 1000, 1) for k, v in spent.items()}


class _Timed:
    """A connection that adds up the seconds each kind of statement takes."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, spent: dict[str, float]):
        self._conn, self.spent = conn, spent

    def execute(self, sql: str, *args):
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, *args)
        finally:
            words = sql.split()
            kind = "staging" if words[:2] == ["CREATE", "OR"] else words[0].lower()
            kind = {"begin": "commit", "select": "reads"}.get(kind, kind)
            self.spent[kind] = self.spent.get(kind, 0.0) + time.perf_counter() - started

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def flush_profile(path: Path, d: Dataset, rows: list[list], per: int) -> dict[str, float]:
    """Milliseconds one flush of `per` rows spends in each step of the saver's own `write()`:
    building the frame (Python), typing and checking it into `_staged`, DELETE, INSERT, the
    reads after (watermarks, counts) and BEGIN + COMMIT; the mean over the flushes `rows`
    fills, with the file kept open between them as the flusher keeps it."""
    import neo_cli.db.writer as writer

    spent: dict[str, float] = {}
    staging = writer._staging_frame
    flushes = 0

    def timed_frame(*args):
        started = time.perf_counter()
        try:
            return staging(*args)
        finally:
            spent["frame"] = spent.get("frame", 0.0) + time.perf_counter() - started

    writer._staging_frame = timed_frame
    conn = duckdb.connect(str(path))
    try:
        for i in range(0, len(rows) - per + 1, per):
            chunk = rows[i : i + per]
            parts = [
                writer.Part(tuple(d.fields), chunk[j : j + 1000], f"p{i + j}")
                for j in range(0, len(chunk), 1000)
            ]
            timed = _Timed(conn, spent)
            timed.execute("BEGIN TRANSACTION")
            writer.write(timed, d, parts)
            timed.execute("COMMIT")
            flushes += 1
    finally:
        writer._staging_frame = staging
        conn.close()
    return {k: round(v / flushes * 1000, 1) for k, v in spent.items()}


def row_by_row_rows_per_s(path: Path, d: Dataset, rows: list[list], budget_s: float) -> float:
    """One upsert per row (the floor), each its own transaction: a DELETE of its key and an
    INSERT (the tables have no primary key for INSERT OR REPLACE), bounded in time."""
    frame = typed_frame(d, pd.DataFrame(rows, columns=list(d.fields)))
    tuples = list(frame.itertuples(index=False, name=None))
    conn = duckdb.connect(str(path))
    marks = ", ".join("?" for _ in d.fields)
    where = " AND ".join(f'"{k}" = ?' for k in d.keys)
    at = [list(d.fields).index(k) for k in d.keys]
    try:
        start = time.perf_counter()
        n = 0
        for row in tuples:
            conn.execute("BEGIN")
            conn.execute(f"DELETE FROM {d.table} WHERE {where}", [row[i] for i in at])
            conn.execute(f"INSERT INTO {d.table} ({cols(d)}) VALUES ({marks})", row)
            conn.execute("COMMIT")
            n += 1
            if time.perf_counter() - start > budget_s:
                break
        return n / (time.perf_counter() - start)
    finally:
        conn.close()


def measure(
    quick: bool = False, batches: tuple[int, ...] = BATCHES, datasets=(DAILY, INCOME)
) -> list[dict]:
    """Every (dataset, pattern, batch size), with the ceiling and the floor beside each."""
    rng = random.Random(7)
    results = []
    symbols = 200 if quick else SYMBOLS
    for d in datasets:
        dates = days(300 if quick else DAYS) if d is DAILY else quarter_ends(QUARTERS)
        keys = Keys([code(i) for i in range(symbols)], dates)
        with tempfile.TemporaryDirectory(prefix="neo-bench-saver-") as tmp:
            base = Path(tmp) / "base.duckdb"
            database = Database(base)
            database.ensure_schema()
            with database.writer() as conn:
                prefill(conn, d, keys)
            for pattern in PATTERNS:
                n = 20_000 if quick else 100_000
                pairs = pairs_for(pattern, keys, n, rng, fresh_from=symbols)
                rows = api_rows(d, pairs, rng)
                row = {"dataset": d.api, "pattern": pattern, "rows": len(rows)}
                for batch in batches:
                    case = Path(tmp) / f"{pattern}-{batch}.duckdb"
                    copy(base, case)
                    ledger = Ledger(Path(tmp) / f"ledger-{pattern}-{batch}.db")
                    try:
                        want = rows if batch >= 100 else rows[: 300 if quick else 1000]
                        written, seconds = saver_rows_per_s(
                            Database(case), ledger, d, want, batch, 10 if quick else 15
                        )
                    finally:
                        ledger.close()
                    row[f"saver_{batch}"] = round(written / seconds)
                    case.unlink()
                case = Path(tmp) / f"{pattern}-bulk.duckdb"
                copy(base, case)
                row["bulk"] = round(bulk_rows_per_s(case, d, rows, pattern != "fresh"))
                copy(base, case)
                per_s, row["bulk_1000_ms"] = bulk_1000_rows_per_s(case, d, rows, pattern != "fresh")
                row["bulk_1000"] = round(per_s)
                copy(base, case)
                row["flush_rows"] = min(FLUSH_ROWS, len(rows))
                row["flush_ms"] = flush_profile(case, d, rows, row["flush_rows"])
                copy(base, case)
                row["row_by_row"] = round(
                    row_by_row_rows_per_s(case, d, rows[:2000], 3 if quick else 5)
                )
                case.unlink()
                results.append(row)
                print(row, flush=True)
    return results


def quarter_ends(n: int) -> list[str]:
    out = []
    for y in range(1995, 2030):
        for md in ("0331", "0630", "0930", "1231"):
            out.append(f"{y}{md}")
    return out[:n]


def copy(src: Path, dst: Path) -> None:
    import shutil

    dst.unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dst.with_name(dst.name + ".wal"))


def table(results: list[dict], batches: tuple[int, ...] = BATCHES) -> str:
    head = (
        "| table | pattern | "
        + " | ".join(f"saver, batch {b:,}" for b in batches)
        + " | DuckDB, 1,000-row transactions | DuckDB bulk (ceiling) | row by row (floor) |"
    )
    lines = [head, "|---|---|" + "---:|" * (len(batches) + 3)]
    for r in results:
        cells = [f"{r[f'saver_{b}']:,}" for b in batches]
        lines.append(
            f"| {r['dataset']} | {r['pattern']} | "
            + " | ".join(cells)
            + f" | {r['bulk_1000']:,} | {r['bulk']:,} | {r['row_by_row']:,} |"
        )
    return "\n".join(lines)


def profile_table(results: list[dict]) -> str:
    """Milliseconds per 1,000-row transaction of DuckDB alone, by statement."""
    lines = [
        "| table | pattern | DELETE | INSERT | COMMIT | total | rows/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ms = r["bulk_1000_ms"]
        total = sum(ms.values())
        lines.append(
            f"| {r['dataset']} | {r['pattern']} | {ms['delete']} | {ms['insert']} | "
            f"{ms['commit']} | {total:.1f} | {r['bulk_1000']:,} |"
        )
    return "\n".join(lines)


FLUSH_STEPS = ("frame", "staging", "delete", "insert", "reads", "commit")


def flush_table(results: list[dict]) -> str:
    """Milliseconds one full-buffer flush spends in each step of the saver's `write()`."""
    lines = [
        "| table | pattern | frame (Python) | typing and checks | DELETE | INSERT | reads after "
        "| BEGIN + COMMIT | total | rows/s |",
        "|---|---|" + "---:|" * 8,
    ]
    for r in results:
        ms = r["flush_ms"]
        total = sum(ms.values())
        cells = " | ".join(f"{ms.get(k, 0.0)}" for k in FLUSH_STEPS)
        lines.append(
            f"| {r['dataset']} | {r['pattern']} | {cells} | {total:.1f} | "
            f"{r['flush_rows'] / total * 1000:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--dataset", choices=("daily", "income", "both"), default="both")
    args = parser.parse_args()
    chosen = {"daily": (DAILY,), "income": (INCOME,), "both": (DAILY, INCOME)}[args.dataset]
    batches = tuple(int(b) for b in args.batches.split(","))
    results = measure(args.quick, batches, chosen)
    print(table(results, batches))
    print(flush_table(results))
