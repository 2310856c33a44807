"""Geometry of the HTML report's curve plots: precision-recall curves and reliability diagrams.

Both come from ``TaskResult.curves`` (written by the ``classification`` tasks): ``pr`` is a list of
``{label, precision[], recall[], ap, prevalence}`` (one per class, one-vs-rest), ``reliability`` a list
of bins ``{confidence, accuracy, weight}``. Coordinates are computed here, as inline-SVG numbers, so
the template only places them and tests can check them without a browser. Both axes are [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalmon.core.results import RunResult

W, H = 340, 280  # SVG user units per plot
X0, Y0, PW, PH = 48, 16, 272, 220  # plot area: left, top, width, height
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"]


def sx(v: float) -> float:
    return X0 + min(max(v, 0.0), 1.0) * PW


def sy(v: float) -> float:
    return Y0 + (1.0 - min(max(v, 0.0), 1.0)) * PH


def _pts(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{sx(x):.2f},{sy(y):.2f}" for x, y in points)


@dataclass
class Series:
    label: str
    color: str
    points: str  # SVG polyline points
    legend: str


@dataclass
class CurvePlot:
    task: str
    kind: str  # pr | reliability
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)  # reliability bins
    guides: list[dict[str, float]] = field(default_factory=list)  # dashed reference lines
    ticks: list[dict[str, Any]] = field(default_factory=list)
    width: int = W
    height: int = H


def _ticks() -> list[dict[str, Any]]:
    return [{"label": f"{t:g}", "x": sx(t), "y": sy(t)} for t in TICKS]


def pr_plot(task: str, curves: list[dict[str, Any]]) -> CurvePlot | None:
    plot = CurvePlot(task=task, kind="pr", title=f"{task}: precision-recall", x_label="recall",
                     y_label="precision", ticks=_ticks())
    for i, c in enumerate(curves):
        prec, rec = list(c.get("precision") or []), list(c.get("recall") or [])
        if len(prec) != len(rec) or not prec:
            continue
        steps: list[tuple[float, float]] = []
        for r, p in zip(rec, prec, strict=True):  # sklearn order (recall falling), drawn "steps-post" like
            if steps:                             # PrecisionRecallDisplay: each precision holds to the next recall
                steps.append((r, steps[-1][1]))
            steps.append((r, p))
        color = COLORS[i % len(COLORS)]
        ap = c.get("ap")
        legend = f"{c.get('label', i)}" + (f" (AP {ap:.3f})" if isinstance(ap, float) and math.isfinite(ap) else "")
        plot.series.append(Series(str(c.get("label", i)), color, _pts(steps), legend))
        prevalence = c.get("prevalence")
        if len(curves) == 1 and isinstance(prevalence, float):
            plot.guides.append({"x1": sx(0), "y1": sy(prevalence), "x2": sx(1), "y2": sy(prevalence)})
    return plot if plot.series else None


def reliability_plot(task: str, bins: list[dict[str, Any]], of: str) -> CurvePlot | None:
    pts = [b for b in bins if all(isinstance(b.get(k), int | float) for k in ("confidence", "accuracy", "weight"))]
    if not pts:
        return None
    plot = CurvePlot(task=task, kind="reliability", title=f"{task}: reliability ({of})", x_label="mean predicted",
                     y_label="observed frequency", ticks=_ticks())
    plot.guides.append({"x1": sx(0), "y1": sy(0), "x2": sx(1), "y2": sy(1)})
    pts.sort(key=lambda b: b["confidence"])
    plot.series.append(Series("reliability", COLORS[0], _pts([(b["confidence"], b["accuracy"]) for b in pts]),
                              "bins (area ∝ share of documents)"))
    for b in pts:
        plot.markers.append({"cx": sx(b["confidence"]), "cy": sy(b["accuracy"]),
                             "r": 2.5 + 9.0 * math.sqrt(max(float(b["weight"]), 0.0)),
                             "title": f"confidence {b['confidence']:.3f}, observed {b['accuracy']:.3f}, "
                                      f"{100 * b['weight']:.1f}% of documents"})
    return plot


def build_curve_plots(result: RunResult) -> list[CurvePlot]:
    plots: list[CurvePlot] = []
    for name, task in result.tasks.items():
        curves = getattr(task, "curves", None) or {}
        pr = pr_plot(name, curves.get("pr") or []) if isinstance(curves.get("pr"), list) else None
        rel = reliability_plot(name, curves.get("reliability") or [], str(curves.get("reliability_of", "confidence"))) \
            if isinstance(curves.get("reliability"), list) else None
        plots += [p for p in (pr, rel) if p is not None]
    return plots


def task_notes(result: RunResult) -> list[tuple[str, str, str]]:
    """``(task, metric, note)`` for every note a task recorded (e.g. why a metric is NaN)."""
    return [(name, metric, note) for name, task in result.tasks.items()
            for metric, note in (getattr(task, "notes", None) or {}).items()]
