"""``run_monitor``: one pass of a monitor — thin orchestration around the executor.

    lock → sync pending windows → which windows (watermark / backfill; refused past
    ``window.max_windows_per_run`` or before ``source.timestamp_min``) → the executor runs the pipeline
    (``pipeline.py``) window by window (``executors/local.py``) and hands each window to the sink (window
    folder, MLflow run) → watermark after each window → one webhook POST for the run's alerts → exit code

Windows are processed oldest first and the watermark moves after each one, so an interrupted run
resumes where it stopped. Heavy modules (evidently, mlflow, the signal models) load only after the
lock is taken and only when there is a window to process.

Accounting: every record a run reads for its windows is processed (in a window's frame) or quarantined
(placed in one of its windows, or *unplaced*: no usable time). ``read = processed + quarantined`` is
checked at the end of a run (a mismatch is a bug and raises), printed, and logged per window
(``records/read|processed|quarantined[/<reason>]``; the unplaced bucket on the run's last window).
"""

from __future__ import annotations

import logging
import math
import shlex
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from evalmon.config.monitor import MonitorConfig
from evalmon.core.errors import ConfigError
from evalmon.core.version import __version__
from evalmon.monitor.alerts import Alert, WebhookOutcome, payload, post_webhook
from evalmon.monitor.pipeline import WindowOutcome
from evalmon.monitor.schedule import MonitorLock, WatermarkStore
from evalmon.monitor.windows import Window, as_utc, parse_duration, window_of, windows_between

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.contracts import Source
    from evalmon.monitor.executors.ledger import QuarantineLedger
    from evalmon.monitor.executors.local import ExecutorStats

log = logging.getLogger("evalmon.monitor")


@dataclass
class MonitorResult:
    monitor: str
    mode: str  # once | backfill
    windows: list[WindowOutcome] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    quarantined: int = 0  # placed in this run's windows + unplaced
    quarantine_file: str | None = None
    rows_read: int = 0  # = processed + quarantined
    processed: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # quarantined, by reason key
    unplaced: int = 0  # quarantined with no usable time (part of ``quarantined``)
    synced: list[dict[str, Any]] = field(default_factory=list)
    webhook: WebhookOutcome | None = None
    watermark: datetime | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stats: ExecutorStats | None = None  # what the executor read and held at once

    @property
    def exit_code(self) -> int:
        return 1 if self.alerts else 0

    def account(self, ledger: QuarantineLedger, processed: int) -> None:
        self.processed, self.quarantined, self.quarantine_file = processed, ledger.quarantined, ledger.quarantine_file
        self.by_reason, self.unplaced = dict(ledger.by_reason), ledger.n_unplaced
        self.rows_read = processed + ledger.quarantined


def _say(log_fn: Callable[[str], None] | None, msg: str) -> None:
    (log_fn or log.info)(msg)


def plan_windows(cfg: MonitorConfig, store: WatermarkStore, *, now: datetime,
                 backfill: tuple[datetime, datetime] | None, earliest: Callable[[], datetime | None]
                 ) -> list[Window]:
    """Complete windows to process: after the watermark (or ``window.start`` / the earliest record), or
    the backfill range; a window is complete once ``now`` is past its end plus ``window.delay``, and
    none ends after ``window.end`` when one is set."""
    size, delay = parse_duration(cfg.window.size), parse_duration(cfg.window.delay)
    horizon = now - delay if cfg.window.end is None else min(now - delay, cfg.window.end)
    if backfill is not None:
        lo, hi = (as_utc(x) for x in backfill)
        return _bounded(cfg, lo, min(hi, horizon), size, what="--backfill FROM")
    mark = store.get(cfg.name)
    start = mark or cfg.window.start or earliest()
    if start is None:
        return []
    what = "the watermark" if mark else "window.start" if cfg.window.start else "the earliest record"
    return _bounded(cfg, window_of(start, size).start, horizon, size, what=what)


