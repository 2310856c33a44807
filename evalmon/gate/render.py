"""Output of compare and gate: rich tables for the terminal, markdown (PR comments, job summaries), JSON."""

from __future__ import annotations

from functools import partial
from typing import Any

from evalmon.core.jsonout import to_json
from evalmon.core.numfmt import fmt_num, fmt_p
from evalmon.gate.compare import Comparison, MetricComparison, _names
from evalmon.gate.verdict import GateVerdict, MetricVerdict

_ICON = {"pass": "✅", "improved": "⬆️", "drop_not_significant": "✅", "drop_within_tolerance": "✅",
         "untested": "⚠️", "regression": "❌", "below_min": "❌", "above_max": "❌"}


# --------------------------------------------------------------------------- compare
fmt = partial(fmt_num, spell_nonfinite=False)  # an undefined number shows as —, like a missing one


def fmt_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def _row(m: MetricComparison) -> list[str]:
    return [m.key, f"{fmt(m.baseline)} {fmt_ci(m.baseline_ci)}".strip(),
            f"{fmt(m.candidate)} {fmt_ci(m.candidate_ci)}".strip(),
            f"{fmt(m.delta, signed=True)} {fmt_ci(m.delta_ci)}".strip(), fmt_p(m.p_value), m.test, str(m.n)]


COMPARE_HEADERS = ["task/metric", "A (baseline) ± 95% CI", "B (candidate) ± 95% CI", "Δ B−A [95% CI]", "p", "test", "n"]


def comparison_markdown(c: Comparison) -> str:
    lines = [f"## evalmon compare: {c.baseline['run_id']} (A) vs {c.candidate['run_id']} (B)", "",
             f"A = {_model_label(c.baseline)} · B = {_model_label(c.candidate)}", "",
             "| " + " | ".join(COMPARE_HEADERS) + " |", "|" + "---|" * len(COMPARE_HEADERS)]
    lines += ["| " + " | ".join(_row(m)) + " |" for m in c.metrics]
    lines += _issue_lines(c)
    return "\n".join(lines) + "\n"


def _model_label(run: dict[str, Any]) -> str:
    """``model`` (+ ``adapter``) of a described run: base vs base+adapter must be told apart in the header."""
    model = f"`{run.get('model') or '?'}`"
    return f"{model} + adapter `{run['adapter']}`" if run.get("adapter") else model


def _issue_lines(c: Comparison) -> list[str]:
    out = []
    if c.issues or c.only_baseline or c.only_candidate:
        out += ["", "### Comparability", ""]
        out += [f"- {'**not comparable**' if i.blocking else 'warning'} ({i.scope}): {i.message}" for i in c.issues]
        if c.only_baseline:
            out.append(f"- only in A: {_names(c.only_baseline, 10)}")
        if c.only_candidate:
            out.append(f"- only in B: {_names(c.only_candidate, 10)}")
    notes = [f"- {m.key}: {n}" for m in c.metrics for n in m.notes]
    if notes:
        out += ["", "### Notes", "", *notes]
    return out


