"""Regression gates: compare two runs with paired statistics and decide pass / regression / not comparable.

``resolve`` finds a run (results dir, MLflow run id or query, registered model), ``integrity`` refuses
partial or corrupt runs (status, coverage, NaNs, results.json vs samples), ``compare`` pairs the
per-document scores and tests every shared metric, ``verdict`` applies the policy (gates.yaml, read by
``evalmon.config.gate``) with Holm's correction, ``render`` prints tables and writes the markdown / JSON.
See docs/gating.md.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from evalmon.config.gate import GatePolicy, load_policy, load_policy_text
from evalmon.gate.compare import Comparison, Issue, MetricComparison, compare
from evalmon.gate.render import comparison_json, comparison_markdown, verdict_json, verdict_markdown
from evalmon.gate.resolve import LoadedRun, promote, resolve_run
from evalmon.gate.verdict import GateVerdict, MetricVerdict, gate

__all__ = [
    "Comparison", "GatePolicy", "GateVerdict", "Issue", "LoadedRun", "MetricComparison", "MetricVerdict",
    "compare", "comparison_json", "comparison_markdown", "gate", "load_policy", "load_policy_text", "promote",
    "resolve_run", "verdict_json", "verdict_markdown",
]


class _CallableGate(types.ModuleType):
    """``evalmon.gate(baseline, candidate)`` is the public gate call, yet ``evalmon.gate`` is also this package
    (Python binds a subpackage onto its parent when it is imported), so the package itself is callable."""

    def __call__(self, baseline: str, candidate: str, *, policy: str | Path | None = None,
                 tracking_uri: str | None = None, **options: Any) -> GateVerdict:
        loaded = load_policy(policy) if policy is not None else None
        return gate(resolve_run(baseline, tracking_uri), resolve_run(candidate, tracking_uri), loaded, **options)


sys.modules[__name__].__class__ = _CallableGate
