"""SIGTERM behaves like Ctrl-C during a run, and no signal cuts the local save of a run short.

``run_suite`` wraps its work in ``signals_as_interrupts()``: SIGTERM raises ``Terminated`` (a
``KeyboardInterrupt``, so the partial run is saved by the same code as after Ctrl-C) and the CLI exits
with ``128 + signal`` (143). Inside ``deferred()`` (writing results, samples and reports) a SIGINT/SIGTERM
is remembered and raised when the block ends. Handlers are installed from the main thread only and
restored afterwards; a handler someone else installed (not Python's default) is left alone.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM (or another termination signal) during a run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def exit_code(exc: KeyboardInterrupt) -> int:
    """What the CLI returns after ``exc``: 130 for Ctrl-C, 128 + N for signal N."""
    return int(getattr(exc, "exit_code", 130))


def describe(exc: KeyboardInterrupt) -> str:
    return f"interrupted by {signal.Signals(exc.signum).name}" if isinstance(exc, Terminated) \
        else "interrupted by SIGINT (Ctrl-C)"


class _State:
    depth = 0  # > 0: inside deferred()
    pending: int | None = None


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.depth:
        _State.pending = _State.pending or signum
        return
    _raise_for(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM → ``Terminated`` and SIGINT → ``KeyboardInterrupt`` for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    saved = {}
    for sig, default in wanted.items():
        if signal.getsignal(sig) is default:  # not one the embedding application chose
            saved[sig] = signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Postpone SIGINT/SIGTERM (when ``signals_as_interrupts`` handles them) until the block is done."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if not _State.depth and _State.pending is not None:
        pending, _State.pending = _State.pending, None
        _raise_for(pending)
