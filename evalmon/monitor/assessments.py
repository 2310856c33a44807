"""Per-record scores back onto MLflow traces, as assessments (when the source is MLflow traces).

For each record of a window that carries a ``trace_id``, every 0/1 signal column (``safety.unsafe``,
``pii.any``, ``refusal.refused``, ``hallucination.flag``, …) with a value becomes one MLflow
*feedback* assessment on that trace: name = the column, value = true/false, source = CODE
``evalmon-monitor``, metadata = monitor and window. A trace that already holds an evalmon assessment
of that name with that value is skipped, so retries and backfills add nothing twice. Failures are
counted, never raised (the window's MLflow run is the record of truth).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evalmon.config.tracking import using_tracking_uri
from evalmon.monitor.contracts import TRACE_ID
from evalmon.sinks.mlflow import http_limits

if TYPE_CHECKING:
    import pandas as pd

SOURCE_ID = "evalmon-monitor"


def _existing(trace: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in getattr(trace.info, "assessments", None) or []:
        src = getattr(a, "source", None)
        if getattr(src, "source_id", None) == SOURCE_ID and getattr(a, "feedback", None) is not None:
            out[a.name] = a.feedback.value
    return out


def attach(frame: pd.DataFrame, columns: Sequence[str], uri: str, *, monitor: str, window: str) -> dict[str, int]:
    """Log ``columns`` of each traced record as feedback on its trace; returns counts."""
    counts = {"traces": 0, "logged": 0, "skipped": 0, "errors": 0}
    if TRACE_ID not in frame.columns or not columns:
        return counts
    rows = frame[[TRACE_ID, *[c for c in columns if c in frame.columns]]]
    rows = rows[rows[TRACE_ID].notna()]
    if not len(rows):
        return counts
    import mlflow
    from mlflow.entities import AssessmentSource

    source = AssessmentSource(source_type="CODE", source_id=SOURCE_ID)
    with http_limits(), using_tracking_uri(uri):
        for rec in rows.to_dict(orient="records"):
            tid = str(rec.pop(TRACE_ID))
            counts["traces"] += 1
            try:
                have = _existing(mlflow.get_trace(tid))
            except Exception:
                counts["errors"] += 1
                continue
            for name, value in rec.items():
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                flag = bool(value >= 0.5)
                if have.get(name) == flag:
                    counts["skipped"] += 1
                    continue
                try:
                    mlflow.log_feedback(trace_id=tid, name=name, value=flag, source=source,
                                        metadata={"monitor": monitor, "window": window})
                    counts["logged"] += 1
                except Exception:
                    counts["errors"] += 1
    return counts
