"""Reading a file the user named, with one-line errors that say which file and why."""

from __future__ import annotations

from pathlib import Path

from neo_cli.errors import InputError


def read_input(path: Path, what: str, origin: str = "") -> bytes:
    """The bytes of `path`; `what` names it in errors ("config file"), `origin` says where
    the name came from ("--config")."""
    name = f"{what} {path}" + (f" (from {origin})" if origin else "")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{name} is not readable") from None
    except OSError as exc:
        raise InputError(f"{name} could not be read: {exc.strerror}") from None
