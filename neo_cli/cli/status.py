"""`neo status`: the Rich view, `--watch`, `--json`, and the exit code as a health check."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from neo_cli.cli.app import ConfigOption, app, out, settings_for
from neo_cli.errors import EXIT_NOT_RUNNING, EXIT_OK, EXIT_UNHEALTHY
from neo_cli.pipeline import Pipeline
from neo_cli.status import ProcessSampler, collect


def exit_code(data: dict[str, Any]) -> int:
    if not data["running"]:
        return EXIT_NOT_RUNNING
    return EXIT_OK if data["healthy"] else EXIT_UNHEALTHY


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _num(n: int | float | None) -> str:
    return "-" if n is None else f"{n:,}"


STATE_STYLE = {"running": "green", "starting": "yellow", "backoff": "yellow", "stopping": "yellow",
               "failed": "bold red", "stopped": "dim"}


def render(data: dict[str, Any]) -> Group:
    if data["running"]:
        health = "[green]healthy[/]" if data["healthy"] else "[bold red]unhealthy[/]"
        head = f"neo [bold]running[/] for {data['data_dir']} — {health}"
    else:
        head = f"neo [dim]stopped[/] for {data['data_dir']} (queued work waits for `neo start`)"
    parts: list[Any] = [Text.from_markup(head)]
    if data["database_error"]:
        parts.append(Text.from_markup(f"[bold red]database: {data['database_error']}[/]"))

    q = Table(title="Queues", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("queue", "pending", "scheduled", "in flight", "done/min", "failed/min", "note"):
        q.add_column(col, justify="left" if col in ("queue", "note") else "right")
    for name, v in data["queues"].items():
        note = v["throttled"]
        if name == "slow" and v.get("buffered_rows"):
            note = (note + "; " if note else "") + f"{v['buffered_rows']:,} rows buffered"
        q.add_row(name, _num(v["pending"]), _num(v["scheduled"]), _num(v["in_flight"]),
                  _num(v["done_per_min"]), _num(v["failed_per_min"]),
                  Text(note, style="yellow") if note else "")
    parts.append(q)

    t = Table(title="Task types", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("type", "queued", "calls/min", "limit", "use", "rejected", "rows saved",
                "save ok", "dead", "note"):
        t.add_column(col, justify="left" if col in ("type", "note") else "right")
    for api, v in data["task_types"].items():
        use = v["calls_per_min"] / v["limit_per_min"] if v["limit_per_min"] else 0
        rate = v["save_success_rate"]
        t.add_row(
            api, _num(v["pending"] + v["scheduled"]), _num(v["calls_per_min"]),
            _num(v["limit_per_min"]), f"{use:.0%}",
            Text(_num(v["rejected_per_min"]), style="red" if v["rejected_per_min"] else ""),
            _num(v["rows_saved"]),
            "-" if rate is None else Text(f"{rate:.1%}", style="" if rate == 1 else "yellow"),
            Text(_num(v["dead_lettered"]), style="red" if v["dead_lettered"] else ""),
            Text(v["paused"], style="yellow") if v["paused"] else "",
        )
    parts.append(t)

    p = Table(title="Processes", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("process", "state", "pid", "uptime", "restarts", "CPU %", "RSS MB", "note"):
        p.add_column(col, justify="left" if col in ("process", "state", "note") else "right")
    for name, v in data["processes"].items():
        p.add_row(name, Text(v["state"], style=STATE_STYLE.get(v["state"], "")), _num(v["pid"]),
                  _duration(v["uptime"]), _num(v["restarts"]), _num(v["cpu_percent"]),
                  _num(v["rss_mb"]), Text((v.get("reason") or "").split("\n")[0], style="yellow"))
    parts.append(p)
    backlog = sum(v["pending"] + v["scheduled"] for v in data["queues"].values())
    eta = f"ETA {_duration(data['eta_seconds'])}" if data["eta_seconds"] else "nothing queued"
    parts.append(Text(f"backlog {backlog:,} task(s); {eta}"))
    return Group(*parts)


@app.command()
def status(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C.")
                     ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (schema in README).")
                       ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between "
                                            "refreshes with --watch.")] = 1.0,
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="With --watch: return once every queued task is saved or "
        "dead-lettered.")] = False,
    config_file: ConfigOption = None,
) -> None:
    """Queues, throughput, save success and processes. Exit 0 healthy, 3 stopped, 5 unhealthy.

    Example: neo status --watch
    """
    settings = settings_for(config_file)
    sampler = ProcessSampler()
    pipeline = Pipeline(settings)
    data = collect(settings, sampler, pipeline)
    if as_json:
        out.print_json(json.dumps(data))
        raise typer.Exit(exit_code(data))
    if not watch:
        out.print(render(data))
        raise typer.Exit(exit_code(data))
    try:
        with Live(render(data), console=out, refresh_per_second=4, screen=False) as live:
            while not (until_idle and idle(data)):
                time.sleep(interval)
                data = collect(settings, sampler, pipeline)
                live.update(render(data))
    except KeyboardInterrupt:
        pass
    raise typer.Exit(exit_code(data))


def idle(data: dict[str, Any]) -> bool:
    """Nothing left to do — or nothing that will do it: stopped, or a consumer failed."""
    if not data["running"] or any(p["state"] == "failed" for p in data["processes"].values()):
        return True
    return data["units_in_progress"] == 0 and all(
        q["pending"] + q["scheduled"] + q["in_flight"] == 0 for q in data["queues"].values())
