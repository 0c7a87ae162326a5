"""Each process logs to its own rotated file under the data directory (`neo logs NAME`)."""

from __future__ import annotations

import logging
import logging.handlers
import shutil
import sys
from pathlib import Path

from neo_cli.paths import Paths

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
MAX_BYTES, KEEP = 10 * 2**20, 5  # per log file, and old files kept: as for every log


def rotate_output(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Rotate a process's captured stdout/stderr (`*.stderr`) past `max_bytes`: copy it to
    `.1` (older ones shift up, `keep` kept) and truncate it in place. The process writing it
    opened it for appending, so it goes on writing at the new end: nothing is lost and no
    restart is needed. True if it rotated."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


def to_file(paths: Paths, name: str, also_stderr: bool = False) -> None:
    """Send this process's logging to `logs/<name>.log` (10 MiB × 5 kept)."""
    handler = logging.handlers.RotatingFileHandler(
        paths.log_file(name), maxBytes=MAX_BYTES, backupCount=KEEP, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(FORMAT))
    handlers: list[logging.Handler] = [handler]
    if also_stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        console.setLevel(logging.WARNING)
        handlers.append(console)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(logging.INFO)
    # Huey logs every task, httpx every request, at INFO: at tens a second they would
    # drown what matters and rotate real errors away.
    for chatty in ("huey", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
