"""The steps ``run_monitor`` strings together, each small and testable on its own.

Source, quality and signals come from their own modules (``sources``, ``quality``, ``signals``); this
file adapts them to the runner. The per-window folder is written here: evidently's ``drift.html``,
``drift.json``, ``quality.json``, ``quarantine_summary.json`` and (``finish_window``) ``window.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core.errors import DataError
from evalmon.core.version import __version__
from evalmon.monitor.config import MonitorConfig
from evalmon.monitor.drift import NOT_DRIFTED, DriftPlan, DriftResult, plan_columns
from evalmon.monitor.windows import SummarySpec, Window, summarize
from evalmon.sinks.mlflow.payload import sanitize_key

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.alerts import Alert
    from evalmon.monitor.contracts import Source, SourceBatch


@dataclass
class WindowOutcome:
    window: Window
    records: int  # processed (in the window's frame)
    metrics: dict[str, float]
    directory: Path
    drift: DriftResult | None = None
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tracking: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        d = self.drift
        drift = ("drift off" if d is None else "drift skipped" if d.skipped
                 else f"drift {d.n_drifted}/{len(d.tested)} columns")
        track = self.tracking.get("status", "not tracked")
        bad = int(self.metrics.get("records/quarantined", 0))
        return (f"{self.window.start.isoformat()}  {self.records:>7} records  {bad} quarantined  {drift}  "
                f"{len(self.alerts)} alert(s)  mlflow: {track}")


# --------------------------------------------------------------------------- source


def open_source(cfg: MonitorConfig) -> Source:
    from evalmon.monitor.sources import build_source

    return build_source(cfg.source, cfg.base_dir)


def read(src: Source, lo: datetime | None, hi: datetime | None) -> SourceBatch:
    return src.read(lo, hi)


def within(frame: pd.DataFrame, ts_col: str, lo: datetime, hi: datetime) -> pd.DataFrame:
    import pandas as pd

    if not len(frame):
        return frame
    ts = frame[ts_col]
    return frame[(ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi))]


# --------------------------------------------------------------------------- quality


@dataclass
class QualityOutcome:
    """The quarantined records a run accounts for — those placed in its windows and the *unplaced* ones
    (no usable time) — counted by reason per window, and where they were written."""

    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # reason key → count, whole run
    quarantine_file: str | None = None
    per_window: dict[int, dict[str, int]] = field(default_factory=dict)  # window index → reason key → count
    unplaced: dict[str, int] = field(default_factory=dict)  # reason key → count

    def summary(self) -> dict[str, Any]:
        return {"quarantined_in_run": self.quarantined, "by_reason": self.by_reason,
                "unplaced_in_run": sum(self.unplaced.values()), "file": self.quarantine_file}

    def take(self, w: Window) -> int:
        """Quarantined records whose time falls in window ``w``."""
        return sum(self.per_window.get(w.index, {}).values())

    def metrics(self, w: Window, processed: int, *, last: bool) -> dict[str, float]:
        """``records/read = records/processed + records/quarantined`` (+ ``records/quarantined/<reason>``)
        for window ``w``; the run's last window also carries the ``records/unplaced[/<reason>]`` bucket."""
        mine = self.per_window.get(w.index, {})
        out = {"records/read": float(processed + sum(mine.values())), "records/processed": float(processed),
               "records/quarantined": float(sum(mine.values()))}
        out.update({f"records/quarantined/{k}": float(v) for k, v in mine.items()})
        if last:
            out["records/unplaced"] = float(sum(self.unplaced.values()))
            out.update({f"records/unplaced/{k}": float(v) for k, v in self.unplaced.items()})
        return out


