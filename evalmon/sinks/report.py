"""Render a ``RunResult`` for people: ``report.html`` (self-contained, offline) and ``summary.md``.

Pure functions: no MLflow, no torch. Templates are package data in ``evalmon/templates``.
The bar chart is inline SVG whose geometry is computed here (``build_charts``) so it can be tested
without a browser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from evalmon.core.numfmt import fmt_num as fmt  # 4 decimals; — when missing, nan/inf spelt out
from evalmon.core.redact import redact_text
from evalmon.core.results import REPORT_FILE, SUMMARY_FILE, GroupResult, MetricValue, RunResult, TaskResult
from evalmon.sinks.report_adapters import adapter_view, variant_note
from evalmon.sinks.report_curves import build_curve_plots, task_notes

__all__ = [
    "Bar",
    "Chart",
    "Row",
    "build_charts",
    "fmt",
    "ordered_rows",
    "render_html",
    "render_markdown",
    "write_reports",
]

# Chart layout (SVG user units; the SVG scales to the page width).
LABEL_W = 250  # task names
METRIC_W = 80  # metric names
PLOT_X0 = LABEL_W + METRIC_W  # left edge of the plot area
PLOT_W = 440
TEXT_W = 190  # "0.1234 ± 0.0123" right of the bars
CHART_W = PLOT_X0 + PLOT_W + TEXT_W
ROW_H = 18
BAR_H = 12
BLOCK_GAP = 6  # between tasks
AXIS_H = 26  # top axis labels
MAX_LABEL = 38  # characters before a task name is ellipsised (full name in <title>)
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#eeca3b"]
MODEL_FIELDS = [
    ("backend", "backend"), ("model", "model"), ("revision", "revision"), ("weights_hash", "weights hash"),
    ("adapter", "adapter"), ("adapter_hash", "adapter hash"), ("dtype", "dtype"), ("device", "device"),
    ("bos_policy", "BOS policy"), ("max_length", "max length"), ("batch_size", "batch size"),
    ("tokenizer_hash", "tokenizer hash"),
]


def fmt_ci(mv: MetricValue) -> str:
    if mv.ci_low is None or mv.ci_high is None:
        return "—"
    return f"[{fmt(mv.ci_low)}, {fmt(mv.ci_high)}]"


def fmt_ci_method(mv: MetricValue) -> str:
    """How the interval was computed (results written before it was recorded: the normal approximation)."""
    if mv.ci_low is None or mv.ci_high is None:
        return "—"
    return mv.ci_method or "normal"


# --------------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One task or group in display order: groups first, their members (recursively) below them."""

    kind: str  # group | member | task
    name: str
    depth: int
    entry: TaskResult | GroupResult | None  # None: a group member that has no result (partial run)

    @property
    def metrics(self) -> dict[str, MetricValue]:
        return self.entry.metrics if self.entry is not None else {}


def ordered_rows(result: RunResult) -> list[Row]:
    """Top-level groups (not a member of another group) with their members, then ungrouped tasks."""
    nested = {m for g in result.groups.values() for m in g.members if m in result.groups}
    rows: list[Row] = []
    grouped: set[str] = set()

    def walk(name: str, depth: int, path: frozenset[str]) -> None:
        group = result.groups[name]
        rows.append(Row("group", name, depth, group))
        for member in group.members:
            grouped.add(member)
            if member in result.groups and member not in path:
                walk(member, depth + 1, path | {member})
            elif member not in result.groups:
                rows.append(Row("member", member, depth + 1, result.tasks.get(member)))

    for name in result.groups:
        if name not in nested:
            walk(name, 0, frozenset({name}))
    for name in result.groups:  # groups only reachable through a cycle
        if not any(r.name == name for r in rows):
            walk(name, 0, frozenset({name}))
    rows += [Row("task", n, 0, t) for n, t in result.tasks.items() if n not in grouped]
    return rows


# -------------------------------------------------------------------------------------------- chart
@dataclass
class Bar:
    task: str
    metric: str
    kind: str
    depth: int
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    y: float = 0.0
    x: float = 0.0
    width: float = 0.0
    ci_x1: float | None = None
    ci_x2: float | None = None
    ci_clipped: bool = False
    color: str = PALETTE[0]
    label: str = ""  # task label, only on the first bar of a task block
    label_y: float = 0.0

    @property
    def text(self) -> str:
        return fmt(self.value) + (f" ± {fmt(self.stderr)}" if self.stderr is not None else "")


