"""``run_monitor``: one pass of a monitor — the arrows of the monitor pipeline in one place.

    lock → sync pending windows → which windows (watermark / backfill; refused past
    ``window.max_windows_per_run`` or before ``source.timestamp_min``) → read the source for their span
    → data quality + quarantine file → signals → reference → per window: summary + drift vs reference
    → window folder → MLflow run → alerts → watermark → one webhook POST for the run's alerts

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
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from evalmon.core.errors import ConfigError, DataError, did_you_mean
from evalmon.monitor import stages
from evalmon.monitor.alerts import Alert, WebhookOutcome, evaluate, payload, post_webhook
from evalmon.monitor.config import MonitorConfig
from evalmon.monitor.schedule import MonitorLock, WatermarkStore
from evalmon.monitor.stages import WindowOutcome
from evalmon.monitor.windows import Window, as_utc, parse_duration, split, window_of, windows_between

if TYPE_CHECKING:
    from evalmon.monitor.contracts import Source

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

    @property
    def exit_code(self) -> int:
        return 1 if self.alerts else 0

    def account(self, quality: stages.QualityOutcome, processed: int) -> None:
        self.processed, self.quarantined, self.quarantine_file = processed, quality.quarantined, quality.quarantine_file
        self.by_reason, self.unplaced = dict(quality.by_reason), sum(quality.unplaced.values())
        self.rows_read = processed + quality.quarantined


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


def run_monitor(cfg: MonitorConfig, *, backfill: tuple[datetime, datetime] | None = None,
                now: datetime | None = None, source: Source | None = None,
                log_fn: Callable[[str], None] | None = None) -> MonitorResult:
    """Process every complete, unprocessed window once (or the ``backfill`` range again)."""
    t0 = time.perf_counter()
    now = as_utc(now or datetime.now(UTC))
    result = MonitorResult(cfg.name, "backfill" if backfill else "once")
    check_output_dir(cfg)
    if cfg.tracking.enabled:  # a store that can never be written fails now, as for suite runs (one pre-flight)
        from evalmon.sinks.mlflow import preflight

        warning = preflight(cfg.tracking.uri)
        if warning:
            _say(log_fn, warning)
    stack, store = open_state(cfg)
    with stack:
        if cfg.tracking.enabled:
            result.synced = stages.sync_pending(cfg)
            for o in result.synced:
                _say(log_fn, f"synced {o['window_dir']}: {o['status']} {o.get('reason') or ''}".rstrip())
        src = source or stages.open_source(cfg)
        earliest_cache: dict[str, Any] = {}

        def earliest() -> datetime | None:
            batch = stages.read(src, None, now)
            earliest_cache["batch"] = batch
            ts = batch.frame[cfg.window.timestamp] if len(batch.frame) else None
            return None if ts is None else as_utc(ts.min())

        windows = plan_windows(cfg, store, now=now, backfill=backfill, earliest=earliest)
        if not windows:
            if earliest_cache.get("batch") is not None:  # read, but no window: its unplaced records still count
                result.account(stages.write_quarantine(cfg, earliest_cache["batch"], parse_duration(cfg.window.size),
                                                       now, now), 0)
                check_not_all_quarantined(cfg, result, first=True)
            result.watermark = store.get(cfg.name)
            result.notes.append("no complete window to process" + (
                f" after the watermark {result.watermark.isoformat()}" if result.watermark else ""))
            result.seconds = time.perf_counter() - t0
            return result
        _process(cfg, store, src, windows, result, log_fn=log_fn, preread=earliest_cache.get("batch"))
        result.watermark = store.get(cfg.name)
    if result.alerts and cfg.alerts.webhook is not None:
        urls = {o.window.start.isoformat(): o.tracking.get("ui_url") for o in result.windows}
        result.webhook = post_webhook(cfg.alerts.webhook, payload(cfg.name, result.alerts, experiment=cfg.experiment,
                                                                  ui_urls={k: v for k, v in urls.items() if v}))
        _say(log_fn, result.webhook.line(cfg.alerts.webhook.url))
    result.seconds = time.perf_counter() - t0
    return result


def _process(cfg: MonitorConfig, store: WatermarkStore, src: Source, windows: list[Window], result: MonitorResult,
             *, log_fn: Callable[[str], None] | None, preread: Any) -> None:
    size = parse_duration(cfg.window.size)
    previous = cfg.reference.kind == "previous" and cfg.drift.enabled  # the window before the first one too
    lo = windows[0].start - size if previous else windows[0].start
    hi = windows[-1].end
    t = time.perf_counter()
    batch = preread if preread is not None else stages.read(src, lo, hi)
    frame = stages.within(batch.frame, cfg.window.timestamp, lo, hi)
    span = windows[0].start, hi  # this run's windows (lo < span start: the previous window, as reference)
    quality = stages.write_quarantine(cfg, batch, size, *span)
    result.account(quality, len(stages.within(frame, cfg.window.timestamp, *span)))
    check_not_all_quarantined(cfg, result, first=store.get(cfg.name) is None)
    _say(log_fn, f"read {result.rows_read} records for {len(windows)} window(s) from {span[0].isoformat()} to "
                 f"{hi.isoformat()} ({quality.quarantined} quarantined) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    frame = stages.signals(cfg, frame)
    if cfg.signals:
        _say(log_fn, f"signals ({len(cfg.signals)}) over {len(frame)} records in {time.perf_counter() - t:.1f} s")
    reference = None if previous or not cfg.drift.enabled else stages.reference(cfg, src)
    if reference is not None:
        _say(log_fn, f"reference ({cfg.reference.kind}): {len(reference)} records")
    ctx = stages.Context.build(cfg, reference if reference is not None else frame)
    tracking_down: str | None = None
    slices = list(split(frame, ([Window(lo, windows[0].start, windows[0].index - 1)] if previous else [])
                        + windows, cfg.window.timestamp))
    prev_slice = slices[0][1] if previous else None
    for w, cur in (slices[1:] if previous else slices):
        ref = prev_slice if previous else reference
        outcome = stages.process_window(cfg, ctx, w, cur, ref, quality, backfill=result.mode == "backfill",
                                        last=w == windows[-1])
        if not result.windows:
            check_rule_metrics(cfg, outcome)
        check = evaluate(cfg.alerts.rules, outcome.metrics, monitor=cfg.name, window=w)
        outcome.alerts, outcome.notes = check.alerts, outcome.notes + check.notes
        if tracking_down is None:
            stages.assess(cfg, ctx, outcome, cur)
        stages.finish_window(cfg, outcome)
        if cfg.tracking.enabled:
            outcome.tracking = stages.track(cfg, outcome, unreachable=tracking_down)
            if outcome.tracking.get("unreachable") and tracking_down is None:  # don't wait on it per window
                tracking_down = str(outcome.tracking.get("reason"))
        run_id = outcome.tracking.get("run_id")
        store.record(cfg.name, w, mode=result.mode, outcome=outcome.tracking.get("status", "written"),
                     run_id=run_id)
        if result.mode == "once":
            store.advance(cfg.name, w.end)
        result.windows.append(outcome)
        result.alerts.extend(outcome.alerts)
        for a in outcome.alerts:
            _say(log_fn, a.message())
        _say(log_fn, outcome.line())
        prev_slice = cur
    check_accounting(result, quality)


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


_HOW_TO_FIX = {
    "timestamp.missing": "check the `columns:` mapping (which source field is the timestamp: columns.timestamp)",
    "unparseable_json": "check that source.kind matches the files' format (jsonl: one JSON object per line)",
    "json_line_is_not_an_object": "check that source.kind matches the files' format (jsonl: one JSON object "
                                  "per line)",
    "timestamp.unparseable": "check the `columns:` mapping and source.assume_timezone (which field is the time)",
    "timestamp.implausible": "check the `columns:` mapping (columns.timestamp) and source.timestamp_min",
}


def check_not_all_quarantined(cfg: MonitorConfig, result: MonitorResult, *, first: bool) -> None:
    """Records were read but none could be used: a misconfigured source, not traffic (exit 2). The
    quarantine file is already written. Once windows were processed, the unplaced records alone (re-read
    by every run) with a quiet window are not that."""
    if not result.rows_read or result.processed or result.quarantined != result.rows_read:
        return
    if not first and result.quarantined == result.unplaced:
        return
    reason, n = next(iter(result.by_reason.items()))
    hint = _HOW_TO_FIX.get(reason, "check source.kind and the `columns:` mapping against the records")
    where = f"; see {result.quarantine_file}" if result.quarantine_file else ""
    raise DataError(f"source: all {result.rows_read} records read were quarantined, none processed (mostly "
                    f"{reason}: {n}){where}", hint=hint)


def check_rule_metrics(cfg: MonitorConfig, outcome: WindowOutcome) -> None:
    """After the first window: an alert rule on a metric this monitor never computes could never fire."""
    maybe = ("records/quarantined/", "records/unplaced/")  # only when such records exist
    drifted: set[str] = set()  # columns the drift plan tests: their score can be absent in one window
    if outcome.drift is not None:
        if outcome.drift.skipped:
            maybe += ("drift/", "drift_detected/")  # drift metrics appear once drift runs
        drifted = {c.column for c in outcome.drift.columns}
    for i, rule in enumerate(cfg.alerts.rules):
        if rule.metric in outcome.metrics or rule.metric.startswith(maybe):
            continue
        kind, _, rest = rule.metric.partition("/")
        if kind in ("drift", "drift_detected") and rest in drifted:
            continue
        col = rule.metric.split("/")[1] if rule.metric.count("/") >= 2 else ""
        if rule.metric.startswith("share/") and f"share/{col}/_other" in outcome.metrics:
            continue  # a value not among this run's top values (a new model version) may be in a later run
        raise ConfigError(f"alerts.rules[{i}].metric: {rule.metric!r} is not a metric of this monitor's windows"
                          f"{did_you_mean(rule.metric, list(outcome.metrics))}",
                          hint="use a metric name from a window.json (metrics) or the MLflow run")


def check_accounting(result: MonitorResult, quality: stages.QualityOutcome) -> None:
    """``read = processed + quarantined``, and the windows hold exactly those records: else a bug."""
    in_windows = sum(o.records for o in result.windows)
    placed = sum(quality.take(o.window) for o in result.windows)
    by_reason = sum(result.by_reason.values())
    if (result.rows_read != result.processed + result.quarantined or in_windows != result.processed
            or placed + result.unplaced != result.quarantined or by_reason != result.quarantined):
        raise RuntimeError(f"record accounting mismatch (a bug): read {result.rows_read}, processed "
                           f"{result.processed} (in windows {in_windows}), quarantined {result.quarantined} "
                           f"(in windows {placed}, unplaced {result.unplaced}, by reason {by_reason})")
