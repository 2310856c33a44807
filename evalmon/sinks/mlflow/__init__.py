"""MLflow, the dashboard: the one client (``client``) that suite runs (``runs``) and monitor windows
(``windows``) upload through, the pre-flight check of a tracking URI (``preflight``) and ``evalmon sync``
(``sync``) for whatever was kept on disk while MLflow was unreachable.

Nothing here raises or hangs for tracking problems once a run has computed: an unreachable server (a pre-flight
``GET /health`` with a short timeout) or one that errors mid-logging leaves a pending marker in the folder and
returns ``{"status": "pending", "reason": ...}``. mlflow is imported lazily (``evalmon --help`` stays fast).
"""

from __future__ import annotations

from evalmon.sinks.mlflow.client import LOGGING_REASON, all_experiment_ids, resolve_uri
from evalmon.sinks.mlflow.payload import (
    HEALTH_TIMEOUT_S,
    HTTP_LIMITS,
    MAX_KEY_LEN,
    MAX_PARAM_VAL_LEN,
    MAX_TAG_VAL_LEN,
    PENDING_FILE,
    STATE_FILE,
    TABLE_DIR,
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
from evalmon.sinks.mlflow.runs import find_run, log_run, outcome_line
from evalmon.sinks.mlflow.sync import sync

__all__ = [
    "HEALTH_TIMEOUT_S", "HTTP_LIMITS", "LOGGING_REASON", "MAX_KEY_LEN", "MAX_PARAM_VAL_LEN", "MAX_TAG_VAL_LEN",
    "PENDING_FILE", "STATE_FILE", "TABLE_DIR", "all_experiment_ids", "check_reachable", "default_artifact_location",
    "default_tracking_uri", "find_run", "flatten", "http_limits", "log_run", "outcome_line", "preflight",
    "resolve_uri", "run_metrics", "run_params", "run_tags", "sample_tables", "sanitize_key", "sync",
]
