"""How ``--help`` renders (typer + rich): flags show no value type, and a pipe or CI log gets wide help.

typer 0.29 puts the value type in the help's type column for every option — flags included, so
``--no-tracking <bool>`` reads as if it took a value. And without a terminal rich falls back to 80 columns,
which wraps every description; ``$TERMINAL_WIDTH`` (typer's own setting) or ``$COLUMNS`` still win.
"""

from __future__ import annotations

import os
import sys
from typing import Any

HELP_WIDTH = 160  # wide enough that no option's description wraps (tests/cli/test_ci_output.py checks it)


def configure_help() -> None:
    import typer.core
    import typer.rich_utils

    option = typer.core.TyperOption
    shown_now = getattr(option, "display_type_rich", None)  # typer 0.29's hook; other versions: leave help as is
    if shown_now is not None and not getattr(shown_now, "_evalmon_flags", False):
        shown = option.display_type_rich

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            return None if self.is_flag and self.metavar is None else shown(self, ctx)

        display_type_rich._evalmon_flags = True  # type: ignore[attr-defined]
        option.display_type_rich = display_type_rich  # type: ignore[method-assign]
    explicit = os.environ.get("TERMINAL_WIDTH") or os.environ.get("COLUMNS", "").strip().isdigit()
    if not explicit and not sys.stdout.isatty():
        typer.rich_utils.MAX_WIDTH = HELP_WIDTH
