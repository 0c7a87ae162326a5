"""Which machine this is: one with the ledger and the database (`all`, `slow`), or a download
machine (`--role fast`) that has neither. Light on purpose: `neo --help` imports it."""

from __future__ import annotations

from neo_cli.errors import InputError
from neo_cli.paths import Paths
from neo_cli.runstate import running_settings


def is_download_machine(settings) -> bool:
    """This machine has no ledger: its config says `[supervisor] role = "fast"`, or the neo
    running here was started with `--role fast`."""
    if settings.values["supervisor"]["role"] == "fast":
        return True
    running = running_settings(Paths(settings.data_dir)) or {}
    return running.get("supervisor", {}).get("role") == "fast"


def here_only(settings, what: str) -> None:
    """Refuse on a download machine what needs the ledger or the database in this process."""
    if is_download_machine(settings):
        raise InputError(
            f"{what} reads the ledger or the database, which are on the machine with the "
            "database (--role slow): run it there"
        )
