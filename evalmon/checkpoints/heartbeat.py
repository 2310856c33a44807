"""A line every few seconds while something long runs (a CI log must not look hung; works without a TTY)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEARTBEAT_S = 10.0


@contextmanager
def heartbeat(log: Callable[[str], None] | None, what: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Log ``what…`` now, ``what… N s`` every ``every`` seconds, and ``what: done in N s`` at the end."""
    if log is None:
        yield
        return
    start = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            log(f"{what}… {time.monotonic() - start:.0f} s")

    log(f"{what}…")
    thread = threading.Thread(target=beat, name="evalmon-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    log(f"{what}: done in {time.monotonic() - start:.0f} s")
