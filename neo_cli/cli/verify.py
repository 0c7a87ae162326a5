"""`neo verify`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from neo_cli.cli.app import (
    ConfigOption,
    ListedOnlyOption,
    SymbolsFileOption,
    SymbolsOption,
    app,
    out,
    settings_for,
)
from neo_cli.dates import parse
from neo_cli.errors import EXIT_INCOMPLETE, InputError
from neo_cli.roles import here_only


@app.command()
def verify(
    task_type: Annotated[
        str | None,
        typer.Option(
            "--task-type",
            "-t",
            help="Check one task type (default: daily, adj_factor and the three statements).",
            show_default=False,
        ),
    ] = None,
    symbols: SymbolsOption = None,
    symbols_file: SymbolsFileOption = None,
    listed_only: ListedOnlyOption = False,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date",
            help="YYYYMMDD (default: yesterday, China time: the last day that is over).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the holes as JSON.")] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Enqueue exactly the holes (an incremental enqueue).")
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Is the database complete? Holes in each symbol's coverage; exit 0 when there are none.

    Example: neo verify --task-type daily
    """
    from neo_cli.planner import requested_symbols
    from neo_cli.verify import requests_for
    from neo_cli.verify import verify as find_holes

    if task_type is not None and task_type.strip().lower() == "stock_basic":
        raise InputError("stock_basic has no coverage to verify: it is one list, saved whole")
    codes = requested_symbols(symbols, symbols_file, listed_only)
    end = parse(end_date, "--end-date") if end_date is not None else None
    settings = settings_for(config_file)
    here_only(settings, "neo verify")
    requests = requests_for(task_type, codes, end=end, listed_only=listed_only)
    reports = [r for request in requests for r in find_holes(settings, request)]
    missing = sum(r.ranges for r in reports)
    if not codes and end is None and not listed_only:  # the whole market: what /metrics shows
        record_coverage(settings, reports)
    if as_json:
        out.print_json(
            json.dumps({"complete": missing == 0, "apis": [r.to_dict() for r in reports]})
        )
    else:
        for r in reports:
            queued = f", {len(r.queued)} more on their way" if r.queued else ""
            bad = sum(len(rs) for rs in r.quarantined.values())
            if bad:
                queued += (
                    f"; {bad} bad row(s) of {len(r.quarantined)} symbol(s) set aside in "
                    "_quarantine (covered: asking again brings the same rows)"
                )
            if not r.holes:
                out.print(f"{r.api}: complete ({r.symbols} symbols){queued}")
                continue
            out.print(
                f"{r.api}: {len(r.holes)} of {r.symbols} symbols have holes, "
                f"{r.ranges} range(s){queued}"
            )
            for code, ranges in sorted(r.holes.items())[:20]:
                shown = ", ".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in ranges[:5])
                more = f" (+{len(ranges) - 5} more)" if len(ranges) > 5 else ""
                out.print(f"  {code}  {shown}{more}")
            if len(r.holes) > 20:
                out.print(f"  … and {len(r.holes) - 20} more symbols (--json lists them all)")
    if repair and missing:
        from neo_cli.enqueue import enqueue

        for request in requests:
            done = enqueue(settings, request)
            out.print(f"repair: enqueued {len(done.ids)} {request.task_type.name} task(s)")
    if missing:
        raise typer.Exit(EXIT_INCOMPLETE)


def record_coverage(settings, reports) -> None:
    """Keep the result where `neo status` and `/metrics` read it (`neo_coverage_holes`)."""
    import time

    from neo_cli.metrics import MetricsStore
    from neo_cli.paths import Paths

    store = MetricsStore(Paths(settings.data_dir).metrics)
    try:
        previous = store.gauges().get("verify", {}).get("coverage", ({}, 0))[0] or {}
        holes = {**previous.get("symbols_with_holes", {})}
        holes.update({r.api: len(r.holes) for r in reports})
        store.add({}, {"coverage": {"symbols_with_holes": holes, "checked": time.time()}}, "verify")
    finally:
        store.close()
