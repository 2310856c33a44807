"""Per-window results: a folder on disk first (``window.json`` + evidently's files), then one MLflow run per
window nested under the monitor's timeline run.

The record, its payload and the upload live in ``evalmon.sinks.mlflow.windows`` (they need nothing of the
monitor's internals); the upload goes through the one MLflow client that suite runs use as well (experiment,
batches within MLflow's limits, artifacts beside a sqlite store, the pending marker ``monitor_pending.json``
and its sync). This module is the monitor's name for them.
"""

from __future__ import annotations

from evalmon.sinks.mlflow.windows import (
    HASH_TAG,
    PENDING_FILE,
    TIMELINE_DONE_TAG,
    TIMELINE_TAG,
    WINDOW_FILE,
    WINDOW_TAG,
    WindowRecord,
    chart_url,
    log_window,
    mark_pending,
    pending_windows,
    sync_windows,
    write_window,
)

__all__ = ["HASH_TAG", "PENDING_FILE", "TIMELINE_DONE_TAG", "TIMELINE_TAG", "WINDOW_FILE", "WINDOW_TAG",
           "WindowRecord", "chart_url", "log_window", "mark_pending", "pending_windows", "sync_windows",
           "write_window"]
