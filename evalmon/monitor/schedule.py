"""Exactly-once window processing: a watermark store, a per-monitor lock, and the cron loop.

* ``WatermarkStore`` (sqlite): per monitor, the end of the last window processed in order. A normal
  run processes the complete windows after it and moves it forward after each window (a crash
  mid-window redoes only that window, and the MLflow sink reuses its run, so it is logged once). It
  never moves backwards; ``--backfill`` does not move it at all. Every processing is also appended to
  a ``processed`` table (mode, outcome, MLflow run) — the audit trail.
* ``MonitorLock``: an exclusive ``filelock.FileLock`` (``flock``) on ``<state dir>/<monitor>.lock`` held while a run
  reads the watermark, processes and advances it. A second process (cron overlap, a manual run, a
  backfill) gets ``MonitorBusyError`` at once — it names the holder and exits 75 (EX_TEMPFAIL) without
  touching anything. The OS drops the lock when its holder dies, so a crash never wedges the monitor.
* ``run_schedule``: APScheduler 3.11 ``BlockingScheduler`` + ``CronTrigger.from_crontab`` (UTC),
  ``max_instances=1`` and ``coalesce=True`` (missed ticks collapse into one run); the first run
  starts immediately.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from evalmon.core.errors import ConfigError, EvalmonError
from evalmon.monitor.windows import Window

log = logging.getLogger("evalmon.monitor")


class MonitorBusyError(EvalmonError):
    """Another process holds this monitor's lock; nothing was processed."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class WatermarkStore:
    """sqlite file with ``watermarks(monitor, window_end_ms)`` and ``processed(...)`` tables."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS watermarks (monitor TEXT PRIMARY KEY, "
                           "window_end_ms INTEGER NOT NULL, updated_at TEXT NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS processed (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                           "monitor TEXT NOT NULL, window_start_ms INTEGER NOT NULL, window_end_ms INTEGER NOT NULL, "
                           "mode TEXT NOT NULL, outcome TEXT, run_id TEXT, processed_at TEXT NOT NULL)")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> WatermarkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, monitor: str) -> datetime | None:
        row = self._conn.execute("SELECT window_end_ms FROM watermarks WHERE monitor = ?", (monitor,)).fetchone()
        return _dt(row[0]) if row else None

    def advance(self, monitor: str, end: datetime) -> datetime:
        """Set the watermark to ``end`` unless it is already later; returns the stored value."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._conn.execute(
            "INSERT INTO watermarks (monitor, window_end_ms, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(monitor) DO UPDATE SET window_end_ms = MAX(window_end_ms, excluded.window_end_ms), "
            "updated_at = excluded.updated_at", (monitor, _ms(end), now))
        got = self.get(monitor)
        assert got is not None
        return got

    def record(self, monitor: str, window: Window, *, mode: str, outcome: str, run_id: str | None = None) -> None:
        self._conn.execute(
            "INSERT INTO processed (monitor, window_start_ms, window_end_ms, mode, outcome, run_id, processed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (monitor, _ms(window.start), _ms(window.end), mode, outcome, run_id,
             datetime.now(UTC).isoformat(timespec="milliseconds")))

    def history(self, monitor: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT window_start_ms, window_end_ms, mode, outcome, run_id, processed_at FROM processed "
            "WHERE monitor = ? ORDER BY id", (monitor,)).fetchall()
        return [{"start": _dt(a), "end": _dt(b), "mode": m, "outcome": o, "run_id": r, "processed_at": p}
                for a, b, m, o, r, p in rows]


class MonitorLock:
    """Exclusive, non-blocking, per-monitor file lock (``filelock``: ``flock`` on Unix, so the OS releases it
    if we die); the lock file names its holder while held."""

    def __init__(self, state_path: Path, monitor: str) -> None:
        self.path = Path(state_path).parent / f"{monitor}.lock"
        self.monitor = monitor
        self._lock: Any = None

    def acquire(self) -> MonitorLock:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise MonitorBusyError(
                f"monitor '{self.monitor}' is already being processed by {self._holder()} (lock {self.path}); "
                "this run processed nothing",
                hint="windows are never processed twice: let that run finish, the next one continues "
                     "from the watermark") from None
        self.path.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{datetime.now(UTC).isoformat(timespec='seconds')}\n", encoding="utf-8")
        self._lock = lock
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self.path.write_text("", encoding="utf-8")
            self._lock.release()
            self._lock = None

    def __enter__(self) -> MonitorLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def cron_trigger(expr: str) -> Any:
    """``CronTrigger.from_crontab(expr)`` in UTC; a bad expression is a one-line ``ConfigError``."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(expr, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(f"--schedule {expr!r}: {exc}",
                          hint='use five crontab fields, e.g. "*/15 * * * *" (minute hour day month weekday)') from None


def run_schedule(expr: str, job: Callable[[], Any], *, run_now: bool = True, max_runs: int | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> int:
    """Run ``job`` on the cron schedule until SIGTERM/SIGINT (or ``max_runs`` runs); returns runs done.

    A job that raises is reported through ``on_error`` (default: logged) and the schedule goes on —
    a monitor that is down for one tick (source missing, lock held) catches up on the next."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    trigger = cron_trigger(expr)
    sched = BlockingScheduler(timezone=UTC)
    done = 0
    lock = threading.Lock()

    def wrapped() -> None:
        nonlocal done
        try:
            job()
        except BaseException as exc:  # keep the loop alive; KeyboardInterrupt stops it below
            if isinstance(exc, KeyboardInterrupt):
                raise
            (on_error or (lambda e: log.exception("scheduled monitor run failed", exc_info=e)))(exc)
        finally:
            with lock:
                done += 1
                if max_runs is not None and done >= max_runs:
                    sched.shutdown(wait=False)

    kwargs: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if run_now else {}
    sched.add_job(wrapped, trigger, id="evalmon-monitor", max_instances=1, coalesce=True,
                  misfire_grace_time=None, **kwargs)
    stop = lambda *_: sched.shutdown(wait=False)  # noqa: E731
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, stop)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return done


@contextlib.contextmanager
def locked(state_path: Path, monitor: str) -> Iterator[MonitorLock]:
    with MonitorLock(state_path, monitor) as lk:
        yield lk
