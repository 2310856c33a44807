"""Log a finished suite run to MLflow (the dashboard), or keep it on disk for ``evalmon sync``.

``log_run`` never raises for tracking problems and never hangs: an unreachable server (pre-flight
``GET /health`` with a short timeout) or one that errors mid-logging leaves ``mlflow_pending.json``
in the run directory and returns ``{"status": "pending", "reason": ...}``. Re-logging a run reuses
its MLflow run (recorded in ``mlflow.json`` or found by the ``evalmon.run_id`` tag), so ``sync``
and repeated calls never create duplicates. mlflow is imported lazily (``evalmon --help`` stays fast).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError, TrackingError
from evalmon.core.redact import redact_obj, without_masked_userinfo
from evalmon.core.results import SUMMARY_FILE, RunResult
from evalmon.sinks.mlflow.payload import (
    _STATUS,
    HEALTH_TIMEOUT_S,
    HTTP_LIMITS,
    MAX_BATCH_BYTES,
    MAX_KEY_LEN,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LEN,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LEN,
    PENDING_FILE,
    STATE_FILE,
    TABLE_DIR,
    _is_http,
    _ms,
    _now,
    _read_json,
    _reason,
    _same_uri,
    _write_json,
    artifact_location_for,
    check_reachable,
    default_artifact_location,
    default_tracking_uri,
    flatten,
    http_limits,
    run_metrics,
    run_params,
    run_tags,
    sample_tables,
    sanitize_key,
)
from evalmon.sinks.mlflow.preflight import preflight

__all__ = [
    "HEALTH_TIMEOUT_S", "HTTP_LIMITS", "MAX_KEY_LEN", "MAX_PARAM_VAL_LEN", "MAX_TAG_VAL_LEN", "PENDING_FILE",
    "STATE_FILE", "TABLE_DIR", "check_reachable", "default_artifact_location", "default_tracking_uri",
    "find_run", "flatten", "http_limits", "log_run", "outcome_line", "preflight", "run_metrics", "run_params",
    "run_tags", "sample_tables", "sanitize_key", "sync",
]


# ---------------------------------------------------------------- MLflow side
def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created concurrently by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {name!r} is deleted",
                            hint="restore it in the MLflow UI or log to another experiment")
    return exp.experiment_id


def _search_run(client: Any, experiment_ids: list[str], evalmon_run_id: str) -> Any | None:
    quoted = evalmon_run_id.replace("'", "\\'")
    runs = client.search_runs(experiment_ids, filter_string=f"tags.`evalmon.run_id` = '{quoted}'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def _existing_run(client: Any, uri: str, experiment_id: str, result: RunResult, run_dir: Path) -> Any | None:
    """The MLflow run this evalmon run was (partly) logged to before, if any — never a duplicate."""
    from mlflow.exceptions import MlflowException

    state = _read_json(run_dir / STATE_FILE)
    if state.get("run_id") and _same_uri(state.get("tracking_uri"), uri):
        try:
            run = client.get_run(state["run_id"])
        except MlflowException:
            run = None
        if run and run.info.lifecycle_stage == "active" and run.info.experiment_id == experiment_id:
            return run
    return _search_run(client, [experiment_id], result.run_id)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    nbytes = 0
    for item in items:
        n = len(getattr(item, "key", "")) + len(str(getattr(item, "value", ""))) + 64
        if batch and (len(batch) >= size or nbytes + n > MAX_BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(item)
        nbytes += n
    if batch:
        yield batch


def _log_data(client: Any, run: Any, result: RunResult, run_dir: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    rid, data = run.info.run_id, run.data
    tags = run_tags(result)
    summary = run_dir / SUMMARY_FILE
    if summary.is_file():  # shown as the run's description in the UI
        tags["mlflow.note.content"] = summary.read_text(encoding="utf-8", errors="replace")[:MAX_TAG_VAL_LEN]
    # params are immutable in MLflow: re-logging one with another value fails, so skip known keys
    params = [Param(k, v) for k, v in run_params(result).items() if k not in data.params]
    ts = _ms(result.finished_at or result.started_at)
    old = data.metrics  # latest values: don't add a second point for an unchanged metric
    metrics = [Metric(k, v, ts, 0) for k, v in run_metrics(result).items()
               if k not in old or not (old[k] == v or (math.isnan(v) and math.isnan(old[k])))]
    for batch in _chunks([RunTag(k, v) for k, v in tags.items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(rid, tags=batch)
    for batch in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(rid, params=batch)
    for batch in _chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(rid, metrics=batch)


def _log_files(client: Any, run_id: str, run_dir: Path, samples_table: bool) -> list[str]:
    """Upload every file of the run dir (not our own bookkeeping) and the per-sample tables.

    Tables are written like ``MlflowClient.log_table`` does (pandas ``orient="split"`` JSON plus the
    ``mlflow.loggedArtifacts`` tag the UI reads) but uploaded as plain artifacts: ``log_table``
    appends to an existing file, which would duplicate rows when a run is re-logged."""
    with contextlib.suppress(Exception):  # MLflow caches artifact repos by run id alone, whatever the
        from mlflow.tracking._tracking_service import utils  # URI: drop a stale one (retry via another URI)

        utils._artifact_repos_cache.pop(run_id, None)
    files = [p for p in run_dir.rglob("*")
             if p.is_file() and p.name not in {STATE_FILE, PENDING_FILE} and not p.name.endswith(".tmp")]
    for path in sorted(files):
        rel = path.relative_to(run_dir).parent.as_posix()
        client.log_artifact(run_id, str(path), artifact_path=None if rel == "." else rel)
    if not samples_table or not any(run_dir.glob("samples.jsonl*")):
        return []
    tables = sample_tables(run_dir)
    if not tables:
        return []
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="evalmon-tables-") as tmp:
        for task, df in tables.items():
            name = sanitize_key(task).replace("/", "_") + ".json"
            df.to_json(Path(tmp) / name, orient="split", index=False, date_format="iso")
            names.append(f"{TABLE_DIR}/{name}")
        client.log_artifacts(run_id, tmp, artifact_path=TABLE_DIR)
    logged = [{"path": n, "type": "table"} for n in names]
    current = json.loads(client.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
    merged = current + [entry for entry in logged if entry not in current]
    client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps(merged))
    return names


def _mark_pending(run_dir: Path, uri: str, experiment: str, reason: str, samples_table: bool, *,
                  evalmon_run_id: str | None = None, mlflow_run_id: str | None = None,
                  new_attempt: bool = True) -> dict[str, Any]:
    old = _read_json(run_dir / PENDING_FILE)
    marker = {"uri": uri, "experiment": experiment, "reason": reason, "time": _now(),
              "first_time": old.get("first_time") or _now(),
              "attempts": _int(old.get("attempts")) + (1 if new_attempt else 0), "samples_table": samples_table,
              "evalmon_run_id": evalmon_run_id or old.get("evalmon_run_id") or run_dir.name,
              "mlflow_run_id": mlflow_run_id or old.get("mlflow_run_id")}
    with contextlib.suppress(OSError):
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / PENDING_FILE, marker)
    return redact_obj({"tracking_uri": uri, "experiment": experiment, "status": "pending", "reason": reason,
                       "marker": str(run_dir / PENDING_FILE)})


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


LOGGING_REASON = "logging to MLflow did not finish (the process ended while logging)"


def log_run(result: RunResult, run_dir: Path, uri: str | None, experiment: str, *,
            samples_table: bool = True) -> dict[str, Any]:
    """Log ``result`` and the files of ``run_dir`` to MLflow; see the module docstring.

    Returns ``{"tracking_uri", "experiment_id", "run_id", "status": "logged", "ui_url"}`` or
    ``{"status": "pending", "reason", ...}`` (the run stays on disk; ``evalmon sync`` uploads it).

    The pending marker is written *before* the MLflow run is created and removed only once it is terminated:
    a process killed while logging leaves the marker, and ``evalmon sync`` completes that same MLflow run."""
    run_dir = Path(run_dir)
    uri = without_masked_userinfo(uri)  # a recorded URI (redacted): credentials come from MLFLOW_TRACKING_*
    if uri is None:
        base = Path.cwd()
        uri = default_tracking_uri(base)
        (base / ".evalmon").mkdir(parents=True, exist_ok=True)
    artifact_location = artifact_location_for(uri)  # beside a sqlite file, never ./mlruns of the cwd
    unreachable = check_reachable(uri)
    if unreachable:
        return _mark_pending(run_dir, uri, experiment, unreachable, samples_table, evalmon_run_id=result.run_id)
    _mark_pending(run_dir, uri, experiment, LOGGING_REASON, samples_table, evalmon_run_id=result.run_id)
    client = run = None
    try:
        with http_limits():
            client = _client(uri)
            eid = _experiment_id(client, experiment, artifact_location)
            run = _existing_run(client, uri, eid, result, run_dir)
            if run is None:
                run = client.create_run(eid, start_time=_ms(result.started_at),
                                        run_name=f"{result.suite_name}-{result.run_id}",
                                        tags={"evalmon.run_id": result.run_id})
            rid = run.info.run_id
            _mark_pending(run_dir, uri, experiment, LOGGING_REASON, samples_table, mlflow_run_id=rid,
                          new_attempt=False)
            ui_url = f"{uri.rstrip('/')}/#/experiments/{eid}/runs/{rid}" if _is_http(uri) else None
            state = {"tracking_uri": uri, "experiment": experiment, "experiment_id": eid, "run_id": rid,
                     "evalmon_run_id": result.run_id, "ui_url": ui_url}
            _write_json(run_dir / STATE_FILE, {**state, "status": "partial", "time": _now()})
            _log_data(client, run, result, run_dir)
            tables = _log_files(client, rid, run_dir, samples_table)
            client.set_terminated(rid, _STATUS.get(result.status, "FAILED"),
                                  end_time=_ms(result.finished_at) if result.finished_at else None)
    except Exception as exc:  # anything MLflow/HTTP/disk throws: keep the run for `evalmon sync`
        if client is not None and run is not None:
            with contextlib.suppress(Exception), http_limits():
                client.set_terminated(run.info.run_id, "FAILED")  # reused by the next log_run/sync
        return _mark_pending(run_dir, uri, experiment, _reason(exc), samples_table, new_attempt=False)
    _write_json(run_dir / STATE_FILE, {**state, "status": "logged", "tables": tables, "time": _now()})
    with contextlib.suppress(FileNotFoundError):
        (run_dir / PENDING_FILE).unlink()
    return redact_obj({"tracking_uri": uri, "experiment_id": eid, "run_id": rid, "status": "logged", "ui_url": ui_url})


def sync(reports_dir: Path, uri: str | None = None) -> list[dict[str, Any]]:
    """Upload every run under ``reports_dir`` that still has to reach MLflow (to ``uri`` if given, else the
    URI recorded for it): runs with ``mlflow_pending.json``, and runs whose ``mlflow.json`` says logging
    started but never finished. A run logged in part (or left RUNNING by a killed process) is completed in
    the same MLflow run. The marker goes on success and stays (with the new reason) on failure.

    A marker that cannot be read is re-created from what the run recorded itself (``mlflow.json``, then
    ``results.json``: the tracking URI and experiment of its suite) — never a default experiment, so one
    run id never lands in two experiments. Returns one outcome per run, with ``run_dir`` and
    ``evalmon_run_id``; raises ``ConfigError`` when ``reports_dir`` is not a directory."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        what = "is not a directory" if reports_dir.exists() else "does not exist"
        raise ConfigError(f"evalmon sync: {reports_dir} {what}",
                          hint="give the reports directory that holds the runs (the suite's output_dir, e.g. reports)")
    outcomes: list[dict[str, Any]] = []
    for run_dir in _runs_to_sync(reports_dir):
        try:
            result = RunResult.load(run_dir)
        except (OSError, ValueError) as exc:
            out = {"status": "error", "reason": f"cannot read {run_dir / 'results.json'}: {_reason(exc)}"}
            outcomes.append({"run_dir": str(run_dir), "evalmon_run_id": run_dir.name, **out})
            continue
        target, experiment, samples_table, note = _intended_target(run_dir, result)
        if experiment is None:
            out = {"status": "error", "reason": f"cannot tell which MLflow experiment {run_dir} belongs to: its "
                   f"{PENDING_FILE} is unreadable and neither {STATE_FILE} nor results.json records one"}
        else:
            out = log_run(result, run_dir, uri or target, experiment, samples_table=samples_table)
        outcomes.append({"run_dir": str(run_dir), "evalmon_run_id": result.run_id, **out,
                         **({"note": note} if note else {})})
    return outcomes


