"""A finished suite run in MLflow: its payload (params, ``task/metric`` metrics, provenance tags, the run
folder's files and per-sample tables) uploaded through the one client (``client.upload``).

``log_run`` never raises for tracking problems and never hangs: an unreachable server or one that errors
mid-logging leaves ``mlflow_pending.json`` in the run directory and returns ``{"status": "pending", "reason"}``.
Re-logging a run reuses its MLflow run (recorded in ``mlflow.json`` or found by the ``evalmon.run_id`` tag), so
``sync`` and repeated calls never create duplicates.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from evalmon.core.errors import TrackingError
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.results import SUMMARY_FILE, RunResult
from evalmon.sinks.mlflow import dashboard
from evalmon.sinks.mlflow.client import (
    Sent,
    Session,
    all_experiment_ids,
    log_batches,
    mlflow_client,
    search_tagged,
    upload,
)
from evalmon.sinks.mlflow.dashboard import run_name
from evalmon.sinks.mlflow.payload import (
    _STATUS,
    MAX_TAG_VAL_LEN,
    METRICS_TABLE,
    PENDING_FILE,
    STATE_FILE,
    TABLE_DIR,
    _ms,
    _reason,
    _same_uri,
    check_reachable,
    default_tracking_uri,
    headline_metrics,
    http_limits,
    metrics_table,
    run_metrics,
    run_params,
    run_tags,
    sample_tables,
    sanitize_key,
)

RUN_TAG = "evalmon.run_id"


def log_run(result: RunResult, run_dir: Path, uri: str | None, experiment: str, *,
            samples_table: bool = True, one_off: bool = False) -> dict[str, Any]:
    """Log ``result`` and the files of ``run_dir`` to MLflow; see the module docstring.

    Returns ``{"tracking_uri", "experiment_id", "run_id", "status": "logged", "ui_url"}`` or
    ``{"status": "pending", "reason", ...}`` (the run stays on disk; ``evalmon sync`` uploads it)."""
    run_dir = Path(run_dir)

    def send(s: Session) -> Sent:
        run = _existing_run(s, result)
        if run is None:
            run = s.client.create_run(s.experiment_id, start_time=_ms(result.started_at), tags={RUN_TAG: result.run_id},
                                      run_name=run_name(result.suite_name, result.model, result.started_at))
        rid = run.info.run_id
        state = {"tracking_uri": s.uri, "experiment": experiment, "experiment_id": s.experiment_id, "run_id": rid,
                 "evalmon_run_id": result.run_id, "ui_url": s.ui_url(rid)}
        s.started(rid, state)
        _log_data(s.client, run, result, run_dir)
        s.log_files(rid)
        tables = _log_tables(s.client, rid, run_dir, result, samples=samples_table)
        dashboard.apply(s.client, s.experiment_id, dashboard.RUNS_VIEW, dashboard.runs_view,
                        [sanitize_key(k) for k in headline_metrics(result)], dashboard.RUNS_NOTE)
        s.client.set_terminated(rid, _STATUS.get(result.status, "FAILED"),
                                end_time=_ms(result.finished_at) if result.finished_at else None)
        return Sent({**state, "tables": tables}, {"tracking_uri": s.uri, "experiment_id": s.experiment_id,
                                                  "run_id": rid, "status": "logged", "ui_url": state["ui_url"]})

    return upload(run_dir, uri, experiment, send, marker=PENDING_FILE, one_off=one_off,
                  fields={"samples_table": samples_table, "evalmon_run_id": result.run_id, "mlflow_run_id": None})


def _existing_run(s: Session, result: RunResult) -> Any | None:
    """The MLflow run this evalmon run was (partly) logged to before, if any — never a duplicate."""
    from mlflow.exceptions import MlflowException

    state = _read_json(s.directory / STATE_FILE)
    if state.get("run_id") and _same_uri(state.get("tracking_uri"), s.uri):
        try:
            run = s.client.get_run(state["run_id"])
        except MlflowException:
            run = None
        if run and run.info.lifecycle_stage == "active" and run.info.experiment_id == s.experiment_id:
            return run
    found = search_tagged(s.client, [s.experiment_id], RUN_TAG, result.run_id)
    return found[0] if found else None


def _log_data(client: Any, run: Any, result: RunResult, run_dir: Path) -> None:
    rid, data = run.info.run_id, run.data
    tags = run_tags(result)
    summary = run_dir / SUMMARY_FILE
    if summary.is_file():  # shown as the run's description in the UI
        tags["mlflow.note.content"] = summary.read_text(encoding="utf-8", errors="replace")[:MAX_TAG_VAL_LEN]
    # params are immutable in MLflow: re-logging one with another value fails, so skip known keys
    params = {k: v for k, v in run_params(result).items() if k not in data.params}
    old = data.metrics  # latest values: don't add a second point for an unchanged metric
    metrics = {k: v for k, v in run_metrics(result).items()
               if k not in old or not (old[k] == v or (math.isnan(v) and math.isnan(old[k])))}
    log_batches(client, rid, tags=tags, params=params, metrics=metrics,
                timestamp=_ms(result.finished_at or result.started_at))


def _log_tables(client: Any, run_id: str, run_dir: Path, result: RunResult, *, samples: bool = True) -> list[str]:
    """The metrics table (``METRICS_TABLE``: stderr, CI, n per metric) and the per-sample tables, written like
    ``MlflowClient.log_table`` does (pandas ``orient="split"`` JSON plus the ``mlflow.loggedArtifacts`` tag the UI
    reads) but uploaded as plain artifacts: ``log_table`` appends to an existing file, which would duplicate rows
    when a run is re-logged."""
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="evalmon-tables-") as tmp:
        split = metrics_table(result).to_dict(orient="split", index=False)  # full precision (to_json keeps 10)
        split["data"] = [[None if _missing(v) else v for v in row] for row in split["data"]]
        (Path(tmp) / METRICS_TABLE).write_text(json.dumps(split), encoding="utf-8")
        client.log_artifact(run_id, str(Path(tmp) / METRICS_TABLE))
        names.append(METRICS_TABLE)
        tables = sample_tables(run_dir) if samples and any(run_dir.glob("samples.jsonl*")) else {}
        if tables:
            (Path(tmp) / TABLE_DIR).mkdir()
        for task, df in tables.items():
            name = sanitize_key(task).replace("/", "_") + ".json"
            df.to_json(Path(tmp) / TABLE_DIR / name, orient="split", index=False, date_format="iso")
            names.append(f"{TABLE_DIR}/{name}")
        if tables:
            client.log_artifacts(run_id, str(Path(tmp) / TABLE_DIR), artifact_path=TABLE_DIR)
    logged = [{"path": n, "type": "table"} for n in names]
    current = json.loads(client.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
    merged = current + [entry for entry in logged if entry not in current]
    client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps(merged))
    return names


def _missing(value: Any) -> bool:
    """NaN or pandas' NA: ``null`` in a JSON table."""
    import pandas as pd

    return bool(pd.isna(value)) if isinstance(value, float) or value is pd.NA else False


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
        with http_limits():
            client = mlflow_client(uri)
            if experiment is not None:
                exp = client.get_experiment_by_name(experiment)
                ids = [exp.experiment_id] if exp else []
            else:
                ids = all_experiment_ids(client)
            for i in range(0, len(ids), 100):
                found = search_tagged(client, ids[i : i + 100], RUN_TAG, run_id)
                if found:
                    return found[0]
    except (MlflowException, OSError) as exc:  # requests' errors are OSErrors
        raise TrackingError(f"MLflow at {uri} failed: {_reason(exc)}") from exc
    return None


def dashboard_url(outcome: dict[str, Any]) -> str | None:
    """The experiment's saved headline view for a logged run on a server (built at print time: its URL parameter
    would be redacted if it were stored in the outcome)."""
    if outcome.get("ui_url") and outcome.get("experiment_id"):
        return dashboard.view_url(outcome["tracking_uri"], outcome["experiment_id"], dashboard.RUNS_VIEW)
    return None


def outcome_line(outcome: dict[str, Any], run_dir: Path) -> str:
    """One line for the CLI to print after ``log_run``."""
    if outcome.get("status") == "logged":
        where = outcome.get("ui_url") or f"{outcome['tracking_uri']} (run {outcome['run_id']})"
        board = f"; dashboard: {url}" if (url := dashboard_url(outcome)) else ""
        return f"MLflow: logged to {where}{board}"
    return (f"warning: MLflow logging failed ({outcome.get('reason')}); the run is saved in {run_dir} "
            "and `evalmon sync` will upload it")
