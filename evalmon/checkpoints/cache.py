"""The user cache directory for fetched and converted checkpoints: location, cross-process lock, atomic publish.

``$EVALMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/evalmon``, else ``~/.cache/evalmon``. A checkpoint is built in
a temporary sibling directory and renamed into place when complete, under a file lock, so two processes
(two pytest workers, two CLI runs) never convert the same checkpoint twice or see half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evalmon.core.errors import OutputError

Log = Callable[[str], None]


def cache_root() -> Path:
    env = os.environ.get("EVALMON_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "evalmon"


def cache_subdir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the evalmon cache directory {path}: {exc.strerror or exc}",
                          hint="set EVALMON_CACHE_DIR to a writable directory") from None
    return path


@contextmanager
def locked(target: Path, log: Log | None = None) -> Iterator[None]:
    """Hold ``<target>.lock`` (an OS file lock, released if the process dies); say so when waiting on another."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(target.parent / f".{target.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log:
            log(f"waiting for another evalmon process that is preparing {target}…")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A temporary directory beside ``final``; renamed to ``final`` if the block succeeds, removed otherwise.

    Call it holding ``locked(final)``: leftovers of a killed earlier attempt are removed first.
    """
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():  # an incomplete earlier attempt (we hold the lock, nobody else is writing it)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
