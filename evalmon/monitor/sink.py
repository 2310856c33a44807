"""Per-window results: a folder on disk first, then one MLflow run per window.

Each processed window gets ``<output_dir>/<monitor>/windows/<window key>/`` holding ``window.json``
(metrics, params, tags, alerts), evidently's ``drift.html``, ``drift.json``, ``quality.json`` and
``quarantine_summary.json``. ``log_window`` uploads that folder as one MLflow run in the monitor's
experiment: every metric is stamped with ``timestamp`` = the window's end (ms) and ``step`` = the
window index, so MLflow charts the windows on a time axis. Window runs are nested under one
"timeline" run per monitor (``mlflow.parentRunId``) that carries every window's metrics as a history
(one point per window) — its run page and the chart view draw them as lines over time.

Runs are found again by the ``evalmon.window_id`` tag: re-logging the same content (a sync retry)
reuses the run; different content for the same window (a backfill after a change) replaces it (the
old run is deleted), so there is always one active run per window. (The timeline keeps both points at
that step: a metric history cannot be edited.) The MLflow helpers, limits and
the pending-marker pattern are evalmon.sinks.mlflow's: an unreachable or failing server leaves
``monitor_pending.json`` in the window folder and ``sync_windows`` (run at the start of every monitor
run) uploads it later. mlflow is imported lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalmon.core.redact import redact_obj, without_masked_userinfo
from evalmon.monitor.windows import Window
from evalmon.sinks.mlflow import (
    MAX_PARAM_VAL_LEN,
    MAX_TAG_VAL_LEN,
    STATE_FILE,
    artifact_location_for,
    check_reachable,
    default_tracking_uri,
    http_limits,
    sanitize_key,
)
from evalmon.sinks.mlflow import (
    _chunks as chunks,
)
from evalmon.sinks.mlflow import (
    _client as mlflow_client,
)
from evalmon.sinks.mlflow import (
    _experiment_id as experiment_id,
)
from evalmon.sinks.mlflow.payload import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    _is_http,
    _now,
    _read_json,
    _reason,
    _same_uri,
    _write_json,
)

WINDOW_FILE = "window.json"
PENDING_FILE = "monitor_pending.json"  # not tracking's marker: `evalmon sync` expects results.json there
TIMELINE_TAG = "evalmon.monitor_timeline"
WINDOW_TAG = "evalmon.window_id"
HASH_TAG = "evalmon.window_hash"
TIMELINE_DONE_TAG = "evalmon.timeline_logged"  # = the content hash whose metrics are on the timeline


@dataclass
class WindowRecord:
    """What one window contributes to MLflow (also the content of ``window.json``)."""

    monitor: str
    window: Window
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
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {"monitor": self.monitor, "window": {"start": w.start.isoformat(), "end": w.end.isoformat(),
                                                    "index": w.index, "key": w.key},
                "metrics": {k: _finite(v) for k, v in self.metrics.items()}, "params": self.params,
                "tags": self.tags, "alerts": self.alerts, "processed_at": self.processed_at,
                "content_hash": self.content_hash()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowRecord:
        from evalmon.monitor.windows import as_utc

        w = d["window"]
        metrics = {k: (math.nan if v is None else float(v)) for k, v in d["metrics"].items()}
        return cls(d["monitor"], Window(as_utc(w["start"]), as_utc(w["end"]), int(w["index"])), metrics,
                   dict(d.get("params", {})), dict(d.get("tags", {})), list(d.get("alerts", [])),
                   d.get("processed_at") or _now())


def _finite(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def write_window(window_dir: Path, record: WindowRecord) -> Path:
    window_dir.mkdir(parents=True, exist_ok=True)
    path = window_dir / WINDOW_FILE
    _write_json(path, record.to_dict())
    return path


# ---------------------------------------------------------------- MLflow side


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


def _metric_entities(record: WindowRecord) -> list[Any]:
    from mlflow.entities import Metric

    ts, step = _ms(record.window.end), record.window.index
    out, seen = [], set()
    for k, v in record.metrics.items():
        key = sanitize_key(k)
        if key in seen or v is None or not math.isfinite(v):  # NaN (no data) would break the charts
            continue
        seen.add(key)
        out.append(Metric(key, float(v), ts, step))
    return out


def _find_runs(client: Any, eid: str, tag: str, value: str) -> list[Any]:
    quoted = value.replace("'", "\\'")
    return list(client.search_runs([eid], filter_string=f"tags.`{tag}` = '{quoted}'", max_results=50,
                                   order_by=["attributes.start_time DESC"]))


def _timeline_run(client: Any, eid: str, monitor: str) -> str:
    runs = _find_runs(client, eid, TIMELINE_TAG, monitor)
    if runs:
        return runs[0].info.run_id
    run = client.create_run(eid, run_name=f"{monitor} (timeline)",
                            tags={TIMELINE_TAG: monitor, "evalmon.monitor": monitor,
                                  "mlflow.note.content": f"Every window of monitor '{monitor}' as one time "
                                                         "series (step = window index); one child run per window."})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def chart_url(uri: str, experiment_id: str, run_id: str, metrics: list[str]) -> str:
    """MLflow's metric page for ``metrics`` of one run (the timeline): a line per metric over the window
    steps plus a latest/min/max table — the same route the UI's "Plot chart" links use."""
    import urllib.parse

    def enc(v: Any) -> str:
        return urllib.parse.quote(json.dumps(v), safe="")

    return (f"{uri.rstrip('/')}/#/metric?runs={json.dumps([run_id])}&metric={enc(metrics[0])}"
            f"&experiments={json.dumps([experiment_id])}&plot_metric_keys={enc(metrics)}&plot_layout={{}}"
            "&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=true&deselected_curves=[]"
            "&last_linear_y_axis_range=[]")


