"""Each process logs to its own rotated file under the data directory (`neo logs NAME`)."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from neo_cli.paths import Paths

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def to_file(paths: Paths, name: str, also_stderr: bool = False) -> None:
    """Send this process's logging to `logs/<name>.log` (10 MiB × 5 kept)."""
    handler = logging.handlers.RotatingFileHandler(
        paths.log_file(name), maxBytes=10 * 2**20, backupCount=5, encoding="utf-8"
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
