"""`neo enqueue`."""

from __future__ import annotations

from typing import Annotated

import typer

from neo_cli.cli.app import (
    ConfigOption,
    ListedOnlyOption,
    SymbolsFileOption,
    SymbolsOption,
    app,
    duration,
    err,
    out,
    settings_for,
)
from neo_cli.dates import parse
from neo_cli.errors import InputError
from neo_cli.tasktypes import table_of
from neo_cli.tasktypes import task_type as resolve_task_type


@app.command()
def enqueue(
    task_type: Annotated[
        str,
        typer.Option(
            "--task-type",
            "-t",
            help="stock_basic, daily, adj_factor, daily_qfq, income, "
            "balancesheet or cashflow (aliases: stock_daily, daily_bar_none, daily_bar_qfq).",
            show_default=False,
        ),
    ],
    symbols: SymbolsOption = None,
    symbols_file: SymbolsFileOption = None,
    listed_only: ListedOnlyOption = False,
    start_date: Annotated[
        str | None,
        typer.Option(
            "--start-date",
            help="YYYYMMDD (default: after the last saved date, else listing).",
            show_default=False,
        ),
    ] = None,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date", help="YYYYMMDD (default: today, China time).", show_default=False
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Fetch the whole range again, ignoring what is saved.")
    ] = False,
    priority: Annotated[
        int, typer.Option("--priority", help="Higher runs first.", min=-1000, max=1000)
    ] = 0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the plan (calls per interface, time at the "
            "configured limits, the strategies weighed) and enqueue nothing.",
        ),
    ] = False,
    inline: Annotated[
        bool,
        typer.Option("--inline", help="Download and save here, without consumers (for debugging)."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="When the queue is full ([queue] max_pending), wait instead of refusing."
        ),
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Queue downloads: incremental by default, so only what is not saved yet.

    Example: neo enqueue --task-type daily --symbols 000001.SZ,600000.SH --start-date 20200101
    """
    from neo_cli.planner import Request, requested_symbols

    kind = resolve_task_type(task_type)
    codes = requested_symbols(symbols, symbols_file, listed_only)
    if kind.name == "stock_basic" and codes is not None:
        raise InputError("stock_basic takes no symbols: it lists the whole market")
    request = Request(
        task_type=kind,
        symbols=codes,
        start=parse(start_date, "--start-date") if start_date is not None else None,
        end=parse(end_date, "--end-date") if end_date is not None else None,
        full=full,
        priority=priority,
        listed_only=listed_only,
    )
    settings = settings_for(config_file)
    # Imported here: `neo status` and `neo --help` should not pay for pandas and DuckDB.
    from neo_cli.enqueue import dry_run as plan_only
    from neo_cli.enqueue import enqueue as enqueue_units
    from neo_cli.inline import run_inline

    if dry_run:
        show_plan(kind.name, plan_only(settings, request), settings.rate_limits)
        return

    if inline:

        def progress(unit, what):
            out.print(f"  {unit.describe()}: {what}")

        result = run_inline(settings, request, progress)
        out.print(
            f"inline {kind.name}: {result.saved} task(s) saved, {result.rows} rows, "
            f"{result.dead} dead-lettered; skipped {result.plan.queued} already queued, "
            f"{result.plan.current} up to date (batch {result.batch})"
        )
        if result.dead:
            raise typer.Exit(1)
        return

    def waiting(pending: int, limit: int) -> None:
        err.print(f"queue full ({pending} pending, max_pending {limit}); waiting…")

    done = enqueue_units(settings, request, wait=wait, on_wait=waiting)
    plan = done.plan
    out.print(
        f"enqueued {len(done.ids)} {kind.name} task(s) as batch {done.batch}; "
        f"skipped {plan.queued} already queued, {plan.current} up to date"
    )
    if done.ids:
        out.print(f"follow it with: neo task {done.batch}")


def show_plan(kind: str, plan, limits: dict[str, int]) -> None:
    """Each interface's strategies with their calls and time at its limit; the chosen first."""
    out.print(f"dry run: {kind} for {plan.symbols or 'the whole'} symbol(s); nothing enqueued")
    seconds = {}  # per interface, at its limit
    for api, priced in plan.choices.items():
        chosen = priced[0]
        # The interface the chosen units call (income_vip for whole-market statements).
        limit = limits[chosen.units[0].api] if chosen.units else limits[api]
        seconds[api] = chosen.calls / limit * 60
        out.print(
            f"{api}: {chosen.calls:,} call(s) with {chosen.name} ({chosen.note}), "
            f"about {duration(seconds[api])} at {limit}/min"
        )
        for strategy in priced:
            mark = "  <- chosen" if strategy is chosen else ""
            own = limits[strategy.units[0].api] if strategy.units else limit
            out.print(
                f"    {strategy.name:<13} {strategy.calls:>8,} calls  "
                f"{duration(strategy.calls / own * 60):>7}{mark}"
            )
    calls = sum(priced[0].calls for priced in plan.choices.values())
    # stock_basic has no strategies to weigh: one call per listing status.
    for api in sorted({u.api for u in plan.units if table_of(u.api) not in plan.choices}):
        n = sum(u.api == api for u in plan.units)
        calls += n
        seconds[api] = n / limits[api] * 60
        out.print(f"{api}: {n} call(s), about {duration(seconds[api])} at {limits[api]}/min")
    out.print(f"skipped {plan.queued} already queued, {plan.current} up to date")
    longest = max(seconds.values(), default=0.0)
    out.print(
        f"total {calls:,} call(s) in {len(plan.units):,} task(s); about {duration(longest)} "
        "with every interface at its limit (they run side by side)"
    )
