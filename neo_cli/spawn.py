"""Starting neo's own background processes (the supervisor, the consumers)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from neo_cli.logs import rotate_output


def spawn_module(module: str, args: list[str], output: Path, env: Mapping[str, str]):
    """`python -m module args…` detached: in a session of its own (no terminal signals reach
    it; neo signals it itself, and a SIGHUP restart of Huey's consumer cannot hit it), stdin
    closed, stdout and stderr appended to `output` (rotated first when it grew past the logs'
    size). Returns the Popen."""
    rotate_output(output)
    out = open(output, "ab")  # noqa: SIM115 - the child owns it from here
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=dict(env),
        )
    finally:
        out.close()
