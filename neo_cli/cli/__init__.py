"""The command-line interface, one module per group of commands."""

from neo_cli.cli import dlq, enqueue, inspect, run, status, verify  # noqa: F401 - they register
from neo_cli.cli.app import app, main

__all__ = ["app", "main"]
