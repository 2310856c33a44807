"""What makes the MLflow UI (3.17) readable as evalmon's dashboard, computed without importing mlflow.

Read from the installed UI bundle (``mlflow/server/js/build``), what the server keeps and the UI reads back:

* the experiment's description: the experiment tag ``mlflow.note.content``; a run's: the run tag of that name;
* the experiment's kind: the tag ``mlflow.experimentKind`` (``custom_model_development``). The 3.17 UI itself
  picks GenAI vs. model-training views from a *browser* setting (``localStorage["mlflow.workflowType"]``,
  default GenAI) that only the URL parameter ``workflowType=machine_learning`` overrides — so every link evalmon
  prints carries that parameter, and the tag is set for the API and other clients;
* a saved chart/table view: the experiment tag ``mlflow.sharedViewState.<key>`` (the UI's "Share view"
  button writes the same), opened by ``?viewStateShareKey=<key>``: the runs table's columns (headline
  metrics), the chart sections and cards (bar charts of headline metrics; line charts over time for a monitor
  timeline), the global x axis, a run filter. What it cannot hold: pinned/hidden/expanded runs and
  auto-refresh (the UI drops those keys), the single run page's "Model metrics" tab layout and the
  GenAI/model-training choice (browser storage only).
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
from datetime import datetime
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's name for "model training" experiments
NOTE_TAG = "mlflow.note.content"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
RUNS_VIEW = "evalmon-runs"  # suite runs: headline columns + headline bar charts
TIMELINE_VIEW = "evalmon-timeline"  # monitor timelines: one line chart per window metric, time on x
MAX_HEADLINE = 24  # columns/charts kept in a saved view (newest first beyond that)
SEP = "·"
MAX_VIEW_CHARS = 19_000  # MLflow keeps experiment tag values up to 20,000 characters

RUNS_NOTE = ("evalmon suite runs. One run per `evalmon run`: headline metrics `<task>/<metric>` (stderr, "
             "confidence intervals and n are in each run's `metrics_table.json`; throughput under `timing/`). "
             "Open the saved view (runs table with headline columns, headline charts): `?viewStateShareKey="
             f"{RUNS_VIEW}`.")
TIMELINE_NOTE = ("evalmon monitor windows. Each monitor has one *timeline* run holding every window's metrics as "
                 "a time series (timestamp = window end, step = window end in epoch seconds) and one child run "
                 f"per window. Saved view: `?viewStateShareKey={TIMELINE_VIEW}` (line charts over time, one "
                 "per metric, grouped by scale).")

_RATE_PREFIXES = frozenset({"rate", "share", "drift", "drift_detected", "coverage", "frac", "ratio", "pass"})
_UNIT_SUFFIX = re.compile(r"_(ms|s|seconds|tokens|chars|bytes|usd)$")


def short_model(model: dict[str, Any]) -> str:
    """The model's short name: the last path segment of a local path or hub id (a GGUF file's stem)."""
    name = str(model.get("model") or model.get("backend") or "model").rstrip("/")
    last = re.split(r"[/\\]", name)[-1] or name
    return last[:-5] if last.lower().endswith(".gguf") else last


def run_name(suite: str, model: dict[str, Any], started_at: str | None) -> str:
    """``<suite>·<model>[·adapter]·<YYYY-MM-DD HH:MM>`` (UTC as recorded)."""
    parts = [suite, short_model(model)]
    if model.get("adapter"):
        parts.append(short_model({"model": model["adapter"]}))
    with contextlib.suppress(ValueError):
        parts.append(datetime.fromisoformat(str(started_at)).strftime("%Y-%m-%d %H:%M"))
    return SEP.join(parts)


def scale_group(metric: str) -> str:
    """Which chart a monitor metric can share without mixing scales: 0–1 families (``rate/``, ``share/``,
    ``drift/``, ``drift_detected/``, ``coverage/`` …) are ``rate`` (``drift_detected/latency_ms`` is a 0/1 flag),
    then a unit suffix (``…_ms``), else the first path segment (``count`` for a bare name)."""
    head = metric.split("/", 1)[0] if "/" in metric else ""
    if head in _RATE_PREFIXES:
        return "rate"
    unit = _UNIT_SUFFIX.search(metric)
    if unit:
        return unit.group(1)
    return head or "count"


def _column(metric: str) -> str:
    return f"metrics.`{metric}`"


def _chart(metric: str, section: str, kind: str) -> dict[str, Any]:
    card: dict[str, Any] = {"uuid": f"evalmon-{metric}", "type": kind, "deleted": False, "isGenerated": False,
                            "metricKey": metric, "displayName": metric, "metricSectionId": f"evalmon-{section}"}
    if kind == "LINE":
        card.update(xAxisKey="time", useGlobalXaxisKey=True, scaleType="linear", xAxisScaleType="linear",
                    lineSmoothness=0, selectedXAxisMetricKey="", yAxisKey="metric", yAxisExpressions=[],
                    range={}, displayPoints=True, ignoreOutliers=False, useGlobalLineSmoothing=True)
    return card


_SECTION_NAMES = {"headline": "Headline", "rate": "rates (0–1)", "ms": "milliseconds", "s": "seconds",
                  "count": "counts"}


def _section(name: str, columns: int = 3) -> dict[str, Any]:
    return {"uuid": f"evalmon-{name}", "name": _SECTION_NAMES.get(name, name), "display": True, "isReordered": False,
            "columns": columns, "cardHeight": 300}


def runs_view(headline: list[str], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The saved view of a suite-run experiment: ``headline`` (``task/metric``) first — as runs-table columns
    and bar charts in a "Headline" section — then what an earlier run of the experiment saved."""
    keys = _merged(headline, [c.removeprefix("metrics.`").rstrip("`")
                              for c in (old or {}).get("selectedColumns", []) if c.startswith("metrics.`")])
    return {"selectedColumns": [_column(k) for k in keys],
            "compareRunCharts": [_chart(k, "headline", "BAR") for k in keys],
            "compareRunSections": [_section("headline")], "isAccordionReordered": True,
            "hideEmptyCharts": True, "chartsSearchFilter": ""}


