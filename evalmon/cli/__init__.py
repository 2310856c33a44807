"""The thin command-line layer: typer app (``evalmon.cli.app``), console rendering, crash handling, command groups.

The package imports nothing at import time: ``python -m evalmon.cli.app`` (what the tests run) must not find
``evalmon.cli.app`` already imported (runpy's RuntimeWarning would be a second stderr line on every error).
"""


def main() -> None:
    """The ``evalmon`` console script (``evalmon.cli:main``)."""
    from evalmon.cli.app import main as run

    run()


__all__ = ["main"]
