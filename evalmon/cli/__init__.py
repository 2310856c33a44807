"""The thin command-line layer: typer app (``app``), console rendering, crash handling, command groups."""

from evalmon.cli.app import app, main

__all__ = ["app", "main"]
