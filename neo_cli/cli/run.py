"""`neo start` and `neo stop`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from neo_cli.cli.app import ConfigOption, app, out, settings_for


@app.command()
def start(
    fast_workers: Annotated[
        int | None,
        typer.Option(
            "--fast-workers",
            help="Download threads (default: [fast] workers = 50).",
            show_default=False,
        ),
    ] = None,
    slow_workers: Annotated[
        int | None,
        typer.Option(
            "--slow-workers", help="Save threads (default: [slow] workers = 4).", show_default=False
        ),
    ] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops gracefully.")
    ] = False,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", min=0, help="Seconds a stop waits before killing.")
    ] = 30.0,
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="all: both consumers (one machine); fast: downloads only (a download "
            "machine: no DuckDB, no ledger); slow: the one writer, beside the database. "
            'fast and slow need [queue] storage = "redis" (default: [supervisor] role).',
            show_default=False,
        ),
    ] = None,
    no_schedule: Annotated[
        bool,
        typer.Option(
            "--no-schedule", help="Do not run the daily update by itself ([schedule] update)."
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve /metrics (Prometheus) and /api/status on this port, on [metrics] bind "
            "(127.0.0.1); 0 = off (default: [metrics] port).",
            show_default=False,
        ),
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Start the fast and slow consumers under a supervisor, which also runs the daily update
    at the times [schedule] update gives.

    Example: neo start --fast-workers 50 --slow-workers 4
    """
    from neo_cli import control, supervisor
    from neo_cli.schedule.update import Schedule

    settings = settings_for(
        config_file,
        {
            "fast.workers": fast_workers,
            "slow.workers": slow_workers,
            "schedule.update": "" if no_schedule else None,
            "supervisor.role": role,
            "metrics.port": metrics_port,
        },
    )
    schedule = Schedule.from_settings(settings)
    if settings.values["supervisor"]["role"] == "fast":  # the ledger's machine runs it
        schedule = Schedule(None)
    if foreground:
        pre = control.preflight(settings)
        for note in pre.notes:
            out.print(f"[yellow]{note}[/]")
        out.print(
            f"neo running in the foreground for {pre.paths.root}; Ctrl-C stops it. "
            f"Logs: {pre.paths.logs}"
        )
        out.print(f"  schedule    {escape(describe_schedule(schedule))}")
        raise typer.Exit(supervisor.serve(settings, stop_timeout, foreground=True))
    state, notes = control.start_background(settings, stop_timeout)
    for note in notes:
        out.print(f"[yellow]{note}[/]")
    sup = state["supervisor"]
    out.print(f"neo started for {settings.data_dir}")
    out.print(f"  supervisor  pid {sup['pid']:<8} log {sup['log']}")
    for name, c in state["consumers"].items():
        out.print(f"  {name:<10}  pid {c['pid']:<8} log {c['log']}")
    out.print(f"  schedule    {escape(describe_schedule(schedule))}")
    bind, port = settings.values["metrics"]["bind"], settings.values["metrics"]["port"]
    if port:
        out.print(f"  metrics     http://{bind}:{port}/metrics  /api/status")


def describe_schedule(schedule) -> str:
    """'update "30 18 * * 1-5" (Asia/Shanghai), next 2026-12-02 18:30 CST: stock_basic, …'."""
    import time

    if not schedule.enabled:
        return "off: no daily update by itself ([schedule] update, --no-schedule)"
    upcoming = schedule.cron.next_after(time.time())
    when = schedule.cron.describe(upcoming) if upcoming else "never"
    return (
        f"update {schedule.cron.expression!r} ({schedule.cron.tz.key}), next {when}: "
        + ", ".join(t.name for t in schedule.ordered())
    )


@app.command()
def stop(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0, help="Seconds to let in-flight work finish before killing."
        ),
    ] = 30.0,
    config_file: ConfigOption = None,
) -> None:
    """Stop gracefully: running tasks finish, buffered rows are saved, queued tasks stay queued.

    Example: neo stop --timeout 60
    """
    from neo_cli import control

    result = control.stop(settings_for(config_file), timeout)
    if result.killed:
        out.print(
            f"[yellow]killed after {timeout:.0f}s: {', '.join(result.killed)} "
            "(their unfinished work is re-enqueued at the next start)[/]"
        )
    out.print(f"neo stopped (supervisor pid {result.pid}) in {result.seconds:.1f}s")
