"""A monitor window in MLflow: its payload, uploaded through the one client (``client.upload``).

Each processed window has a folder (``<output_dir>/<monitor>/windows/<window key>/``) holding ``window.json``
(a ``WindowRecord``: metrics, params, tags, alerts) and the monitor's files (``drift.json``, the drift report
``drift.html`` or ``drift.html.gz`` per ``report:`` …), each written once there: the upload copies the folder's
files as they are (an artifact store on the same disk holds the only second copy).
``log_window`` uploads that folder as one MLflow run in the monitor's experiment: every metric is stamped with
``timestamp`` = the window's end (ms) and ``step`` = the window's end in epoch seconds (``window_step``), so
MLflow charts the windows on a time axis whichever x axis is picked. Window runs are nested under one "timeline" run per monitor (``mlflow.parentRunId``) that carries every
window's metrics as a history (one point per window) — its run page and the chart view draw them as lines.

Runs are found again by the ``evalmon.window_id`` tag: re-logging the same content (a sync retry) reuses the
run; different content for the same window (a backfill after a change) replaces it (the old run is deleted),
so there is always one active run per window. (The timeline keeps both points at that step: a metric history
cannot be edited.) An unreachable or failing server leaves ``monitor_pending.json`` in the window folder;
``sync_windows`` (run at the start of every monitor run) and ``evalmon sync`` upload it later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from evalmon.core.errors import DataError
from evalmon.core.jsonout import canonical_hash
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.timewindows import Window
from evalmon.sinks.mlflow import dashboard
from evalmon.sinks.mlflow.client import (
    WINDOW_PENDING_FILE,
    Pending,
    Sent,
    Session,
    log_batches,
    resolve_uri,
    search_tagged,
    upload,
)
from evalmon.sinks.mlflow.dashboard import scale_group
from evalmon.sinks.mlflow.payload import (
    MAX_PARAM_VAL_LEN,
    MAX_TAG_VAL_LEN,
    _now,
    _write_json,
    sanitize_key,
)

WINDOW_FILE = "window.json"
PENDING_FILE = WINDOW_PENDING_FILE  # not a run's marker: `evalmon sync` finds results.json beside that one
TIMELINE_TAG = "evalmon.monitor_timeline"
WINDOW_TAG = "evalmon.window_id"
HASH_TAG = "evalmon.window_hash"
TIMELINE_DONE_TAG = "evalmon.timeline_logged"  # = the content hash whose metrics are on the timeline
DEFAULT_EXPERIMENT = "evalmon-monitor"  # only for a marker that lost its experiment


class TimeWindow(Protocol):
    """``[start, end)`` in UTC with its index (``evalmon.core.timewindows.Window`` is one)."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def index(self) -> int: ...
    @property
    def key(self) -> str: ...


Span = Window  # a window read back from ``window.json`` is the same value type as the one the monitor cut


