"""`python -m neo_cli` is `neo`."""

from neo_cli.cli import main

main()
