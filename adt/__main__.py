"""``python -m adt`` runs the CLI."""

from adt.cli import main

main()