def _utc(value: str) -> datetime:
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass
class WindowRecord:
    """What one window contributes to MLflow (also the content of ``window.json``)."""

    monitor: str
    window: TimeWindow
    metrics: dict[str, float]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    processed_at: str = field(default_factory=_now)

    @property
    def window_id(self) -> str:
        return f"{self.monitor}/{self.window.key}"

    def content_hash(self) -> str:
        body = {"metrics": {k: _finite(v) for k, v in sorted(self.metrics.items())},
                "params": dict(sorted(self.params.items()))}
        return canonical_hash(body)

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {"monitor": self.monitor, "window": {"start": w.start.isoformat(), "end": w.end.isoformat(),
                                                    "index": w.index, "key": w.key},
                "metrics": {k: _finite(v) for k, v in self.metrics.items()}, "params": self.params,
                "tags": self.tags, "alerts": self.alerts, "processed_at": self.processed_at,
                "content_hash": self.content_hash()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowRecord:
        w = d["window"]
        metrics = {k: (math.nan if v is None else float(v)) for k, v in d["metrics"].items()}
        return cls(d["monitor"], Span(_utc(w["start"]), _utc(w["end"]), int(w["index"])), metrics,
                   dict(d.get("params", {})), dict(d.get("tags", {})), list(d.get("alerts", [])),
                   d.get("processed_at") or _now())


def _finite(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def write_window(window_dir: Path, record: WindowRecord) -> Path:
    window_dir.mkdir(parents=True, exist_ok=True)
    path = window_dir / WINDOW_FILE
    _write_json(path, record.to_dict())
    return path


# ---------------------------------------------------------------- payload
def _run_tags(record: WindowRecord) -> dict[str, str]:
    w = record.window
    tags = {"evalmon.monitor": record.monitor, WINDOW_TAG: record.window_id, HASH_TAG: record.content_hash(),
            "evalmon.window_start": w.start.isoformat(), "evalmon.window_end": w.end.isoformat(),
            "evalmon.window_index": str(w.index), "evalmon.alerts": str(len(record.alerts)),
            "evalmon.processed_at": record.processed_at, "mlflow.runName": f"{record.monitor} {w.key}",
            "mlflow.source.type": "LOCAL", "mlflow.source.name": "evalmon monitor"}
    if record.alerts:
        tags["evalmon.alert_rules"] = "; ".join(str(a.get("rule")) for a in record.alerts)
    tags.update(record.tags)
    return {sanitize_key(k): str(v)[:MAX_TAG_VAL_LEN] for k, v in tags.items()}


def _run_metrics(record: WindowRecord) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in record.metrics.items():
        key = sanitize_key(k)
        if key in out or v is None or not math.isfinite(v):  # NaN (no data) would break the charts
            continue
        out[key] = float(v)
    return out


def _timeline_run(client: Any, eid: str, monitor: str) -> str:
    runs = search_tagged(client, [eid], TIMELINE_TAG, monitor, max_results=50)
    if runs:
        return runs[0].info.run_id
    run = client.create_run(eid, run_name=f"{monitor} (timeline)",
                            tags={TIMELINE_TAG: monitor, "evalmon.monitor": monitor,
                                  "mlflow.note.content": f"Every window of monitor '{monitor}' as one time "
                                                         "series (timestamp = window end, step = window end in "
                                                         "epoch seconds); one child run per window."})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def window_step(window: TimeWindow) -> int:
    """A window's MLflow step: its end in epoch seconds (a window index would plot as "hours since 1970")."""
    return int(window.end.timestamp())


def timeline_url(uri: str, experiment_id: str) -> str:
    """The monitor experiment on its saved view: every timeline's metrics as line charts over time, one chart
    per metric, sections by scale (``dashboard.timeline_view``)."""
    return dashboard.view_url(uri, experiment_id, dashboard.TIMELINE_VIEW, charts=True)


def chart_url(uri: str, experiment_id: str, run_id: str, metrics: list[str]) -> str:
    """MLflow's metric page for ``metrics`` of one run (the timeline): a line per metric over time (the window
    ends) plus a latest/min/max table — the same route the UI's "Plot chart" links use. Only the metrics of the
    first one's ``scale_group`` share the chart (milliseconds never share an axis with 0–1 rates)."""
    import urllib.parse

    def enc(v: Any) -> str:
        return urllib.parse.quote(json.dumps(v), safe="")

    metrics = [m for m in metrics if scale_group(m) == scale_group(metrics[0])]

    return (f"{uri.rstrip('/')}/#/metric?runs={json.dumps([run_id])}&metric={enc(metrics[0])}"
            f"&experiments={json.dumps([experiment_id])}&plot_metric_keys={enc(metrics)}&plot_layout={{}}"
            "&x_axis=wall&y_axis_scale=linear&line_smoothness=1&show_point=true&deselected_curves=[]"
            "&last_linear_y_axis_range=[]")


def _send(s: Session, record: WindowRecord) -> Sent:
    client, eid = s.client, s.experiment_id
    parent = _timeline_run(client, eid, record.monitor)
    digest = record.content_hash()
    run_id, on_timeline = None, False
    for old in search_tagged(client, [eid], WINDOW_TAG, record.window_id, max_results=50):
        if run_id is None and old.data.tags.get(HASH_TAG) == digest:
            run_id = old.info.run_id  # same content: a retry, reuse it
            on_timeline = old.data.tags.get(TIMELINE_DONE_TAG) == digest
        else:
            client.delete_run(old.info.run_id)  # replaced by a backfill with different content
    fresh = run_id is None
    if run_id is None:
        run = client.create_run(eid, start_time=_ms(record.window.end), run_name=f"{record.monitor} {record.window.key}",
                                tags={WINDOW_TAG: record.window_id, "mlflow.parentRunId": parent})
        run_id = run.info.run_id
    state = {"tracking_uri": s.uri, "experiment": s.experiment, "experiment_id": eid, "window_id": record.window_id,
             "run_id": run_id}
    s.started(run_id, state)
    metrics, stamp = _run_metrics(record), {"timestamp": _ms(record.window.end), "step": window_step(record.window)}
    params = {sanitize_key(k): str(v)[:MAX_PARAM_VAL_LEN] for k, v in record.params.items()}
    if not fresh:  # params are immutable: only add the missing ones
        existing = client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in existing}
    log_batches(client, run_id, tags=_run_tags(record), params=params, metrics=metrics, **stamp)
    if not on_timeline:  # once per content: the timeline is a history, a second copy would be a 2nd point
        log_batches(client, parent, metrics=metrics, **stamp)
        client.set_tag(run_id, TIMELINE_DONE_TAG, digest)
    s.log_files(run_id, recursive=False)
    client.set_terminated(run_id, "FINISHED", end_time=_ms(record.window.end))
    dashboard.apply(client, eid, dashboard.TIMELINE_VIEW, dashboard.timeline_view, list(metrics), dashboard.TIMELINE_NOTE)
    ui = s.ui_url(run_id)
    return Sent({**state, "ui_url": ui}, {"status": "logged", "tracking_uri": s.uri, "experiment_id": eid,
                                          "run_id": run_id, "ui_url": ui, "timeline_run_id": parent})


def log_window(window_dir: Path, uri: str | None, experiment: str, *, base: Path | None = None,
               one_off: bool = False) -> dict[str, Any]:
    """Upload ``window_dir`` (its ``window.json`` + files) as one MLflow run; never raises for tracking
    problems: returns ``{"status": "logged", "run_id", "ui_url", …}`` or ``{"status": "pending", "reason"}``
    (``monitor_pending.json`` stays in the folder for ``sync_windows`` / ``evalmon sync``). An unreadable
    ``window.json`` is a ``DataError``."""
    window_dir = Path(window_dir)
    record = read_window(window_dir)
    return upload(window_dir, uri, experiment, lambda s: _send(s, record), marker=PENDING_FILE, one_off=one_off,
                  fields={"window_id": record.window_id, "mlflow_run_id": None}, base=base)


def read_window(window_dir: Path) -> WindowRecord:
    """A window folder's ``window.json``; a missing, corrupt or incomplete one is a ``DataError``."""
    path = Path(window_dir) / WINDOW_FILE
    try:
        return WindowRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}",
                        hint="the window stays pending; run the monitor for that window again to rewrite it") from None


