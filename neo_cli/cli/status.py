"""`neo status`: the Rich view, `--watch`, `--json`, and the exit code as a health check."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.text import Text

from neo_cli.cli.app import ConfigOption, app, duration, out, settings_for
from neo_cli.errors import EXIT_NOT_RUNNING, EXIT_OK, EXIT_UNHEALTHY

if TYPE_CHECKING:
    from rich.table import Table


def exit_code(data: dict[str, Any]) -> int:
    if not data["running"]:
        return EXIT_NOT_RUNNING
    return EXIT_OK if data["healthy"] else EXIT_UNHEALTHY


def _num(n: int | float | None) -> str:
    return "-" if n is None else f"{n:,}"


STATE_STYLE = {
    "running": "green",
    "starting": "yellow",
    "backoff": "yellow",
    "stopping": "yellow",
    "failed": "bold red",
    "stopped": "dim",
}


def _table(title: str, first: str, *numeric: str) -> Table:
    from rich.table import Table  # here: `status --json` draws no table

    table = Table(
        title=title,
        title_justify="left",
        box=None,
        pad_edge=False,
        title_style="bold",
        header_style="bold underline",
    )
    table.add_column(first, no_wrap=True)
    for col in numeric:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def render(data: dict[str, Any]) -> Group:
    if data["running"]:
        health = "[green]healthy[/]" if data["healthy"] else "[bold red]unhealthy[/]"
        head = f"neo [bold]running[/] for {data['data_dir']} — {health}"
    else:
        head = f"neo [dim]stopped[/] for {data['data_dir']} (queued work waits for `neo start`)"
    parts: list[Any] = [Text.from_markup(head)]
    if data["database_error"]:
        parts.append(Text.from_markup(f"[bold red]database: {data['database_error']}[/]"))
    if data.get("limiter", {}).get("error"):
        parts.append(Text(data["limiter"]["error"], style="bold red"))
    if data.get("queue_error"):
        parts.append(Text(data["queue_error"], style="bold red"))

    notes: list[str] = []
    q = _table(
        "Queues", "queue", "pending", "scheduled", "in flight", "done/min", "failed/min", "done"
    )
    q.add_column("failed", justify="right", no_wrap=True)
    for name, v in data["queues"].items():
        failed_total = sum(v["totals"]["failed"].values())
        q.add_row(
            name,
            _num(v["pending"]),
            _num(v["scheduled"]),
            _num(v["in_flight"]),
            _num(v["done_per_min"]),
            Text(_num(v["failed_per_min"]), style="yellow" if v["failed_per_min"] else ""),
            _num(v["totals"]["done"]),
            Text(_num(failed_total), style="yellow" if failed_total else ""),
        )
        if v["failed_per_min"]:
            why = ", ".join(
                f"{n} {kind.replace('_', '-')}" for kind, n in v["failures_per_min"].items() if n
            )
            notes.append(f"{name} queue failures/min: {why}")
        if v["throttled"]:
            notes.append(f"{name} queue paused: {v['throttled']}")
    if data["queues"]["slow"].get("buffered_rows"):
        notes.append(
            f"slow consumer: {data['queues']['slow']['buffered_rows']:,} rows "
            "buffered for the next flush"
        )
    parts += [Text(""), q]

    t = _table(
        "Task types",
        "type",
        "queued",
        "calls/m",
        "use",
        "retry/m",
        "rej/m",
        "rows saved",
        "save ok",
        "dead",
    )
    for api, v in data["task_types"].items():
        use = v["calls_per_min"] / v["limit_per_min"] if v["limit_per_min"] else 0
        rate = v["save_success_rate"]
        t.add_row(
            api,
            _num(v["pending"] + v["scheduled"]),
            f"{v['calls_per_min']}/{v['limit_per_min']}",
            f"{use:.0%}",
            Text(_num(v["retries_per_min"]), style="yellow" if v["retries_per_min"] else ""),
            Text(_num(v["rejected_per_min"]), style="red" if v["rejected_per_min"] else ""),
            _num(v["rows_saved"]),
            "-"
            if rate is None
            else Text(
                f"{rate:.0%}" if rate in (0, 1) else f"{rate:.1%}",
                style="" if rate == 1 else "yellow",
            ),
            Text(_num(v["dead_lettered"]), style="red" if v["dead_lettered"] else ""),
        )
        if v["quarantined"]:
            notes.append(
                f"{api}: {v['quarantined']:,} bad rows set aside in _quarantine "
                '(neo query "select * from _quarantine")'
            )
        if v["paused"]:
            notes.append(f"{api}: {v['paused']}")
        if v.get("vip_refused"):
            notes.append(f"{api}: one call per symbol; {api}_vip was refused ({v['vip_refused']})")
    parts += [Text(""), t]

    p = _table("Processes", "process", "state", "pid", "uptime", "restarts", "CPU %", "RSS MB")
    for name, v in data["processes"].items():
        p.add_row(
            name,
            Text(v["state"], style=STATE_STYLE.get(v["state"], "")),
            "-" if v["pid"] is None else str(v["pid"]),
            duration(v["uptime"]),
            _num(v["restarts"]),
            _num(v["cpu_percent"]),
            _num(v["rss_mb"]),
        )
        if v.get("reason"):
            notes.append(f"{name}: {v['reason']}")
    parts += [Text(""), p, Text("")]
    if data.get("cluster"):
        parts += [cluster_table(data["cluster"]), Text("")]
        for c in data["cluster"]:
            if c["lost"]:
                notes.append(
                    f"{c['id']} is lost: no heartbeat for {duration(c['age'])}; its leased "
                    "tasks go back on the queue"
                )
    parts += schedule_lines(data.get("schedule"))
    for note in notes:
        parts.append(Text(note, style="yellow"))
    backlog = sum(v["pending"] + v["scheduled"] for v in data["queues"].values())
    eta = f"ETA {duration(data['eta_seconds'])}" if data["eta_seconds"] else "nothing queued"
    parts.append(Text(f"backlog {backlog:,} task(s); {eta}"))
    return Group(*parts)


def cluster_table(members: list[dict[str, Any]]) -> Table:
    """Every consumer on every machine of the cluster (queues on Redis)."""
    c = _table(
        "Cluster", "consumer", "role", "version", "heartbeat", "in flight", "calls/m", "state"
    )
    for m in members:
        c.add_row(
            m["id"],
            m.get("role", "?"),
            m.get("version", "?"),
            f"{duration(m['age'])} ago",
            _num(m.get("in_flight", 0)),
            _num(sum(m.get("calls_per_min", {}).values())),
            Text("lost", style="bold red") if m["lost"] else Text("alive", style="green"),
        )
    return c


RUN_STYLE = {
    "done": "green",
    "skipped": "",
    "failed": "bold red",
    "running": "yellow",
    "interrupted": "yellow",
}


def schedule_lines(s: dict[str, Any] | None) -> list[Text]:
    """The daily update: when it runs next, and what the last run did."""
    if not s:
        return []
    if not s["enabled"]:
        lines = [Text("schedule: off ([schedule] update is empty, or started with --no-schedule)")]
    else:
        where = "" if s["active"] else " (while neo runs)"
        lines = [
            Text(
                f"schedule: update {s['update']!r} ({s['timezone']}), next {s['next_local']}"
                f"{where}: {', '.join(s['task_types'])}"
            )
        ]
    last = s.get("last")
    if last:
        state = last["state"]
        if state == "running":
            what = f"running on {last['owner']}"
        elif state == "interrupted":
            what = "its process stopped mid-run; the next start takes it over"
        else:
            what = last["summary"]
        lines.append(
            Text(
                f"last update {last['slot_local']}: {state} — {what}",
                style=RUN_STYLE.get(state, ""),
            )
        )
    return lines


@app.command()
def status(
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (schema in README).")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch.")
    ] = 1.0,
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="With --watch: return once every queued task is saved or dead-lettered.",
        ),
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Queues, throughput, save success and processes. Exit 0 healthy, 3 stopped, 5 unhealthy.

    Example: neo status --watch
    """
    # Imported here, not at the top: every `neo` command imports this module to register
    # `status`, and what it reads brings libraries other commands need not pay for.
    from neo_cli.status import ProcessSampler, collect, queues_for

    settings = settings_for(config_file)
    sampler = ProcessSampler()
    pipeline = queues_for(settings)
    data = collect(settings, sampler, pipeline)
    if as_json:
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if out.is_terminal:
            out.print_json(text)  # coloured
        else:  # a pipe, a script: the same text, without the ~25 ms rich spends colouring it
            typer.echo(text)
        raise typer.Exit(exit_code(data))
    if not watch:
        out.print(render(data))
        raise typer.Exit(exit_code(data))
    from rich.live import Live

    try:
        with Live(render(data), console=out, refresh_per_second=4, screen=False) as live:
            while not (until_idle and idle(data)):
                time.sleep(interval)
                if pipeline is None:
                    pipeline = queues_for(settings)
                data = collect(settings, sampler, pipeline)
                live.update(render(data))
    except KeyboardInterrupt:
        pass
    out.print()
    raise typer.Exit(exit_code(data))


def idle(data: dict[str, Any]) -> bool:
    """Nothing left to do — or nothing that will do it: stopped, or a consumer failed."""
    if not data["running"] or any(p["state"] == "failed" for p in data["processes"].values()):
        return True
    if any(str(t["paused"]).startswith("stopped") for t in data["task_types"].values()):
        return True  # calls stopped (bad token, no permission): waiting would be forever
    return data["units_in_progress"] == 0 and all(
        q["pending"] + q["scheduled"] + q["in_flight"] == 0 for q in data["queues"].values()
    )