def _upload(client: Any, eid: str, record: WindowRecord, window_dir: Path, state: dict[str, Any]) -> tuple[str, str]:
    from mlflow.entities import Param, RunTag

    parent = _timeline_run(client, eid, record.monitor)
    digest = record.content_hash()
    run_id, on_timeline = None, False
    for old in _find_runs(client, eid, WINDOW_TAG, record.window_id):
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
    _write_json(window_dir / STATE_FILE, {**state, "run_id": run_id, "status": "partial", "time": _now()})
    metrics = _metric_entities(record)
    params = {sanitize_key(k): str(v)[:MAX_PARAM_VAL_LEN] for k, v in record.params.items()}
    if not fresh:  # params are immutable: only add the missing ones
        existing = client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in existing}
    for batch in chunks([RunTag(k, v) for k, v in _run_tags(record).items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=batch)
    for batch in chunks([Param(k, v) for k, v in params.items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=batch)
    for batch in chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch)
    if not on_timeline:  # once per content: the timeline is a history, a second copy would be a 2nd point
        for batch in chunks(metrics, MAX_METRICS_PER_BATCH):
            client.log_batch(parent, metrics=batch)
        client.set_tag(run_id, TIMELINE_DONE_TAG, digest)
    with contextlib.suppress(Exception):
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.pop(run_id, None)
    for path in sorted(p for p in window_dir.iterdir() if p.is_file()):
        if path.name not in {STATE_FILE, PENDING_FILE} and not path.name.endswith(".tmp"):
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED", end_time=_ms(record.window.end))
    return run_id, parent


def log_window(window_dir: Path, uri: str | None, experiment: str, *, base: Path | None = None) -> dict[str, Any]:
    """Upload ``window_dir`` (its ``window.json`` + files) as one MLflow run; never raises for tracking
    problems: returns ``{"status": "logged", "run_id", "ui_url", …}`` or ``{"status": "pending", "reason"}``
    (``monitor_pending.json`` stays in the folder for ``sync_windows``)."""
    window_dir = Path(window_dir)
    uri = without_masked_userinfo(uri)  # a recorded URI (redacted): credentials come from MLFLOW_TRACKING_*
    record = WindowRecord.from_dict(json.loads((window_dir / WINDOW_FILE).read_text(encoding="utf-8")))
    if uri is None:
        root = base or Path.cwd()
        uri = default_tracking_uri(root)
        (root / ".evalmon").mkdir(parents=True, exist_ok=True)
    artifact_location = artifact_location_for(uri)  # beside a sqlite file, never ./mlruns of the cwd
    unreachable = check_reachable(uri)
    if unreachable:
        return mark_pending(window_dir, uri, experiment, unreachable)
    client = run_id = None
    try:
        with http_limits():
            client = mlflow_client(uri)
            eid = experiment_id(client, experiment, artifact_location)
            state = {"tracking_uri": uri, "experiment": experiment, "experiment_id": eid,
                     "window_id": record.window_id}
            run_id, parent = _upload(client, eid, record, window_dir, state)
    except Exception as exc:  # anything MLflow/HTTP/disk throws: keep the window for sync_windows
        return mark_pending(window_dir, uri, experiment, _reason(exc))
    ui_url = f"{uri.rstrip('/')}/#/experiments/{eid}/runs/{run_id}" if _is_http(uri) else None
    _write_json(window_dir / STATE_FILE, {**state, "run_id": run_id, "status": "logged", "ui_url": ui_url,
                                          "time": _now()})
    with contextlib.suppress(FileNotFoundError):
        (window_dir / PENDING_FILE).unlink()
    return redact_obj({"status": "logged", "tracking_uri": uri, "experiment_id": eid, "run_id": run_id,
                       "ui_url": ui_url, "timeline_run_id": parent})  # printed and kept: no credentials


def mark_pending(window_dir: Path, uri: str, experiment: str, reason: str) -> dict[str, Any]:
    old = _read_json(window_dir / PENDING_FILE)
    marker = {"uri": uri, "experiment": experiment, "reason": reason, "time": _now(),
              "first_time": old.get("first_time") or _now(), "attempts": int(old.get("attempts", 0)) + 1}
    with contextlib.suppress(OSError):
        _write_json(window_dir / PENDING_FILE, marker)
    return redact_obj({"status": "pending", "tracking_uri": uri, "experiment": experiment, "reason": reason,
                       "marker": str(window_dir / PENDING_FILE)})


def pending_windows(run_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(run_dir).glob(f"windows/*/{PENDING_FILE}"))


def sync_windows(run_dir: Path, uri: str | None = None, *, base: Path | None = None) -> list[dict[str, Any]]:
    """Upload every window folder under ``run_dir`` still marked pending (to ``uri`` if given, else the
    URI recorded in its marker). The marker goes on success and stays (with the new reason) on failure."""
    outcomes = []
    for window_dir in pending_windows(run_dir):
        marker = _read_json(window_dir / PENDING_FILE)
        target = uri or marker.get("uri")
        if target and uri and not _same_uri(target, marker.get("uri")):
            marker["uri"] = target
        out = log_window(window_dir, target, marker.get("experiment") or "evalmon-monitor", base=base)
        outcomes.append({"window_dir": str(window_dir), **out})
    return outcomes
