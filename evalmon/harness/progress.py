"""Progress for the CLI: on a terminal one rich bar per task with requests/s and ETA; elsewhere (a CI log, a
pipe) plain heartbeat lines — ``task X: n/N requests, r req/s, eta s`` every ~10 s — since a bar would print
nothing until the task ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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

from evalmon.checkpoints.heartbeat import heartbeat
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
        isatty = getattr(self.console.file, "isatty", None)  # not is_terminal: $FORCE_COLOR sets that in CI
        if not (isatty and isatty()):
            with plain_progress(self.log, name, total) as advance:
                yield advance
            return
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=False) as bar:
            tid = bar.add_task(name, total=total)
            yield lambda n: bar.advance(tid, n)

    def log(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)


def progress_line(name: str, done: int, total: int, elapsed: float, busy: float) -> str:
    """``task X: n/N requests, r req/s, eta s``; ``busy``: seconds until the latest request was answered
    (after the last one, the line says how long scoring has taken so far)."""
    rate = done / busy if busy > 0 else 0.0
    if done >= total:
        return f"task {name}: {done}/{total} requests, {rate:,.1f} req/s; scoring… {elapsed:.0f} s"
    eta = f"eta {(total - done) / rate:,.0f} s" if rate > 0 else "eta –"
    return f"task {name}: {done}/{total} requests, {rate:,.1f} req/s, {eta}"


@contextmanager
def plain_progress(log: Callable[[str], None], name: str, total: int) -> Iterator[Advance]:
    """A line when the task starts, a heartbeat line every ``heartbeat_interval()`` s, one when it ends."""
    start = time.monotonic()
    state = {"done": 0, "busy": 0.0}

    def advance(n: int) -> None:
        state["done"] += n
        state["busy"] = time.monotonic() - start

    def line(elapsed: float) -> str:
        return progress_line(name, int(state["done"]), total, elapsed, state["busy"])

    log(f"task {name}: {total} requests")
    with heartbeat(log, f"task {name}", line=line, announce=False):
        yield advance
    done, busy = int(state["done"]), state["busy"]
    rate = f", {done / busy:,.1f} req/s" if busy > 0 else ""
    log(f"task {name}: {done}/{total} requests in {time.monotonic() - start:.1f} s{rate}")
