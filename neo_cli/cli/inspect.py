"""`neo task`, `neo logs` and `neo query`: looking at what neo did."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer

from neo_cli.cli.app import ConfigOption, app, out, settings_for
from neo_cli.errors import InputError
from neo_cli.ledger import Ledger
from neo_cli.paths import Paths
from neo_cli.roles import here_only

STATE_TEXT = {
    "queued": "queued, waiting for a download worker",
    "retrying": "retrying after a failure",
    "saving": "downloaded, waiting to be saved",
    "saved": "saved",
    "dead": "dead-lettered",
    "split": "split into one task per symbol (the packed call was refused)",
}


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def task(
    task_id: Annotated[
        str,
        typer.Argument(
            help="A task id (or its first characters) or a batch id printed by `neo enqueue`."
        ),
    ],
    config_file: ConfigOption = None,
) -> None:
    """Show one task's state, or a batch's counts.

    Example: neo task b1a2b3c4d5e6
    """
    settings = settings_for(config_file)
    here_only(settings, "neo task")
    paths = Paths(settings.data_dir)
    if not paths.ledger.exists():
        raise InputError(f"no task {task_id!r}: nothing was ever enqueued in {paths.root}")
    ledger = Ledger(paths.ledger)
    try:
        batch = ledger.batch(task_id)
        if batch is not None:
            kind, created, counts = batch
            total = sum(counts.values())
            out.print(f"batch {task_id}: {kind}, {total} task(s), enqueued {_when(created)}")
            for state in ("saved", "saving", "queued", "retrying", "dead"):
                if counts.get(state):
                    out.print(f"  {state:<9} {counts[state]}")
            return
        found = ledger.find(task_id, limit=2) if len(task_id) >= 4 else []
        if not found:
            raise InputError(f"no task or batch {task_id!r}; ids are printed by `neo enqueue`")
        if len(found) > 1:
            raise InputError(f"{task_id!r} matches several tasks; give more characters")
        r = found[0]
        out.print(f"task {r.unit.id}")
        out.print(f"  what      {r.unit.describe()}")
        out.print(f"  batch     {r.unit.batch}")
        out.print(f"  state     {STATE_TEXT.get(r.state, r.state)}")
        out.print(f"  attempts  {r.attempts}")
        if r.rows is not None:
            out.print(f"  rows      {r.rows}")
        if r.error:
            out.print(
                f"  {'reason' if r.state == 'dead' else 'last error'}    "
                f"{r.error} ({r.error_class})"
            )
        out.print(f"  enqueued  {_when(r.created)}; updated {_when(r.updated)}")
    finally:
        ledger.close()


@app.command()
def logs(
    process: Annotated[str, typer.Argument(help="fast, slow or supervisor.")] = "supervisor",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show.")] = 40,
    config_file: ConfigOption = None,
) -> None:
    """Show a process's log.

    Example: neo logs fast -f
    """
    if process not in ("fast", "slow", "supervisor"):
        raise InputError(f"unknown process {process!r}; allowed: fast, slow, supervisor")
    path = Paths(settings_for(config_file).data_dir).log_file(process)
    if not path.exists():
        raise InputError(f"no log yet at {path}: has neo been started here?")
    with path.open("r", encoding="utf-8", errors="replace") as f:
        tail = f.readlines()[-lines:] if lines else []
        for line in tail:
            typer.echo(line, nl=False)
        if not follow:
            return
        try:
            while True:
                line = f.readline()
                if line:
                    typer.echo(line, nl=False)
                    continue
                time.sleep(0.3)
                if path.stat().st_size < f.tell():  # rotated
                    f = path.open("r", encoding="utf-8", errors="replace")  # noqa: SIM115
        except KeyboardInterrupt:
            pass


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A read-only SQL statement.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print at most.")] = 50,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="CSV on stdout, every row (for scripts).")
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Run SQL against the database, read-only (waits for a flush in progress).

    Example: neo query "select ts_code, count(*) from daily group by 1 order by 2 desc"
    """
    import duckdb
    from rich.table import Table

    from neo_cli.db.database import Database

    settings = settings_for(config_file)
    here_only(settings, "neo query")
    db = Database(Paths(settings.data_dir).database)
    with db.reader() as conn:
        try:
            cur = conn.execute(sql)
        except duckdb.Error as exc:
            raise InputError(f"query failed: {str(exc).splitlines()[0]}") from None
        if cur.description is None:
            return
        names = [d[0] for d in cur.description]
        if csv_out:
            import csv
            import sys

            writer = csv.writer(sys.stdout)
            writer.writerow(names)
            while batch := cur.fetchmany(10_000):
                writer.writerows(batch)
            return
        rows = cur.fetchmany(limit + 1)
    table = Table(*names)
    for row in rows[:limit]:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)
    if len(rows) > limit:
        out.print(f"(first {limit} rows; use --limit for more)")