def _runs_to_sync(reports_dir: Path) -> list[Path]:
    dirs = {p.parent for p in reports_dir.rglob(PENDING_FILE)}
    dirs |= {p.parent for p in reports_dir.rglob(STATE_FILE)
             if _read_json(p).get("status") == "partial" and (p.parent / "results.json").is_file()}
    return sorted(dirs)


def _read_marker(path: Path) -> dict[str, Any] | None:
    """The pending marker, or ``None`` when it is missing, unreadable or lacks its URI/experiment."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and all(isinstance(data.get(k), str) and data[k] for k in ("uri", "experiment"))
    return data if ok else None


def _intended_target(run_dir: Path, result: RunResult) -> tuple[str | None, str | None, bool, str | None]:
    """(uri, experiment, samples_table, note) this run was meant to be logged to."""
    marker = _read_marker(run_dir / PENDING_FILE)
    if marker is not None:
        return marker["uri"], marker["experiment"], bool(marker.get("samples_table", True)), None
    state, logged, cfg = _read_json(run_dir / STATE_FILE), result.mlflow or {}, result.suite_config or {}
    cfg_uri = cfg.get("tracking.uri")
    uri = state.get("tracking_uri") or logged.get("tracking_uri") or (
        cfg_uri if isinstance(cfg_uri, str) and cfg_uri not in ("", "null") else None)
    experiment = state.get("experiment") or logged.get("experiment") or cfg.get("tracking.experiment")
    if not (run_dir / PENDING_FILE).exists():
        return uri, experiment, True, None  # logging started (mlflow.json) but never finished
    source = STATE_FILE if state.get("experiment") else "results.json"
    return uri, experiment, True, f"{PENDING_FILE} was unreadable: re-created from {source}"


def all_experiment_ids(client: Any) -> list[str]:
    """Every active experiment id, following MLflow's result pages."""
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def find_run(uri: str | None, run_id: str, experiment: str | None = None) -> Any | None:
    """The MLflow run (``mlflow.entities.Run``) tagged ``evalmon.run_id == run_id``, newest first;
    ``None`` when there is none. Raises ``TrackingError`` when the server cannot be reached."""
    if uri is None:
        uri = default_tracking_uri(Path.cwd())
        if not (Path.cwd() / ".evalmon" / "mlflow.db").is_file():
            return None  # nothing logged here yet (and don't create an empty store)
    unreachable = check_reachable(uri)
    if unreachable:
        raise TrackingError(f"MLflow is unreachable: {unreachable}")
    from mlflow.exceptions import MlflowException

    try:
        return _find_run(uri, run_id, experiment)
    except (MlflowException, OSError) as exc:  # requests' errors are OSErrors
        raise TrackingError(f"MLflow at {uri} failed: {_reason(exc)}") from exc


def _find_run(uri: str, run_id: str, experiment: str | None) -> Any | None:
    with http_limits():
        client = _client(uri)
        if experiment is not None:
            exp = client.get_experiment_by_name(experiment)
            ids = [exp.experiment_id] if exp else []
        else:
            ids = all_experiment_ids(client)
        for i in range(0, len(ids), 100):
            run = _search_run(client, ids[i : i + 100], run_id)
            if run is not None:
                return run
    return None


def outcome_line(outcome: dict[str, Any], run_dir: Path) -> str:
    """One line for the CLI to print after ``log_run``."""
    if outcome.get("status") == "logged":
        where = outcome.get("ui_url") or f"{outcome['tracking_uri']} (run {outcome['run_id']})"
        return f"MLflow: logged to {where}"
    return (f"warning: MLflow logging failed ({outcome.get('reason')}); the run is saved in {run_dir} "
            "and `evalmon sync` will upload it")
