"""``evalmon sync``: upload everything kept on disk while MLflow was unreachable — suite runs and monitor
windows alike — through the one client, each to the store and experiment it was meant for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.core.jsonout import read_json_object as _read_json
from evalmon.core.results import RESULTS_FILE, RunResult
from evalmon.sinks.mlflow.client import read_marker
from evalmon.sinks.mlflow.payload import PENDING_FILE, STATE_FILE, _reason
from evalmon.sinks.mlflow.preflight import preflight
from evalmon.sinks.mlflow.runs import log_run
from evalmon.sinks.mlflow.windows import PENDING_FILE as WINDOW_PENDING_FILE
from evalmon.sinks.mlflow.windows import WINDOW_FILE, sync_window


def sync(reports_dir: Path, uri: str | None = None) -> list[dict[str, Any]]:
    """Upload every run and monitor window under ``reports_dir`` that still has to reach MLflow (to ``uri`` if
    given, else the URI recorded for it): runs with ``mlflow_pending.json``, runs whose ``mlflow.json`` says
    logging started but never finished, and window folders with ``monitor_pending.json``. A run logged in part
    (or left RUNNING by a killed process) is completed in the same MLflow run. The marker goes on success and
    stays (with the new reason) on failure.

    A run marker that cannot be read is re-created from what the run recorded itself (``mlflow.json``, then
    ``results.json``: the tracking URI and experiment of its suite) — never a default experiment, so one
    run id never lands in two experiments. Returns one outcome per run (with ``run_dir`` and
    ``evalmon_run_id``) or window (with ``window_dir``); raises ``ConfigError`` when ``reports_dir`` is not a
    directory."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        what = "is not a directory" if reports_dir.exists() else "does not exist"
        raise ConfigError(f"evalmon sync: {reports_dir} {what}",
                          hint="give the reports directory that holds the runs (the suite's output_dir, e.g. reports)")
    if uri is not None:  # a store that can never be written is one error up front, not one per run and window
        preflight(uri, key="--tracking-uri", probe_server=False)  # each upload tries the server itself
    outcomes = [_sync_run(run_dir, uri) for run_dir in _runs_to_sync(reports_dir)]
    windows = sorted(p.parent for p in reports_dir.rglob(WINDOW_PENDING_FILE) if (p.parent / WINDOW_FILE).is_file())
    return outcomes + [sync_window(w, uri, one_off=uri is not None) for w in windows]


def _sync_run(run_dir: Path, uri: str | None) -> dict[str, Any]:
    try:
        result = RunResult.load(run_dir)
    except (OSError, ValueError) as exc:
        out = {"status": "error", "reason": f"cannot read {run_dir / RESULTS_FILE}: {_reason(exc)}"}
        return {"run_dir": str(run_dir), "evalmon_run_id": run_dir.name, **out}
    target, experiment, samples_table, note = _intended_target(run_dir, result)
    if experiment is None:
        out = {"status": "error", "reason": f"cannot tell which MLflow experiment {run_dir} belongs to: its "
               f"{PENDING_FILE} is unreadable and neither {STATE_FILE} nor {RESULTS_FILE} records one"}
    else:
        out = log_run(result, run_dir, uri or target, experiment, samples_table=samples_table, one_off=uri is not None)
    return {"run_dir": str(run_dir), "evalmon_run_id": result.run_id, **out, **({"note": note} if note else {})}


def _runs_to_sync(reports_dir: Path) -> list[Path]:
    dirs = {p.parent for p in reports_dir.rglob(PENDING_FILE)}
    dirs |= {p.parent for p in reports_dir.rglob(STATE_FILE)
             if _read_json(p).get("status") == "partial" and (p.parent / RESULTS_FILE).is_file()}
    return sorted(dirs)


def _intended_target(run_dir: Path, result: RunResult) -> tuple[str | None, str | None, bool, str | None]:
    """(uri, experiment, samples_table, note) this run was meant to be logged to."""
    marker = read_marker(run_dir / PENDING_FILE)
    if marker is not None:
        return marker["uri"], marker["experiment"], bool(marker.get("samples_table", True)), None
    state, logged, cfg = _read_json(run_dir / STATE_FILE), result.mlflow or {}, result.suite_config or {}
    cfg_uri = cfg.get("tracking.uri")
    uri = state.get("tracking_uri") or logged.get("tracking_uri") or (
        cfg_uri if isinstance(cfg_uri, str) and cfg_uri not in ("", "null") else None)
    experiment = state.get("experiment") or logged.get("experiment") or cfg.get("tracking.experiment")
    if not (run_dir / PENDING_FILE).exists():
        return uri, experiment, True, None  # logging started (mlflow.json) but never finished
    source = STATE_FILE if state.get("experiment") else RESULTS_FILE
    return uri, experiment, True, f"{PENDING_FILE} was unreadable: re-created from {source}"
