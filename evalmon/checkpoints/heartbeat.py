"""A line every few seconds while something long runs (a CI log must not look hung; works without a TTY)."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from evalmon.core.errors import ConfigError

HEARTBEAT_S = 10.0
ENV = "EVALMON_HEARTBEAT_S"  # the interval in seconds (tests make it short)


def heartbeat_interval() -> float:
    """Seconds between heartbeat lines: ``$EVALMON_HEARTBEAT_S``, else 10."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return HEARTBEAT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"${ENV}={raw!r}: expected a number of seconds > 0", hint=f"e.g. {ENV}=10, or unset it")
    return value


@contextmanager
def heartbeat(log: Callable[[str], None] | None, what: str, every: float | None = None,
              announce_after: float = 0.0, line: Callable[[float], str] | None = None,
              announce: bool = True) -> Iterator[None]:
    """Log ``what…`` now (or after ``announce_after`` s, if still running), ``what… N s`` (or ``line(elapsed)``)
    every ``every`` seconds (default ``heartbeat_interval()``), and ``what: done in N s`` at the end (only if
    anything was announced). ``announce=False``: the periodic lines only (the caller says start and end)."""
    if log is None:
        yield
        return
    every = heartbeat_interval() if every is None else every
    start = time.monotonic()
    stop = threading.Event()
    announced = threading.Event()

    def beat() -> None:
        if announce and announce_after > 0:
            if stop.wait(announce_after):
                return
            log(f"{what}…")
            announced.set()
        while not stop.wait(every):
            elapsed = time.monotonic() - start
            log(line(elapsed) if line is not None else f"{what}… {elapsed:.0f} s")

    if announce and announce_after <= 0:
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


@contextmanager
def quiet_tqdm(module: Any) -> Iterator[None]:
    """``module.tqdm`` (a library's own progress bar, which ignores any global switch) disabled within the block:
    its carriage-return redraws garble CI logs; the caller's heartbeat reports progress instead."""
    original = getattr(module, "tqdm", None)
    if original is not None:
        module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            module.tqdm = original