def timeline_view(metrics: list[str], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The saved view of a monitor experiment: the timeline runs only, one line chart per metric over time,
    a section per ``scale_group`` (ms never share a chart with 0–1 rates)."""
    known = [c["metricKey"] for c in (old or {}).get("compareRunCharts", []) if c.get("metricKey")]
    keys = sorted(set(metrics) | set(known), key=lambda k: (scale_group(k) != "rate", scale_group(k), k))
    groups = list(dict.fromkeys(scale_group(k) for k in keys))
    return {"searchFilter": "tags.`evalmon.monitor_timeline` ILIKE '%'",
            "selectedColumns": [_column(k) for k in keys[:MAX_HEADLINE]],
            "compareRunCharts": [_chart(k, scale_group(k), "LINE") for k in keys],
            "compareRunSections": [_section(g, columns=2) for g in groups], "isAccordionReordered": True,
            "hideEmptyCharts": True, "chartsSearchFilter": "",
            "globalLineChartConfig": {"xAxisKey": "time", "lineSmoothness": 0, "selectedXAxisMetricKey": ""}}


def _merged(first: list[str], rest: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *rest]))[:MAX_HEADLINE]


def view_url(uri: str, experiment_id: str, view: str, *, charts: bool = False) -> str:
    """The experiment page on the saved view ``view`` (table, or charts with ``charts=True``), in the UI's
    model-training mode."""
    query = {"workflowType": "machine_learning", "viewStateShareKey": view}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs?{urllib.parse.urlencode(query)}"


def read_view(tags: dict[str, str], view: str) -> dict[str, Any] | None:
    try:
        data = json.loads(tags.get(VIEW_TAG_PREFIX + view, ""))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _fit(state: dict[str, Any]) -> str:
    """The view as JSON within MLflow's experiment-tag limit (the last charts/columns go first)."""
    while True:
        text = json.dumps(state, separators=(",", ":"))
        if len(text) <= MAX_VIEW_CHARS or not state["compareRunCharts"]:
            return text
        state["compareRunCharts"].pop()
        state["selectedColumns"] = state["selectedColumns"][: len(state["compareRunCharts"])]


def apply(client: Any, experiment_id: str, view: str, build: Any, metrics: list[str], note: str) -> None:
    """Set the experiment's kind, its description (unless someone wrote one) and the saved view ``view``
    (``build(metrics, old_view)``), writing only tags that change."""
    tags = dict(client.get_experiment(experiment_id).tags)
    wanted = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG_PREFIX + view: _fit(build(metrics, read_view(tags, view)))}
    if not tags.get(NOTE_TAG):
        wanted[NOTE_TAG] = note
    for key, value in wanted.items():
        if tags.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)


__all__ = ["EXPERIMENT_KIND", "EXPERIMENT_KIND_TAG", "NOTE_TAG", "RUNS_NOTE", "RUNS_VIEW", "TIMELINE_NOTE",
           "TIMELINE_VIEW", "VIEW_TAG_PREFIX", "apply", "read_view", "run_name", "runs_view", "scale_group",
           "short_model", "timeline_view", "view_url"]