def _bounded(cfg: MonitorConfig, start: datetime, end: datetime, size: timedelta, *, what: str) -> list[Window]:
    """``windows_between``, refused before anything is written when the span starts before the first
    plausible time or holds more than ``window.max_windows_per_run`` windows (a runaway)."""
    first = window_of(start, size)
    floor = as_utc(cfg.source.timestamp_min)
    if first.end <= floor:
        raise ConfigError(f"{what} {as_utc(start).isoformat()} is before source.timestamp_min {floor.isoformat()}: "
                          "windows before it can only be empty (older records are quarantined as implausible)",
                          hint="start at or after it, or lower source.timestamp_min if such old records are real")
    count = max(0, math.floor((as_utc(end) - first.start) / size))
    limit = cfg.window.max_windows_per_run
    if count > limit:
        last = first.start + count * size
        hint = {"--backfill FROM": "narrow --backfill FROM TO or raise window.max_windows_per_run",
                "the watermark": "raise window.max_windows_per_run to catch up from the watermark, or --backfill "
                                 "FROM TO the range you need"}.get(
            what, "set window.start, raise window.max_windows_per_run or use --backfill FROM TO for a bounded range")
        raise ConfigError(f"{count} windows between {first.start.isoformat()} and {last.isoformat()} exceed "
                          f"window.max_windows_per_run={limit}", hint=hint)
    return windows_between(first.start, end, size)


def check_drift_methods(cfg: MonitorConfig) -> None:
    """``drift.methods`` values are evidently stattest names: an unknown one is a ConfigError before any record
    is read. (It was an "evidently failed" entry in each window's drift.json while the console said "drift
    0/N columns": that column's drift silently skipped in every window.)"""
    if not cfg.drift.enabled or not cfg.drift.methods:
        return
    import evidently.legacy.calculations.stattests  # noqa: F401 (registers every stattest)
    from evidently.legacy.calculations.stattests import registry

    known = sorted(getattr(registry, "_registered_stat_tests", None) or ())
    if not known:  # another evidently layout: evidently's own error, per window, as before
        return
    from evalmon.core.errors import did_you_mean

    for column, method in cfg.drift.methods.items():
        if method not in known:
            where = f"{cfg.source_path}: " if cfg.source_path else ""
            raise ConfigError(f"{where}drift.methods.{column}: unknown drift test {method!r}"
                              f"{did_you_mean(method, known)}", hint=f"use one of {', '.join(known)}")


def _nothing_to_do(cfg: MonitorConfig, watermark: datetime | None,
                   backfill: tuple[datetime, datetime] | None) -> str:
    """Why no window ran: a backfill names its range (and the ``window.end`` that cuts it), not the watermark
    it ignores."""
    if backfill is None:
        return "no complete window to process" + (f" after the watermark {watermark.isoformat()}" if watermark else "")
    lo, hi = (as_utc(x) for x in backfill)
    end = cfg.window.end
    cut = (f" (window.end {as_utc(end).isoformat()} ends the monitor before it: drop or move window.end to "
           "backfill later)") if end is not None and as_utc(end) < hi else ""
    return f"no complete window to process in --backfill {lo.isoformat()} {hi.isoformat()}{cut}"


