"""The command-line interface, one module per group of commands."""

from neo_cli.cli import dlq, enqueue, inspect, run, status  # noqa: F401 - they register commands
from neo_cli.cli.app import app, main

__all__ = ["app", "main"]
