"""Last-resort handling of an unexpected exception in the CLI: one line on stderr, exit 2, traceback to a file.

Every fault the user can fix is an ``EvalmonError`` with its own message; this catches what slipped through
(a bug, or an environment fault such as a full disk or exhausted memory) so a CI log never shows a
traceback and ``evalmon gate`` never exits 1 ("regression") on a crash. The full traceback is kept in a file
named in the message; ``EVALMON_DEBUG=1`` re-raises instead.
"""

from __future__ import annotations

import errno
import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from evalmon.core.redact import redact_text

_ENV_FAULTS = {
    errno.ENOSPC: "no space left on device — free disk space and rerun (scored requests are cached)",
    errno.EDQUOT: "disk quota exceeded — free space and rerun (scored requests are cached)",
    errno.EROFS: "read-only file system — choose a writable output directory",
    errno.EACCES: "permission denied — check the permissions of the path",
}


def describe(exc: BaseException) -> str:
    """What went wrong, in one line, with what to do where the fault is the environment's."""
    if isinstance(exc, MemoryError):
        return "out of memory — lower the sizes involved (--limit, batch_size, rate × duration) or use a bigger machine"
    if isinstance(exc, OSError) and exc.errno in _ENV_FAULTS:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{_ENV_FAULTS[exc.errno].split(' — ')[0]}{where} — {_ENV_FAULTS[exc.errno].split(' — ', 1)[1]}"
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"internal error: {type(exc).__name__}: {text}" if text else f"internal error: {type(exc).__name__}"


def _traceback_file(exc: BaseException) -> Path | None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = redact_text("".join(traceback.format_exception(exc)))  # a URI in a message keeps its credentials out
    for folder in (Path(".evalmon").resolve() / "crash", Path(tempfile.gettempdir()) / "evalmon-crash"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stamp}-{os.getpid()}.txt"
            path.write_text(body, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def report_unexpected(exc: BaseException) -> str:
    """The ``error: …`` line for ``exc`` (re-raises it when ``EVALMON_DEBUG`` is set)."""
    if os.environ.get("EVALMON_DEBUG"):
        raise exc
    line = f"error: {describe(exc)}"
    env_fault = isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in _ENV_FAULTS)
    path = _traceback_file(exc)
    if path is not None:
        line += f" (traceback: {path})" if env_fault else f" — please report it with the traceback in {path}"
    return line
