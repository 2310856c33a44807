"""The ranked adapter table of a many-adapter run, ready for the report templates and the console.

Reads the ``adapters`` section that ``evalmon.harness.matrix.comparison_table`` wrote into the suite run's
``results.json`` (pure data: the statistics are computed there, with ``evalmon.metrics.paired``). ``ranked``
has one row per variant — adapters by rank, then ``base`` — and one cell per task/metric: the value, Δ vs
base and the Holm-adjusted p (``*`` when below α). ``detail`` is the long form (one line per adapter ×
task/metric, with the test, its 95% interval of Δ, raw and Holm p, and Δ vs the best adapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalmon.core.numfmt import fmt_num, fmt_p


@dataclass(frozen=True)
class AdapterCell:
    value: str
    delta: str  # "" for base
    p_holm: str
    significant: bool
    better: bool | None  # direction of a significant difference (None: not significant)


@dataclass(frozen=True)
class AdapterRow:
    rank: str
    name: str
    cells: list[AdapterCell]
    better: int | None
    worse: int | None


def _signed(x: float | None) -> str:
    return fmt_num(x, signed=True, spell_nonfinite=False)


_p = fmt_p
fmt = fmt_num


def adapter_view(section: dict[str, Any]) -> dict[str, Any] | None:
    """Template context for ``section`` (a suite run's ``adapters``); None for a run without adapters."""
    if not section or "rows" not in section:
        return None
    alpha = float(section.get("alpha", 0.05))
    rows = section["rows"]
    columns = [f"{r['task']}/{r['metric']}" + ("" if r["higher_is_better"] else " ↓") for r in rows]
    ranked: list[AdapterRow] = []
    for entry in section.get("ranking", []):
        name = entry["adapter"]
        cells = []
        for r in rows:
            c = r["adapters"].get(name)
            if c is None:
                cells.append(AdapterCell("—", "", "", False, None))
                continue
            sig = c.get("p_holm") is not None and c["p_holm"] < alpha and c["delta"] != 0
            better = ((c["delta"] > 0) == r["higher_is_better"]) if sig else None
            cells.append(AdapterCell(fmt(c["value"]), _signed(c["delta"]), _p(c.get("p_holm")), sig, better))
        ranked.append(AdapterRow(str(entry["rank"]), name, cells, entry.get("better_than_base"),
                                 entry.get("worse_than_base")))
    reference = section.get("reference", "base")  # the first checkpoint of a `models:` run
    ranked.append(AdapterRow("–", reference, [AdapterCell(fmt(r["base"]), "", "", False, None) for r in rows],
                             None, None))
    detail = []
    for r in rows:
        for name, c in r["adapters"].items():
            ci = c.get("delta_ci")
            detail.append({"adapter": name, "column": f"{r['task']}/{r['metric']}", "value": fmt(c["value"]),
                           "delta": _signed(c["delta"]),
                           "ci": f"[{_signed(ci[0])}, {_signed(ci[1])}]" if ci else "—",
                           "test": c.get("test", "none"), "n": c.get("n", 0), "p": _p(c.get("p")),
                           "p_holm": _p(c.get("p_holm")), "delta_vs_best": _signed(c.get("delta_vs_best"))})
    return {"columns": columns, "ranked": ranked, "detail": detail, "best": section.get("best"),
            "alpha": alpha, "family": section.get("family", ""), "tests": section.get("tests", ""),
            "dirs": section.get("dirs", {}), "error": section.get("error"),
            "kind": section.get("kind", "adapter"), "reference": reference}


def variant_note(section: dict[str, Any]) -> str | None:
    """For an adapter's own run: which adapter of which suite run it is."""
    if not section or "variant" not in section:
        return None
    run, name = section.get("parent_run_id", "?"), section["variant"]
    if section.get("kind") == "checkpoint":  # one checkpoint of a `models:` run (harness/model_matrix.py)
        return f"checkpoint {name} of run {run}, whose checkpoints are compared in its report " \
               f"(gate: evalmon gate --baseline reports/{run} --candidate reports/{run}#{name})"
    return f"adapter {name} of run {run}, whose base and other adapters are compared in its report " \
           f"(gate: evalmon gate --baseline reports/{run}#base --candidate reports/{run}#{name})"