def mark_pending(window_dir: Path, uri: str | None, experiment: str, reason: str, *,
                 base: Path | None = None) -> dict[str, Any]:
    """Keep ``window_dir`` for a later sync without trying MLflow (the server was down for an earlier window)."""
    return Pending(Path(window_dir), PENDING_FILE, resolve_uri(uri, base), experiment).mark(reason)


def pending_windows(run_dir: Path) -> list[Path]:
    """The window folders of one monitor's output (``<run_dir>/windows/*``) still to upload."""
    return sorted(p.parent for p in Path(run_dir).glob(f"windows/*/{PENDING_FILE}"))


def sync_window(window_dir: Path, uri: str | None = None, *, base: Path | None = None,
                one_off: bool = False) -> dict[str, Any]:
    """Upload one pending window folder (to ``uri`` if given, else the URI recorded in its marker; ``one_off``:
    a failed try keeps the recorded URI). A window whose ``window.json`` cannot be read is an ``error`` outcome
    (the others still go)."""
    marker = _read_json(window_dir / PENDING_FILE)
    target = uri or marker.get("uri") or None
    try:
        out = log_window(window_dir, target, marker.get("experiment") or DEFAULT_EXPERIMENT, base=base,
                         one_off=one_off)
    except DataError as exc:
        out = {"status": "error", "reason": exc.one_line()}
    return {"window_dir": str(window_dir), **out}


def sync_windows(run_dir: Path, uri: str | None = None, *, base: Path | None = None) -> list[dict[str, Any]]:
    """Upload every window folder under ``run_dir`` still marked pending. The marker goes on success and stays
    (with the new reason) on failure."""
    return [sync_window(d, uri, base=base) for d in pending_windows(run_dir)]


__all__ = ["DEFAULT_EXPERIMENT", "HASH_TAG", "PENDING_FILE", "TIMELINE_DONE_TAG", "TIMELINE_TAG", "WINDOW_FILE",
           "WINDOW_TAG", "Span", "TimeWindow", "WindowRecord", "chart_url", "log_window", "mark_pending",
           "pending_windows", "sync_window", "sync_windows", "timeline_url", "window_step", "write_window"]
