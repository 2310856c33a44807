"""The regression gate: compare two runs, apply the policy, correct for multiplicity, decide.

For each gated metric (``policy.effective``): ``worsening`` = baseline − candidate for
higher-is-better metrics (candidate − baseline otherwise), on the paired documents. The p-values of all
gated metrics (two-sided, from ``compare``) are Holm-adjusted together. A metric fails

* ``regression`` — ``worsening > max_drop`` and (Holm-adjusted p ≤ its alpha, or the rule has
  ``require_significance: false``);
* ``below_min`` / ``above_max`` — the candidate's reported value is outside ``min_value``/``max_value``.

Improvements are reported (``improved`` when significant), never failed. A drop that exceeds
``max_drop`` but cannot be tested (no samples and no stderr) passes with a loud warning.

Exit codes: 0 pass, 1 regression, 2 not comparable: a partial or corrupt run (``integrity``: status not
finished, a task/metric of the baseline or policy missing from the candidate, NaN/inf values or
per-document scores, results.json disagreeing with its samples), blocking provenance differences, or a
rule that requires paired samples which are missing or mismatched. ``allow_incomparable`` turns the
blocking provenance differences into warnings, never the integrity issues.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from evalmon.config.gate import EffectiveRule, GatePolicy
from evalmon.core.errors import GateError
from evalmon.core.numfmt import fmt_p
from evalmon.gate import integrity
from evalmon.gate.compare import Comparison, Issue, MetricComparison, compare, shared_metrics
from evalmon.gate.integrity import entities
from evalmon.gate.resolve import LoadedRun
from evalmon.metrics.paired import DEFAULT_N_BOOT, DEFAULT_N_BOOT_CORPUS, DEFAULT_SEED, holm

Status = Literal["pass", "improved", "drop_not_significant", "drop_within_tolerance", "untested",
                 "regression", "below_min", "above_max"]


class MetricVerdict(BaseModel):
    key: str
    comparison: MetricComparison
    rule: EffectiveRule
    worsening: float  # > 0: the candidate is worse, in metric units
    p_holm: float | None = None
    significant: bool | None = None
    status: Status
    failed: bool
    reasons: list[str] = Field(default_factory=list)


class GateVerdict(BaseModel):
    status: Literal["pass", "regression", "not_comparable"]
    exit_code: int
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    alpha: float
    correction: str = "holm"
    seed: int
    n_boot: int
    policy: str | None = None
    metrics: list[MetricVerdict]
    issues: list[Issue]
    warnings: list[str] = Field(default_factory=list)

    @property
    def failed(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.failed]


def _decide(m: MetricComparison, rule: EffectiveRule, p_holm: float | None) -> MetricVerdict:
    hib = m.higher_is_better if rule.higher_is_better is None else rule.higher_is_better
    worse = -m.delta if hib else m.delta
    sig = None if p_holm is None else bool(p_holm <= rule.alpha)
    reasons: list[str] = []
    status: Status = "pass"
    failed = False
    exceeds = worse > rule.max_drop + 1e-12
    if not (math.isfinite(m.baseline) and math.isfinite(m.candidate) and math.isfinite(worse)):
        status = "untested"  # NaN compares False with every threshold: never let it read as a pass
        reasons.append(f"no finite values to compare (baseline {m.baseline}, candidate {m.candidate})")
    elif exceeds and (sig or not rule.require_significance):
        status, failed = "regression", True
        why = (f"significant (Holm p={fmt_p(p_holm)} ≤ {rule.alpha})" if sig
               else "significance not required by the rule")
        reasons.append(f"drop {worse:.4f} > max_drop {rule.max_drop:g}, {why}")
    elif exceeds and sig is None:
        status = "untested"
        reasons.append(f"drop {worse:.4f} > max_drop {rule.max_drop:g} but no test was possible ({m.test})")
    elif exceeds:
        status = "drop_not_significant"
        reasons.append(f"drop {worse:.4f} > max_drop {rule.max_drop:g} but Holm p={fmt_p(p_holm)} > {rule.alpha}")
    elif worse > 0:
        status = "drop_within_tolerance"
        reasons.append(f"drop {worse:.4f} ≤ max_drop {rule.max_drop:g}")
    elif worse < 0 and sig:
        status = "improved"
        reasons.append(f"improvement {-worse:.4f} (Holm p={fmt_p(p_holm)})")
    if rule.min_value is not None and m.candidate < rule.min_value:
        reasons.append(f"candidate {m.candidate:.4f} < min_value {rule.min_value:g}")
        failed = True
        status = status if status == "regression" else "below_min"
    if rule.max_value is not None and m.candidate > rule.max_value:
        reasons.append(f"candidate {m.candidate:.4f} > max_value {rule.max_value:g}")
        failed = True
        status = status if status in ("regression", "below_min") else "above_max"
    return MetricVerdict(key=m.key, comparison=m, rule=rule, worsening=worse, p_holm=p_holm, significant=sig,
                         status=status, failed=failed, reasons=reasons)


def gate(baseline: LoadedRun, candidate: LoadedRun, policy: GatePolicy | None = None, *,
         alpha: float | None = None, seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_N_BOOT,
         n_boot_corpus: int = DEFAULT_N_BOOT_CORPUS, allow_incomparable: bool = False,
         policy_source: str | None = None) -> GateVerdict:
    policy = policy or GatePolicy()
    try:
        shared = shared_metrics(baseline, candidate)
    except GateError:  # no shared task: an integrity issue (coverage) unless the baseline is empty
        shared = {}
    available: dict[str, list[str]] = {}  # a rule may name what either run has; coverage says who lacks it
    for run in (baseline, candidate):
        for task, ent in entities(run).items():
            have = available.setdefault(task, [])
            have += [m for m in ent[0] if m not in have]
    warnings = policy.check_names(available)
    rules = {k: r for k, (t, m) in shared.items() if (r := policy.effective(t, m, alpha)) is not None}
    if rules:
        comparison: Comparison = compare(baseline, candidate, only=list(rules), seed=seed, n_boot=n_boot,
                                         n_boot_corpus=n_boot_corpus, policy=policy)
    else:  # nothing to test: not comparable when the runs are partial/corrupt, else a policy or suite mistake
        found = integrity.check(baseline, candidate, [], policy)
        if not any(i.blocking for i in found):
            shared_metrics(baseline, candidate)
            raise GateError(f"the policy gates none of the {len(shared)} metrics both runs report",
                            hint="fix the rules' task/metric patterns or set `gate_unmatched: true`")
        ea, eb = entities(baseline), entities(candidate)
        comparison = Comparison(baseline=baseline.describe(), candidate=candidate.describe(), seed=seed,
                                n_boot=n_boot, metrics=[], issues=found, only_baseline=sorted(set(ea) - set(eb)),
                                only_candidate=sorted(set(eb) - set(ea)))
    issues = list(comparison.issues)
    if allow_incomparable:  # provenance only: a partial or corrupt run stays not comparable
        for i in issues:
            if i.blocking and not i.integrity:
                i.message += " (allowed by --allow-incomparable)"
                i.blocking = False
    blocking = [i for i in issues if i.blocking]
    for m in comparison.metrics:  # require_paired: unpaired tests or mismatched ids are not acceptable
        rule = rules[m.key]
        if not rule.require_paired:
            continue
        if not m.paired:
            why = next((n for n in m.notes if n.startswith("unpaired")), "unpaired test")
            blocking.append(Issue(scope=m.task, field="paired", blocking=True,
                                  message=f"{m.key} requires paired samples: {why}"))
        elif any(i.scope == m.task and i.field == "doc_ids" for i in issues):
            blocking.append(Issue(scope=m.task, field="paired", blocking=True,
                                  message=f"{m.key} requires paired samples but the document ids differ"))
    issues += [b for b in blocking if b not in issues]
    adjusted = holm([m.p_value for m in comparison.metrics])
    verdicts = [_decide(m, rules[m.key], None if math.isnan(p) else float(p))
                for m, p in zip(comparison.metrics, adjusted, strict=True)]
    warnings += [f"{v.key}: {r}" for v in verdicts if v.status == "untested" for r in v.reasons]
    if blocking:
        status, code = "not_comparable", 2
    elif any(v.failed for v in verdicts):
        status, code = "regression", 1
    else:
        status, code = "pass", 0
    return GateVerdict(status=status, exit_code=code, baseline=comparison.baseline,
                       candidate=comparison.candidate, alpha=alpha if alpha is not None else policy.alpha,
                       seed=seed, n_boot=n_boot, policy=policy_source, metrics=verdicts, issues=issues,
                       warnings=warnings)
