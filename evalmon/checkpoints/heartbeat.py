"""A line every few seconds while something long runs (a CI log must not look hung; works without a TTY)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEARTBEAT_S = 10.0


@contextmanager
def heartbeat(log: Callable[[str], None] | None, what: str, every: float = HEARTBEAT_S,
              announce_after: float = 0.0) -> Iterator[None]:
    """Log ``what…`` now (or after ``announce_after`` s, if still running), ``what… N s`` every ``every``
    seconds, and ``what: done in N s`` at the end (only if anything was announced)."""
    if log is None:
        yield
        return
    start = time.monotonic()
    stop = threading.Event()
    announced = threading.Event()

    def beat() -> None:
        if announce_after > 0:
            if stop.wait(announce_after):
                return
            log(f"{what}…")
            announced.set()
        while not stop.wait(every):
            log(f"{what}… {time.monotonic() - start:.0f} s")

    if announce_after <= 0:
        log(f"{what}…")
        announced.set()
    thread = threading.Thread(target=beat, name="evalmon-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if announced.is_set():
        log(f"{what}: done in {time.monotonic() - start:.0f} s")