def run_monitor(cfg: MonitorConfig, *, backfill: tuple[datetime, datetime] | None = None,
                now: datetime | None = None, source: Source | None = None,
                log_fn: Callable[[str], None] | None = None) -> MonitorResult:
    """Process every complete, unprocessed window once (or the ``backfill`` range again)."""
    t0 = time.perf_counter()
    now = as_utc(now or datetime.now(UTC))
    result = MonitorResult(cfg.name, "backfill" if backfill else "once")
    check_output_dir(cfg)
    check_drift_methods(cfg)
    if cfg.tracking.enabled:  # a store that can never be written fails now, as for suite runs (one pre-flight)
        from evalmon.sinks.mlflow import preflight

        warning = preflight(cfg.tracking.uri)
        if warning:
            _say(log_fn, warning)
    stack, store = open_state(cfg)
    with stack:
        if cfg.tracking.enabled:
            result.synced = sync_pending(cfg)
            for o in result.synced:
                _say(log_fn, f"synced {o['window_dir']}: {o['status']} {o.get('reason') or ''}".rstrip())
        from evalmon.monitor.executors.local import LocalExecutor
        from evalmon.monitor.sources import build_source, pin_clock

        src = source or build_source(cfg.source, cfg.base_dir)
        pin_clock(src, datetime.now(UTC))
        executor_cls = LocalExecutor
        if cfg.executor == "spark":  # pyspark imports only here (a one-line error when absent)
            from evalmon.monitor.executors.spark import SparkExecutor as executor_cls  # type: ignore[assignment]
        executor = executor_cls(cfg, src, WindowSink(cfg), log_fn=lambda m: _say(log_fn, m),
                                sample_rows=cfg.drift.reservoir_rows)
        stack.callback(executor.close)
        result.stats = executor.stats
        scanned: list[datetime | None] = []

        def earliest() -> datetime | None:
            scanned.append(executor.earliest(now))
            return scanned[-1]

        windows = plan_windows(cfg, store, now=now, backfill=backfill, earliest=earliest)
        if result.mode == "once":  # records that landed behind the watermark since it moved (monitor/late.py)
            from evalmon.monitor.late import late_records

            for late in late_records(cfg, src, store.get(cfg.name)):
                result.notes.append(late.line(shlex.quote(str(cfg.source_path or "MONITOR.yaml"))))  # printed after
        if not windows:
            if scanned:  # read, but no window: its unplaced records (all, when none was usable) still count
                executor.account_unplaced(now, placed=scanned[-1] is None)
                result.account(executor.ledger, 0)
                executor.check_not_all_quarantined(first=True)
            result.watermark = store.get(cfg.name)
            result.notes.append(_nothing_to_do(cfg, result.watermark, backfill))
            result.seconds = time.perf_counter() - t0
            return result
        t = time.perf_counter()
        for outcome in executor.run(windows, backfill=result.mode == "backfill", first=store.get(cfg.name) is None):
            store.record(cfg.name, outcome.window, mode=result.mode, outcome=outcome.tracking.get("status", "written"),
                         run_id=outcome.tracking.get("run_id"))
            if result.mode == "once":
                store.advance(cfg.name, outcome.window.end)
            result.windows.append(outcome)
            result.alerts.extend(outcome.alerts)
            for a in outcome.alerts:
                _say(log_fn, a.message())
            _say(log_fn, outcome.line())
        result.account(executor.ledger, executor.processed)
        check_accounting(result, executor.ledger)
        st = executor.stats
        _say(log_fn, f"{len(windows)} window(s) from {windows[0].start.isoformat()} to {windows[-1].end.isoformat()} "
                     f"read window by window: {result.rows_read} records ({result.quarantined} quarantined), at most "
                     f"{st.max_rows_held} held at once, in {time.perf_counter() - t:.1f} s"
                     + (f" (signals {st.seconds_signals:.1f} s)" if cfg.signals else ""))
        result.watermark = store.get(cfg.name)
    if result.alerts and cfg.alerts.webhook is not None:
        urls = {o.window.start.isoformat(): o.tracking.get("ui_url") for o in result.windows}
        result.webhook = post_webhook(cfg.alerts.webhook, payload(cfg.name, result.alerts, experiment=cfg.experiment,
                                                                  ui_urls={k: v for k, v in urls.items() if v}))
        _say(log_fn, result.webhook.line(cfg.alerts.webhook.url))
    result.seconds = time.perf_counter() - t0
    return result


def check_output_dir(cfg: MonitorConfig) -> None:
    """``output_dir`` (and the monitor's folder in it) must be, or become, folders — checked before any read."""
    for key, path in (("output_dir", cfg.output_dir), ("output_dir", cfg.run_dir),
                      ("state.path", cfg.state_path.parent)):
        p = path
        while not p.exists() and p.parent != p:
            p = p.parent
        if not p.is_dir():
            raise ConfigError(f"{key}: {p} is an existing file, not a folder (needed for {path})",
                              hint=f"point {key} at a folder, or move the file away")


