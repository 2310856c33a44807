"""What every command module shares: the rich consoles (full width when the output is not a terminal)."""

from __future__ import annotations

from typing import Any


def console(stderr: bool = False) -> Any:  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