def write_quarantine(cfg: MonitorConfig, batch: SourceBatch, size: timedelta, lo: datetime,
                     hi: datetime) -> QualityOutcome:
    """The source's quarantined records of this run — placed in [lo, hi) (the run's windows) or unplaced —
    → ``<run dir>/quarantine/<time>.jsonl`` + counts by reason, per window; never dropped silently.
    Records placed outside [lo, hi) belong to another run (a window already processed, or not complete)."""
    import pandas as pd

    from evalmon.monitor.quarantine import reason_key
    from evalmon.monitor.quarantine import write_quarantine as write_jsonl

    lo_ts, hi_ts = pd.Timestamp(lo), pd.Timestamp(hi)
    step_ns = round(size.total_seconds() * 1e9)  # window index = floor(ns since the epoch / size)
    out = QualityOutcome()
    records = []
    for rec, t in zip(batch.quarantined, batch.placed_times(), strict=True):
        key = reason_key(rec.reason)
        if t is None:
            out.unplaced[key] = out.unplaced.get(key, 0) + 1
        elif lo_ts <= t < hi_ts:
            counts = out.per_window.setdefault(int(pd.Timestamp(t).value // step_ns), {})
            counts[key] = counts.get(key, 0) + 1
        else:
            continue
        out.by_reason[key] = out.by_reason.get(key, 0) + 1
        records.append(rec)
    out.quarantined = len(records)
    out.by_reason = dict(sorted(out.by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    if records:
        path = cfg.run_dir / "quarantine" / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
        write_jsonl(records, path)
        out.quarantine_file = str(path)
    return out


def window_quality(cfg: MonitorConfig, cur: pd.DataFrame, quarantined: int) -> tuple[dict[str, float], dict[str, Any]]:
    """great-expectations checks of one window → (``quality/…`` metrics, report dict)."""
    from evalmon.monitor.quality import check_quality

    report = check_quality(cur, cfg.quality, quarantined=quarantined)
    metrics = {"quality/" + k.removeprefix("quality."): v for k, v in report.metrics("quality").items()}
    metrics["quality/quarantined"] = float(quarantined)
    return metrics, report.to_dict()


# --------------------------------------------------------------------------- signals + reference


def signals(cfg: MonitorConfig, frame: pd.DataFrame) -> pd.DataFrame:
    if not cfg.signals:
        return frame
    from evalmon.monitor.signals import SignalCache, build_signals, compute_signals

    cache = SignalCache(cfg.output_dir / "signal_cache.sqlite")  # per record, by content hash
    try:
        return compute_signals(frame, build_signals(cfg.signals), cache)
    finally:
        cache.close()


def reference(cfg: MonitorConfig, src: Source) -> pd.DataFrame:
    """The fixed period of the source, or the reference file — quality-checked, with signals, sampled."""
    ref_cfg = cfg.reference
    if ref_cfg.kind == "fixed":
        batch = src.read(ref_cfg.start, ref_cfg.end)
        frame = within(batch.frame, cfg.window.timestamp, ref_cfg.start, ref_cfg.end)  # type: ignore[arg-type]
    else:
        from evalmon.monitor.sources import build_source

        path = str(ref_cfg.path)
        kind = "csv" if path.endswith(".csv") else "parquet" if path.endswith(".parquet") else "jsonl"
        frame = build_source({"kind": kind, "path": path, "columns": dict(cfg.source.columns)},
                             cfg.base_dir).read(None, None).frame
    if not len(frame):  # drift would be skipped in every window: a reference that compares nothing
        if ref_cfg.kind == "fixed":
            raise DataError(f"reference: the fixed span [{ref_cfg.start}, {ref_cfg.end}) holds no usable record "
                            "of the source", hint="set reference.start/end to a period with traffic, or use "
                                                  "reference.kind: previous")
        raise DataError(f"reference.path: {ref_cfg.path} holds no usable record",
                        hint="point reference.path at a file of canonical records, or use reference.kind: previous")
    if ref_cfg.max_rows is not None and len(frame) > ref_cfg.max_rows:
        frame = frame.sample(ref_cfg.max_rows, random_state=cfg.seed).sort_index()
    return signals(cfg, frame)


@dataclass
class Context:
    """Fixed for the whole run: drift columns, summary spec (histogram edges) and the run's params."""

    plan: DriftPlan
    spec: SummarySpec
    params: dict[str, str]

    @classmethod
    def build(cls, cfg: MonitorConfig, basis: pd.DataFrame) -> Context:
        import pandas as pd

        plan = plan_columns(basis, cfg.drift)
        numeric = [c for c in basis.columns
                   if c not in NOT_DRIFTED and pd.api.types.is_numeric_dtype(basis[c])
                   and not pd.api.types.is_bool_dtype(basis[c])]
        spec = SummarySpec.fit(basis, numeric, plan.categorical)
        params = {"monitor": cfg.name, "config_hash": cfg.config_hash(), "evalmon_version": __version__,
                  "window.size": cfg.window.size, "window.delay": cfg.window.delay,
                  "reference.kind": cfg.reference.kind, "source.kind": str(getattr(cfg.source, "kind", "?")),
                  "signals": ",".join(s.name for s in cfg.signals) or "none"}
        if cfg.reference.kind == "fixed":
            params.update({"reference.start": str(cfg.reference.start), "reference.end": str(cfg.reference.end)})
        elif cfg.reference.kind == "file":
            params["reference.path"] = str(cfg.reference.path)
        return cls(plan, spec, params)


# --------------------------------------------------------------------------- one window


def window_dir(cfg: MonitorConfig, w: Window) -> Path:
    return cfg.run_dir / "windows" / w.key


def process_window(cfg: MonitorConfig, ctx: Context, w: Window, cur: pd.DataFrame, ref: pd.DataFrame | None,
                   quality: QualityOutcome, *, backfill: bool = False, last: bool = False) -> WindowOutcome:
    """Summary metrics + drift + record accounting for one window (``last``: the run's last window, which
    also carries the unplaced bucket); writes drift/quality files into its folder."""
    from evalmon.monitor.drift import compute_drift

    d = window_dir(cfg, w)
    d.mkdir(parents=True, exist_ok=True)
    metrics = summarize(cur, ctx.spec).metrics()
    notes: list[str] = []
    drift = None
    if cfg.drift.enabled:
        if ref is None or not len(ref):
            drift = DriftResult(n_current=len(cur), skipped="no reference data", drift_share=cfg.drift.drift_share)
        else:
            drift = compute_drift(cur, ref, ctx.plan, cfg.drift, html_path=d / "drift.html")
        metrics.update(drift.metrics())
        if drift.skipped:
            notes.append(f"drift skipped: {drift.skipped}")
        notes += drift.errors
        _write(d / "drift.json", drift.to_dict())
    n_bad = quality.take(w)
    qmetrics, qreport = window_quality(cfg, cur, n_bad) if cfg.quality.enabled else ({}, {"enabled": False})
    metrics.update(qmetrics)
    accounting = quality.metrics(w, len(cur), last=last)
    metrics.update(accounting)
    _write(d / "quality.json", {"window": w.key, **qreport})
    _write(d / "quarantine_summary.json", {"quarantined_in_window": n_bad,
                                           "by_reason_in_window": quality.per_window.get(w.index, {}),
                                           **({"unplaced": quality.unplaced} if last else {}), **quality.summary()})
    params = dict(ctx.params)
    params["n_reference"] = str(len(ref) if ref is not None else 0)
    if drift is not None:
        for col, method in drift.methods().items():
            params[f"drift.method/{col}"] = method
    if backfill:
        notes.append("processed by --backfill")
    metrics = {sanitize_key(k): v for k, v in metrics.items()}  # alert rules use the names MLflow shows
    return WindowOutcome(w, len(cur), metrics, d, drift=drift, notes=notes, params=params)


def assess(cfg: MonitorConfig, ctx: Context, outcome: WindowOutcome, cur: pd.DataFrame) -> None:
    """MLflow-traces source: the window's 0/1 signal columns as feedback on each record's trace."""
    from evalmon.monitor.contracts import TRACE_ID

    uri = getattr(cfg.source, "tracking_uri", None) or cfg.tracking.uri  # where the traces live
    if not (cfg.tracking.enabled and cfg.tracking.assessments and uri and TRACE_ID in cur.columns):
        return
    from evalmon.monitor.assessments import attach
    from evalmon.sinks.mlflow import check_reachable

    down = check_reachable(uri)
    if down:
        outcome.notes.append(f"trace assessments skipped: {down}")
        return

    cols = [c for c in ctx.spec.rates if "." in c]  # signal columns (prefixed by the signal's name)
    counts = attach(cur, cols, uri, monitor=cfg.name, window=outcome.window.key)
    outcome.metrics["assessments/logged"] = float(counts["logged"])
    if counts["errors"]:
        outcome.notes.append(f"{counts['errors']} trace assessment(s) failed")


def finish_window(cfg: MonitorConfig, outcome: WindowOutcome) -> None:
    """``window.json``: what the MLflow run will hold (metrics incl. ``alerts/count``, params, tags)."""
    from evalmon.monitor.sink import WindowRecord, write_window

    outcome.metrics["alerts/count"] = float(len(outcome.alerts))
    tags = {"evalmon.version": __version__}
    if outcome.notes:
        tags["evalmon.notes"] = " | ".join(outcome.notes)
    record = WindowRecord(cfg.name, outcome.window, outcome.metrics, outcome.params, tags,
                          [a.to_dict() | {"rule": a.rule} for a in outcome.alerts])
    write_window(outcome.directory, record)


def track(cfg: MonitorConfig, outcome: WindowOutcome, *, unreachable: str | None = None) -> dict[str, Any]:
    from evalmon.monitor.sink import log_window, mark_pending

    if unreachable is not None:  # the server was down for an earlier window of this run: don't wait again
        return mark_pending(outcome.directory, cfg.tracking.uri or "", cfg.experiment, unreachable) | {
            "unreachable": True}
    out = log_window(outcome.directory, cfg.tracking.uri, cfg.experiment)
    if out.get("status") == "pending" and str(out.get("reason", "")).startswith("cannot reach"):
        out["unreachable"] = True
    return out


def sync_pending(cfg: MonitorConfig) -> list[dict[str, Any]]:
    from evalmon.monitor.sink import pending_windows, sync_windows

    if not pending_windows(cfg.run_dir):
        return []
    return sync_windows(cfg.run_dir, cfg.tracking.uri)


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(_clean(data), indent=2, default=str, allow_nan=False), encoding="utf-8")


def _clean(o: Any) -> Any:
    """JSON-safe: NaN/inf → null, numpy scalars → Python, containers recursively."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, str | bytes):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
