"""``run_monitor``: one pass of a monitor — the arrows of the monitor pipeline in one place.

    lock → sync pending windows → which windows (watermark / backfill) → read the source for their span
    → data quality + quarantine file → signals → reference → per window: summary + drift vs reference
    → window folder → MLflow run → alerts → watermark → one webhook POST for the run's alerts

Windows are processed oldest first and the watermark moves after each one, so an interrupted run
resumes where it stopped. Heavy modules (evidently, mlflow, the signal models) load only after the
lock is taken and only when there is a window to process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalmon.monitor import stages
from evalmon.monitor.alerts import Alert, WebhookOutcome, evaluate, payload, post_webhook
from evalmon.monitor.config import MonitorConfig
from evalmon.monitor.schedule import MonitorLock, WatermarkStore
from evalmon.monitor.stages import WindowOutcome
from evalmon.monitor.windows import Window, as_utc, parse_duration, split, window_of, windows_between

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.contracts import Source

log = logging.getLogger("evalmon.monitor")


@dataclass
class MonitorResult:
    monitor: str
    mode: str  # once | backfill
    windows: list[WindowOutcome] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    quarantined: int = 0
    quarantine_file: str | None = None
    rows_read: int = 0
    synced: list[dict[str, Any]] = field(default_factory=list)
    webhook: WebhookOutcome | None = None
    watermark: datetime | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.alerts else 0


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
        return windows_between(lo, min(hi, horizon), size)
    start = store.get(cfg.name) or cfg.window.start or earliest()
    if start is None:
        return []
    return windows_between(window_of(start, size).start, horizon, size)


def run_monitor(cfg: MonitorConfig, *, backfill: tuple[datetime, datetime] | None = None,
                now: datetime | None = None, source: Source | None = None,
                log_fn: Callable[[str], None] | None = None) -> MonitorResult:
    """Process every complete, unprocessed window once (or the ``backfill`` range again)."""
    t0 = time.perf_counter()
    now = as_utc(now or datetime.now(UTC))
    result = MonitorResult(cfg.name, "backfill" if backfill else "once")
    with MonitorLock(cfg.state_path, cfg.name), WatermarkStore(cfg.state_path) as store:
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
    result.rows_read = len(frame)
    quality = stages.write_quarantine(cfg, batch, size)
    result.quarantined, result.quarantine_file = quality.quarantined, quality.quarantine_file
    _say(log_fn, f"read {len(frame)} records for {len(windows)} window(s) from {lo.isoformat()} to "
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
        outcome = stages.process_window(cfg, ctx, w, cur, ref, quality, backfill=result.mode == "backfill")
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


def frame_of(result: MonitorResult) -> pd.DataFrame:
    """The per-window metrics of a run as one frame (index = window start) — handy in notebooks/tests."""
    import pandas as pd

    return pd.DataFrame({o.window.start: o.metrics for o in result.windows}).T.sort_index()