def render_comparison(c: Comparison, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{c.baseline['run_id']} (A) vs {c.candidate['run_id']} (B)")
    for h in COMPARE_HEADERS:
        table.add_column(h, justify="left" if h in ("task/metric", "test") else "right")
    for m in c.metrics:
        row = [escape(x) for x in _row(m)]
        good = (m.delta > 0) == m.higher_is_better
        if m.p_value is not None and m.p_value <= 0.05 and m.delta != 0:
            row[3] = f"[{'green' if good else 'red'}]{row[3]}[/]"
        table.add_row(*row)
    console.print(table)
    for line in _issue_lines(c):
        if line.startswith("- "):
            console.print(line[2:].replace("**", ""), markup=False)


def comparison_json(c: Comparison) -> str:
    data = c.model_dump(mode="json")
    for m, d in zip(c.metrics, data["metrics"], strict=True):
        d["key"] = m.key
    return to_json(data)


# --------------------------------------------------------------------------- gate
_TITLE = {"pass": "✅ PASS", "regression": "❌ REGRESSION", "not_comparable": "⚠️ NOT COMPARABLE"}
GATE_HEADERS = ["", "task/metric", "baseline", "candidate", "Δ [95% CI]", "p (Holm)", "test", "n", "verdict"]


def _cells(v: MetricVerdict) -> list[str]:
    m = v.comparison
    return [_ICON[v.status], m.key, fmt(m.baseline), fmt(m.candidate),
            f"{fmt(m.delta, signed=True)} {fmt_ci(m.delta_ci)}".strip(), fmt_p(v.p_holm), m.test, str(m.n),
            v.status.replace("_", " ") + (": " + "; ".join(v.reasons) if v.reasons else "")]


def verdict_markdown(v: GateVerdict) -> str:
    b, c = v.baseline, v.candidate
    failed = v.failed
    blocking = [i for i in v.issues if i.blocking]
    head = (f"No verdict on the {len(v.metrics)} metrics below" if blocking
            else f"{len(failed)} of {len(v.metrics)} gated metrics failed" if failed
            else f"{len(v.metrics)} gated metrics, none failed")
    lines = [f"## evalmon gate: {_TITLE[v.status]}", "",
             f"**baseline** `{b['run_id']}` ({b['origin']}, {b.get('status', '?')}) · "
             f"**candidate** `{c['run_id']}` ({c['origin']}, {c.get('status', '?')})", "",
             f"A = {_model_label(b)} · B = {_model_label(c)}", ""]
    if blocking:  # why first: the table below is no verdict
        lines += [f"The runs are **not comparable** ({len(blocking)} reason(s)); the table below is not a pass.",
                  "", "### Not comparable", ""] + [f"- ⚠️ ({i.scope}) {i.message}" for i in blocking] + [""]
    lines += [f"{head}. Exact McNemar (binary) / paired bootstrap (continuous, corpus) on shared documents, "
              f"Holm-corrected across {len(v.metrics)} metrics, alpha {v.alpha:g}"
              f" (seed {v.seed}, {v.n_boot} bootstrap resamples).", ""]
    if failed:
        lines += ["### Failed", ""] + [f"- ❌ **{m.key}**: " + "; ".join(m.reasons) for m in failed] + [""]
    lines += ["| " + " | ".join(GATE_HEADERS) + " |", "|" + "---|" * len(GATE_HEADERS)]
    lines += ["| " + " | ".join(x.replace("|", "\\|") for x in _cells(m)) + " |" for m in v.metrics]
    other = [f"- ({i.scope}) {i.message}" for i in v.issues if not i.blocking] + [f"- {w}" for w in v.warnings]
    notes = [f"- {m.key}: {n}" for m in v.metrics for n in m.comparison.notes]
    if other or notes:
        lines += ["", "### Warnings", "", *other, *notes]
    return "\n".join(lines) + "\n"


def verdict_json(v: GateVerdict) -> str:
    return to_json(v.model_dump(mode="json"))


def render_verdict(v: GateVerdict, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    style = {"pass": "green", "regression": "red", "not_comparable": "yellow"}[v.status]
    table = Table(title=f"evalmon gate: {v.baseline['run_id']} → {v.candidate['run_id']}")
    for h in GATE_HEADERS:
        table.add_column(h, justify="right" if h in ("baseline", "candidate", "Δ [95% CI]", "p (Holm)", "n")
                         else "left")
    for m in v.metrics:
        cells = [escape(x) for x in _cells(m)]
        if m.failed:
            cells = [f"[red]{x}[/]" for x in cells]
        table.add_row(*cells)
    console.print(table)
    console.print(f"[bold {style}]{_TITLE[v.status]}[/] — exit {v.exit_code}")