def open_state(cfg: MonitorConfig) -> tuple[ExitStack, WatermarkStore]:
    """The monitor's lock and watermark db, entered; a path that cannot hold them is a one-line ConfigError."""
    stack = ExitStack()
    path = cfg.state_path
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        stack.enter_context(MonitorLock(path, cfg.name))
        store = stack.enter_context(WatermarkStore(path))
    except (OSError, sqlite3.Error) as exc:
        stack.close()
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"state.path: cannot open the watermark db {path} ({what})",
                          hint="set state.path to a writable file path (default: <output_dir>/state.sqlite)") from None
    return stack, store


def check_accounting(result: MonitorResult, ledger: QuarantineLedger) -> None:
    """``read = processed + quarantined``, and the windows hold exactly those records: else a bug."""
    in_windows = sum(o.records for o in result.windows)
    placed = sum(ledger.take(o.window) for o in result.windows)
    by_reason = sum(result.by_reason.values())
    if (result.rows_read != result.processed + result.quarantined or in_windows != result.processed
            or placed + result.unplaced != result.quarantined or by_reason != result.quarantined):
        raise RuntimeError(f"record accounting mismatch (a bug): read {result.rows_read}, processed "
                           f"{result.processed} (in windows {in_windows}), quarantined {result.quarantined} "
                           f"(in windows {placed}, unplaced {result.unplaced}, by reason {by_reason})")


# --------------------------------------------------------------------------- sink calls (sinks/mlflow/windows.py)


def sync_pending(cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Upload the windows earlier runs kept on disk while MLflow was unreachable."""
    from evalmon.sinks.mlflow.windows import pending_windows, sync_windows

    if not pending_windows(cfg.run_dir):
        return []
    return sync_windows(cfg.run_dir, cfg.tracking.uri)


class WindowSink:
    """Where the executor hands each finished window: trace assessments, ``window.json``, its MLflow run.
    Once MLflow is found unreachable in a run, later windows are kept pending without waiting on it."""

    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.down: str | None = None

    def assess(self, outcome: WindowOutcome, records: pd.DataFrame, columns: list[str]) -> None:
        """MLflow-traces source: the window's 0/1 signal ``columns`` as feedback on each record's trace."""
        from evalmon.monitor.contracts import TRACE_ID

        cfg = self.cfg
        uri = getattr(cfg.source, "tracking_uri", None) or cfg.tracking.uri  # where the traces live
        if self.down is not None or not (cfg.tracking.enabled and cfg.tracking.assessments and uri
                                         and TRACE_ID in records.columns):
            return
        from evalmon.monitor.assessments import attach
        from evalmon.sinks.mlflow import check_reachable

        down = check_reachable(uri)
        if down:
            outcome.notes.append(f"trace assessments skipped: {down}")
            return
        counts = attach(records, columns, uri, monitor=cfg.name, window=outcome.window.key)
        outcome.metrics["assessments/logged"] = float(counts["logged"])
        if counts["errors"]:
            outcome.notes.append(f"{counts['errors']} trace assessment(s) failed")

    def finish(self, outcome: WindowOutcome) -> None:
        """``window.json``: what the MLflow run will hold (metrics incl. ``alerts/count``, params, tags)."""
        from evalmon.sinks.mlflow.windows import WindowRecord, write_window

        outcome.metrics["alerts/count"] = float(len(outcome.alerts))
        tags = {"evalmon.version": __version__}
        if outcome.notes:
            tags["evalmon.notes"] = " | ".join(outcome.notes)
        record = WindowRecord(self.cfg.name, outcome.window, outcome.metrics, outcome.params, tags,
                              [a.to_dict() | {"rule": a.rule} for a in outcome.alerts])
        write_window(outcome.directory, record)

    def track(self, outcome: WindowOutcome) -> None:
        cfg = self.cfg
        if not cfg.tracking.enabled:
            return
        from evalmon.sinks.mlflow.windows import log_window, mark_pending

        if self.down is not None:  # the server was down for an earlier window of this run: don't wait again
            outcome.tracking = mark_pending(outcome.directory, cfg.tracking.uri or "", cfg.experiment, self.down)
            return
        out = log_window(outcome.directory, cfg.tracking.uri, cfg.experiment)
        if out.get("status") == "pending" and str(out.get("reason", "")).startswith("cannot reach"):
            self.down = str(out.get("reason"))
        outcome.tracking = out