@dataclass
class Chart:
    key: str  # "unit" for the shared 0–1 axis, otherwise the metric name
    title: str
    lo: float
    hi: float
    bars: list[Bar] = field(default_factory=list)
    bands: list[dict[str, Any]] = field(default_factory=list)  # background of group blocks
    ticks: list[dict[str, Any]] = field(default_factory=list)
    height: float = 0.0
    x0: float = PLOT_X0
    plot_w: float = PLOT_W
    width: float = CHART_W

    def sx(self, v: float) -> float:
        """Data value → x coordinate, clamped to the plot area."""
        v = min(max(v, self.lo), self.hi)
        return self.x0 + (v - self.lo) / (self.hi - self.lo) * self.plot_w


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _axis(values: list[float]) -> tuple[float, float, list[float]]:
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if lo >= 0 and hi <= 1:
        return 0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]
    if hi == lo:
        hi = lo + 1
    step = _nice_step(hi - lo)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    n = round((hi - lo) / step)
    return lo, hi, [lo + i * step for i in range(n + 1)]


def _is_unit(values: list[float]) -> bool:
    return all(0.0 <= v <= 1.0 for v in values)


def build_charts(result: RunResult) -> list[Chart]:
    """One chart with a shared 0–1 axis for metrics that live in [0, 1]; one chart per other metric."""
    rows = [r for r in ordered_rows(result) if r.entry is not None]
    metric_names: list[str] = []
    for r in rows:
        metric_names += [m for m in r.metrics if m not in metric_names]
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(metric_names)}

    def finite_values(metric: str) -> list[float]:
        return [r.metrics[metric].value for r in rows if metric in r.metrics
                and math.isfinite(r.metrics[metric].value)]

    unit = [m for m in metric_names if _is_unit(finite_values(m))]
    specs = [("unit", "Metrics on a 0–1 scale", unit)] if unit else []
    for m in metric_names:
        if m not in unit:
            hib = any(r.metrics[m].higher_is_better for r in rows if m in r.metrics)
            specs.append((m, m + ("" if hib else " (lower is better)"), [m]))

    charts: list[Chart] = []
    for key, title, metrics in specs:
        values = [v for m in metrics for v in finite_values(m)]
        lo, hi, ticks = _axis(values)
        chart = Chart(key=key, title=title, lo=lo, hi=hi)
        y = float(AXIS_H)
        for r in rows:
            present = [m for m in metrics if m in r.metrics]
            if not present:
                continue
            top = y
            for i, m in enumerate(present):
                mv = r.metrics[m]
                bar = Bar(task=r.name, metric=m, kind=r.kind, depth=r.depth, value=mv.value,
                          stderr=mv.stderr, ci_low=mv.ci_low, ci_high=mv.ci_high, color=colors[m])
                bar.y = y + (ROW_H - BAR_H) / 2
                if math.isfinite(mv.value):
                    base = chart.sx(0.0)  # every axis includes 0
                    end = chart.sx(mv.value)
                    bar.x, bar.width = min(base, end), abs(end - base)
                else:
                    bar.x, bar.width = chart.sx(lo), 0.0
                if mv.ci_low is not None and mv.ci_high is not None:
                    bar.ci_x1, bar.ci_x2 = chart.sx(mv.ci_low), chart.sx(mv.ci_high)
                    bar.ci_clipped = mv.ci_low < lo or mv.ci_high > hi
                if i == 0:
                    label = r.name if len(r.name) <= MAX_LABEL else r.name[: MAX_LABEL - 1] + "…"
                    bar.label = label
                    bar.label_y = top + len(present) * ROW_H / 2
                chart.bars.append(bar)
                y += ROW_H
            if r.kind == "group":
                chart.bands.append({"name": r.name, "y": top - 2, "height": y - top + 4})
            y += BLOCK_GAP
        chart.height = y + AXIS_H
        chart.ticks = [{"value": t, "x": chart.sx(t), "label": f"{t:.6g}"} for t in ticks]
        if chart.bars:
            charts.append(chart)
    return charts


# ------------------------------------------------------------------------------------------ context
def _duration(started: str, finished: str | None) -> str | None:
    if not finished:
        return None
    try:
        secs = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None
    return f"{secs:.1f} s" if secs < 120 else f"{secs / 60:.1f} min"


def _model_items(model: dict[str, Any]) -> list[tuple[str, str]]:
    known = dict(MODEL_FIELDS)
    items = [(label, model.get(key)) for key, label in MODEL_FIELDS]
    items += [(k, v) for k, v in model.items() if k not in known and k != "extra"]
    items += [(f"extra.{k}", v) for k, v in (model.get("extra") or {}).items()]
    return [(k, "—" if v is None or v == "" else str(v)) for k, v in items]


