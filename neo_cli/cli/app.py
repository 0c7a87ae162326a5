"""The `neo` command: parse, call one core function, render. Nothing else imports this package.

Errors: the core raises `NeoError`s; `NeoGroup.main` turns them — and click's usage errors —
into one red line on stderr and the documented exit code, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from neo_cli import config
from neo_cli.errors import EXIT_FAILURE, EXIT_INPUT, EXIT_OK, NeoError

try:  # newer typer vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    ClickAbort: type[BaseException] = typer.Abort
except ImportError:  # pragma: no cover - older typer with click installed
    from click.exceptions import Abort as ClickAbort
    from click.exceptions import ClickException, NoArgsIsHelpError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def duration(seconds: float | None) -> str:
    """'42s', '5m03s', '2h07m'; '-' for None."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fail(message: str, code: int) -> None:
    err.print(f"[bold red]neo: error:[/] {escape(message)}")
    sys.exit(code)


class NeoGroup(TyperGroup):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except NeoError as exc:
            fail(str(exc), exc.exit_code)
        except NoArgsIsHelpError as exc:  # plain `neo`: the help, as `neo --help` shows it
            out.print(exc.ctx.get_help() if exc.ctx else str(exc), markup=False)
            sys.exit(EXIT_OK)
        except ClickException as exc:
            fail(exc.format_message().replace("\n", " "), getattr(exc, "exit_code", EXIT_INPUT))
        except ClickAbort:
            fail("aborted", 130)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - a bug still gets one line, not a traceback
            if os.environ.get("NEO_DEBUG"):
                raise
            fail(
                f"unexpected {type(exc).__name__}: {exc} (NEO_DEBUG=1 shows the traceback)",
                EXIT_FAILURE,
            )
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=NeoGroup,
    name="neo",
    help="Keep a local DuckDB database of A-share market data current, at the API's limits.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help says "[fast] workers": brackets are text, not markup
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from neo_cli import __version__

        out.print(f"neo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print neo's version and exit."
        ),
    ] = False,
) -> None:
    """Keep a local DuckDB database of A-share market data current, at the API's limits."""


# The symbol selection, shared by the commands that take one (`enqueue`, `verify`).
SymbolsOption = Annotated[
    str | None,
    typer.Option(
        "--symbols",
        help="Comma-separated codes, e.g. 000001.SZ,600000.SH (default: the whole market, "
        "every listing status).",
        show_default=False,
    ),
]
SymbolsFileOption = Annotated[
    Path | None,
    typer.Option("--symbols-file", help="One code a line; # starts a comment.", show_default=False),
]
ListedOnlyOption = Annotated[
    bool,
    typer.Option(
        "--listed-only",
        help="The whole market means today's listed symbols only (default: listed, delisted "
        "and paused, so the history has no survivorship bias).",
    ),
]

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $NEO_CONFIG, else ./configs/neo.toml).",
        show_default=False,
    ),
]


def settings_for(config_file: Path | None, overrides: dict[str, Any] | None = None):
    """Settings with command-line flags applied over environment, file and defaults."""
    return config.load(config_file, overrides)


config.register_flag("fast.workers", "--fast-workers")
config.register_flag("slow.workers", "--slow-workers")
config.register_flag("schedule.update", "--no-schedule")
config.register_flag("supervisor.role", "--role")


def main() -> None:
    os.umask(0o077)  # everything neo writes is readable by its owner only
    app(prog_name="neo")
