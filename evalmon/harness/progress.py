"""Rich progress bars for the CLI: one bar per task with requests/s and ETA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from evalmon.harness.engine import Advance


class RateColumn(ProgressColumn):
    """Throughput in requests per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} req/s" if speed else "– req/s", style="cyan")


class RichProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def task(self, name: str, total: int) -> Iterator[Advance]:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=False) as bar:
            tid = bar.add_task(name, total=total)
            yield lambda n: bar.advance(tid, n)
