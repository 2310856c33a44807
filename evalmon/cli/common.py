"""What every command module shares: the rich consoles (full width when the output is not a terminal)."""

from __future__ import annotations

import os
from typing import Any

# Not a terminal (a CI log, a pipe, a file): no width to fit, so nothing is cut or wrapped at 80 columns —
# tables keep their natural width (they never expand), numbers and names print whole. An explicit $COLUMNS wins.
PLAIN_WIDTH = 1000


def console(stderr: bool = False) -> Any:  # -> rich.console.Console
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False)
    if not writes_to_a_tty(con) and not os.environ.get("COLUMNS", "").strip().isdigit():
        con.width = PLAIN_WIDTH
    return con


def writes_to_a_tty(con: Any) -> bool:
    """Whether the console's file really is a terminal ($FORCE_COLOR makes rich *style* a CI log as one)."""
    isatty = getattr(con.file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed file
        return False
