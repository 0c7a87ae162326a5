"""`neo dlq list|retry|purge`: the dead-letter list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from neo_cli import deadletters
from neo_cli.cli.app import ConfigOption, app, out, settings_for
from neo_cli.errors import InputError
from neo_cli.tasktypes import task_type

dlq = typer.Typer(
    help="Dead letters: tasks that failed for good, with their reason.", no_args_is_help=True
)
app.add_typer(dlq, name="dlq")

TaskTypeOption = Annotated[
    str | None,
    typer.Option("--task-type", "-t", help="Only this task type.", show_default=False),
]
IdsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Dead-letter ids (or their first characters).", show_default=False),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every dead letter (of --task-type).")]


def _api(name: str | None) -> str | None:
    """A task type names one interface here (daily_qfq has two: pick one)."""
    if name is None:
        return None
    kind = task_type(name)
    if len(kind.datasets) > 1:
        raise InputError(
            f"--task-type {name!r} covers {', '.join(kind.datasets)}; name one of them"
        )
    return kind.datasets[0]


@dlq.command("list")
def list_(task_type_: TaskTypeOption = None, config_file: ConfigOption = None) -> None:
    """List dead letters with their reason and attempts.

    Example: neo dlq list --task-type income
    """
    from rich.table import Table

    dead = deadletters.list_dead(settings_for(config_file), _api(task_type_))
    if not dead:
        out.print("no dead letters")
        return
    table = Table(
        "id",
        "task",
        "attempts",
        "class",
        "reason",
        "when",
        box=None,
        header_style="bold underline",
        pad_edge=False,
    )
    for r in dead:
        table.add_row(
            r.unit.id[:12],
            r.unit.describe(),
            str(r.attempts),
            r.error_class or "",
            r.error or "",
            dt.datetime.fromtimestamp(r.updated).strftime("%m-%d %H:%M"),
        )
    out.print(table)
    out.print(f"{len(dead)} dead letter(s); `neo dlq retry ID…` or `--all` sends them back")


@dlq.command()
def retry(
    ids: IdsArgument = None,
    all_: AllOption = False,
    task_type_: TaskTypeOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Send dead letters back to the download queue, attempts counted afresh.

    Example: neo dlq retry --all --task-type daily
    """
    n = deadletters.retry(settings_for(config_file), ids or [], all_, _api(task_type_))
    out.print(f"re-enqueued {n} dead letter(s)")


@dlq.command()
def purge(
    ids: IdsArgument = None,
    all_: AllOption = False,
    task_type_: TaskTypeOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Forget dead letters for good.

    Example: neo dlq purge --all
    """
    n = deadletters.purge(settings_for(config_file), ids or [], all_, _api(task_type_))
    out.print(f"purged {n} dead letter(s)")