def _provenance_items(result: RunResult) -> list[tuple[str, str]]:
    p = result.provenance
    commit = p.git_commit and (p.git_commit + (" (dirty)" if p.git_dirty else ""))
    items = [
        ("evalmon", p.evalmon_version), ("lm-eval", p.lm_eval_version), ("torch", p.torch_version),
        ("transformers", p.transformers_version), ("peft", p.peft_version), ("python", p.python_version),
        ("platform", p.platform), ("host", p.hostname), ("git commit", commit), ("seed", p.seed),
        ("command", p.command), ("suite hash", result.suite_hash), ("suite path", result.suite_path),
    ]
    items += [(f"mlflow {k}", v) for k, v in result.mlflow.items()]
    return [(k, "—" if v is None else str(v)) for k, v in items]


def _timing_totals(result: RunResult) -> dict[str, Any]:
    ts = [t.timing for t in result.tasks.values()]
    secs = sum(t.seconds for t in ts)
    tot: dict[str, Any] = {k: sum(getattr(t, k) for t in ts)
                           for k in ("requests", "unique_requests", "cached", "computed", "tokens")}
    tot["seconds"] = secs
    tot["requests_per_s"] = tot["requests"] / secs if secs else 0.0
    tot["tokens_per_s"] = tot["tokens"] / secs if secs else 0.0
    return tot


def provenance_line(result: RunResult, markdown: bool = True) -> str:
    """One line: model, dtype/device, versions, commit, command — for summary.md and the console."""
    m, p = result.model, result.provenance

    def code(v: Any) -> str:
        one_line = " ".join(str(v).replace("`", "'").split())  # a code span: no backtick, no newline
        return f"`{one_line}`" if markdown else str(v)

    def text(v: Any) -> str:
        return _md_cell(v) if markdown else str(v)

    parts = [f"model {code(m.get('model', '?'))} ({text(m.get('backend', '?'))}, {text(m.get('dtype', '?'))}, "
             f"{text(m.get('device', '?'))})"]
    if m.get("weights_hash"):
        parts.append(f"weights {code(str(m['weights_hash'])[:12])}")
    if m.get("adapter"):
        parts.append(f"adapter {code(m['adapter'])}")
    versions = [f"evalmon {p.evalmon_version}"] + [
        f"{name} {v}" for name, v in (("lm-eval", p.lm_eval_version), ("torch", p.torch_version),
                                      ("transformers", p.transformers_version)) if v]
    parts.append(text(", ".join(versions)))
    if p.git_commit:
        parts.append(f"commit {code(p.git_commit[:12])}" + (" (dirty)" if p.git_dirty else ""))
    if p.command:
        parts.append(f"command {code(p.command)}")
    return " · ".join(parts)


def _context(result: RunResult) -> dict[str, Any]:
    rows = ordered_rows(result)
    return {
        "r": result,
        "rows": rows,
        "missing": sorted({r.name for r in rows if r.entry is None}),  # group members without a result
        "charts": build_charts(result),
        "model_items": _model_items(result.model),
        "provenance_items": _provenance_items(result),
        "duration": _duration(result.started_at, result.finished_at),
        "totals": _timing_totals(result),
        "provenance_line": provenance_line(result),
        "fmt": fmt,
        "fmt_ci": fmt_ci,
        "fmt_ci_method": fmt_ci_method,
        "n_metrics": sum(len(r.metrics) for r in rows),
        "curve_plots": build_curve_plots(result),  # PR curves, reliability diagrams (classification tasks)
        "notes": task_notes(result),
        "adapters": adapter_view(result.adapters),  # many-adapter runs: the ranked table comes first
        "variant_note": variant_note(result.adapters),
    }


# ------------------------------------------------------------------------------------------- render
def _md_cell(value: Any) -> str:
    """Escape a value for a GitHub markdown table cell (pipes, HTML, newlines)."""
    s = str(value)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("\n", " "), ("`", "'")):
        s = s.replace(a, b)
    return s


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalmon", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["md"] = _md_cell
    env.filters["r1"] = lambda x: f"{x:.1f}"
    return env


def render_html(result: RunResult) -> str:
    """``report.html``: every value autoescaped; URI credentials redacted whatever field carried them."""
    return redact_text(_env(autoescape=True).get_template("report.html.j2").render(**_context(result)))


def render_markdown(result: RunResult) -> str:
    """``summary.md`` (also the MLflow run's description): values escaped, credentials redacted."""
    return redact_text(_env(autoescape=False).get_template("summary.md.j2").render(**_context(result)))


def write_reports(result: RunResult, run_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` into ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = run_dir / REPORT_FILE, run_dir / SUMMARY_FILE
    for path, text in ((html_path, render_html(result)), (md_path, render_markdown(result))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return html_path, md_path
