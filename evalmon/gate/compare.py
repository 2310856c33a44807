"""Side-by-side comparison of two runs: every shared task/group metric with a paired test.

Pairing is on document ids (per task; ``(task, doc_id)`` for groups, whose value is the micro average of
their members). Binary per-document metrics get the exact McNemar test, continuous ones the paired
bootstrap of the mean difference, registered corpus metrics (``register_corpus_metric``) the paired
bootstrap of the corpus statistic. Without samples (``samples.jsonl.gz`` missing, or the metric not in
the per-document scores) the test falls back to an unpaired two-proportion z-test (binary) or Welch's
t-test from the reported stderrs, and says so.

``delta`` is always candidate − baseline in metric units, computed on the shared documents when paired.
Provenance differences become ``Issue``s; ``blocking`` ones (task prompt config, few-shot count, BOS
policy, no shared documents) make ``evalmon gate`` exit 2, and so do the data-integrity issues of
``integrity`` (run status, coverage, NaNs, results.json vs samples), which come first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from evalmon.config.gate import GatePolicy
from evalmon.core.errors import GateError
from evalmon.core.results import MetricValue, SampleRecord
from evalmon.gate import integrity
from evalmon.gate.integrity import Issue, entities
from evalmon.gate.resolve import LoadedRun
from evalmon.metrics.paired import (
    DEFAULT_N_BOOT,
    DEFAULT_N_BOOT_CORPUS,
    DEFAULT_SEED,
    PairedTest,
    corpus_statistic,
    derive_seed,
    mcnemar_test,
    paired_bootstrap_corpus,
    paired_bootstrap_mean,
    two_proportion_z,
    welch_from_stderr,
)
from evalmon.sinks.lmeval import HASH_PREFIX as LMEVAL_HASH

# suite keys that are expected to differ between a baseline and a candidate (or between machines)
_SUITE_KEYS_IGNORED = ("model.", "output_dir", "tracking.", "cache.", "description", "data.data_dir")


class MetricComparison(BaseModel):
    task: str
    metric: str
    kind: str  # binary | continuous | corpus
    higher_is_better: bool = True
    group: bool = False
    baseline: float
    baseline_ci: tuple[float, float] | None = None
    n_baseline: int
    candidate: float
    candidate_ci: tuple[float, float] | None = None
    n_candidate: int
    delta: float  # candidate − baseline (on the shared documents when paired)
    delta_ci: tuple[float, float] | None = None
    p_value: float | None = None
    test: str
    paired: bool
    n: int  # documents in the test (paired) or min(n_baseline, n_candidate)
    detail: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"


class Comparison(BaseModel):
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    seed: int
    n_boot: int
    metrics: list[MetricComparison]
    issues: list[Issue]
    only_baseline: list[str] = Field(default_factory=list)
    only_candidate: list[str] = Field(default_factory=list)

    @property
    def blocking(self) -> list[Issue]:
        return [i for i in self.issues if i.blocking]


# --------------------------------------------------------------------------- what is shared
def shared_metrics(baseline: LoadedRun, candidate: LoadedRun) -> dict[str, tuple[str, str]]:
    """``task/metric`` → (task, metric) for every metric both runs report; ``GateError`` if none."""
    ea, eb = entities(baseline), entities(candidate)
    shared = [n for n in ea if n in eb]
    if not shared:
        status = "; ".join(f"{side} status is {r.result.status!r}" for side, r in
                           (("baseline", baseline), ("candidate", candidate)) if r.result.status != "finished")
        raise GateError(
            f"runs share no task: baseline {baseline.label} has {_names(ea)}, "
            f"candidate {candidate.label} has {_names(eb)}" + (f" ({status})" if status else ""),
            hint="evaluate the candidate on the baseline's suite")
    return {f"{n}/{m}": (n, m) for n in shared for m in ea[n][0] if m in eb[n][0]}


def _names(entities: Iterable[str], k: int = 6) -> str:
    names = sorted(entities)
    return ", ".join(names[:k]) + (f" … ({len(names)} in all)" if len(names) > k else "") if names else "none"


# --------------------------------------------------------------------------- provenance checks
def provenance_issues(baseline: LoadedRun, candidate: LoadedRun, entities: Iterable[str]) -> list[Issue]:
    a, b = baseline.result, candidate.result
    issues: list[Issue] = []

    def diff(scope: str, name: str, va: Any, vb: Any, blocking: bool = False, what: str = "") -> None:
        if va != vb:
            issues.append(Issue(scope=scope, field=name, blocking=blocking,
                                message=f"{what or name} differs: baseline {va!r}, candidate {vb!r}"))

    diff("run", "bos_policy", a.model.get("bos_policy"), b.model.get("bos_policy"), True, "model BOS policy")
    diff("run", "max_length", a.model.get("max_length"), b.model.get("max_length"), what="model max_length")
    diff("run", "dtype", a.model.get("dtype"), b.model.get("dtype"), what="model dtype")
    diff("run", "lm_eval_version", a.provenance.lm_eval_version, b.provenance.lm_eval_version,
         what="lm-eval version")
    diff("run", "evalmon_version", a.provenance.evalmon_version, b.provenance.evalmon_version,
         what="evalmon version")
    diff("run", "schema_version", a.schema_version, b.schema_version, what="results schema version")
    if a.suite_hash != b.suite_hash:
        keys = sorted(k for k in set(a.suite_config) | set(b.suite_config)
                      if not k.startswith(_SUITE_KEYS_IGNORED)
                      and a.suite_config.get(k) != b.suite_config.get(k))
        if keys:
            shown = "; ".join(f"{k}: {a.suite_config.get(k)!r} → {b.suite_config.get(k)!r}" for k in keys[:4])
            more = f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""
            issues.append(Issue(scope="run", field="suite", message=f"suite config differs: {shown}{more}"))
    for name in entities:
        ta, tb = a.tasks.get(name), b.tasks.get(name)
        if ta is None or tb is None:
            continue
        if ta.num_fewshot != tb.num_fewshot:
            diff(name, "num_fewshot", ta.num_fewshot, tb.num_fewshot, True, "few-shot count")
        elif ta.config_hash != tb.config_hash and LMEVAL_HASH in (ta.config_hash[:8], tb.config_hash[:8]):
            issues.append(Issue(scope=name, field="config_hash", message=(
                "task configs come from lm-eval and evalmon: hashes not comparable (few-shot, n, documents "
                "and prompt hashes are checked)")))
        elif ta.config_hash != tb.config_hash:
            keys = sorted(k for k in set(ta.config) | set(tb.config) if ta.config.get(k) != tb.config.get(k))
            what = f" ({', '.join(keys[:4])})" if keys else ""
            issues.append(Issue(scope=name, field="config_hash", blocking=True,
                                message=f"task config differs{what}: hash {ta.config_hash} vs {tb.config_hash}"))
        diff(name, "source", ta.source, tb.source, what="data source")
        diff(name, "n", ta.n, tb.n, what="document count n")
        diff(name, "lm_eval_task", ta.lm_eval_task, tb.lm_eval_task, what="lm-eval task")
    return issues


# --------------------------------------------------------------------------- pairing
def _index(samples: list[SampleRecord] | None) -> dict[str, dict[str, SampleRecord]] | None:
    if samples is None:
        return None
    out: dict[str, dict[str, SampleRecord]] = {}
    for s in samples:
        out.setdefault(s.task, {}).setdefault(s.doc_id, s)
    return out


class _Pairs:
    """Shared documents of one task/group: aligned records of both runs (or why there are none)."""

    def __init__(self, name: str, members: list[str], ia: dict[str, dict[str, SampleRecord]] | None,
                 ib: dict[str, dict[str, SampleRecord]] | None) -> None:
        self.a: list[SampleRecord] = []
        self.b: list[SampleRecord] = []
        self.why: str | None = None
        self.only_a = self.only_b = self.prompt_diff = 0
        if ia is None or ib is None:
            self.why = "samples.jsonl.gz missing for the " + ("baseline" if ia is None else "candidate")
            return
        missing = [m for m in members if m not in ia or m not in ib]
        if missing:
            side = "baseline" if missing[0] not in ia else "candidate"
            self.why = f"no per-document samples for {missing[0]} in the {side}"
            return
        for m in members:
            da, db = ia[m], ib[m]
            keys = sorted(da.keys() & db.keys())
            self.only_a += len(da) - len(keys)
            self.only_b += len(db) - len(keys)
            self.a += [da[k] for k in keys]
            self.b += [db[k] for k in keys]
        self.prompt_diff = sum(x.prompt_hash != y.prompt_hash for x, y in zip(self.a, self.b, strict=True))
        if not self.a:
            self.why = "no shared document ids"

    def issues(self, name: str) -> list[Issue]:
        out = []
        if self.only_a or self.only_b:
            out.append(Issue(scope=name, field="doc_ids", message=(
                f"document ids differ: {self.only_a} only in baseline, {self.only_b} only in candidate; "
                f"paired tests use the {len(self.a)} shared")))
        if self.why == "no shared document ids":
            out.append(Issue(scope=name, field="doc_ids", blocking=True,
                             message="no shared document ids: the runs evaluated different documents"))
        if self.prompt_diff:
            out.append(Issue(scope=name, field="prompt_hash", message=(
                f"{self.prompt_diff} of {len(self.a)} shared documents have a different prompt hash")))
        return out


def _ci(mv: MetricValue) -> tuple[float, float] | None:
    if mv.ci_low is not None and mv.ci_high is not None:
        return (mv.ci_low, mv.ci_high)
    if mv.stderr is not None and math.isfinite(mv.stderr):
        return (mv.value - 1.96 * mv.stderr, mv.value + 1.96 * mv.stderr)
    return None


def _kind(run: LoadedRun, members: list[str], metric: str, values: list[float] | None) -> str:
    kinds = {run.result.tasks[m].metric_kinds.get(metric) for m in members if m in run.result.tasks}
    if kinds == {"binary"}:
        return "binary"
    if "corpus" in kinds:
        return "corpus"
    if kinds & {"continuous"}:
        return "continuous"
    if not kinds - {None} and corpus_statistic(metric) is not None:
        return "corpus"
    if values is not None and all(v in (0.0, 1.0) for v in values):
        return "binary"
    return "continuous"


def _items(records: list[SampleRecord], metric: str) -> list[Any] | None:
    """Per-document corpus items (``SampleRecord.items[metric]``), None unless every record has one."""
    out = []
    for r in records:
        items = getattr(r, "items", None) or {}
        if metric not in items:
            return None
        out.append(items[metric])
    return out


def _paired_scores(a: list[SampleRecord], b: list[SampleRecord], metric: str
                   ) -> tuple[list[float], list[float], int, int] | None:
    """``metric`` on the aligned documents both runs scored, and how many each run left unscored (a judge task's
    question whose verdicts all failed to parse has no score); None when a run has no such per-document score
    at all, or no document is scored on both sides."""
    va, vb = [r.scores.get(metric) for r in a], [r.scores.get(metric) for r in b]
    keep = [i for i, (x, y) in enumerate(zip(va, vb, strict=True)) if x is not None and y is not None]
    if not keep:
        return None
    return ([float(va[i]) for i in keep], [float(vb[i]) for i in keep],  # type: ignore[arg-type]
            sum(v is None for v in va), sum(v is None for v in vb))


def compare_metric(name: str, metric: str, baseline: LoadedRun, candidate: LoadedRun, pairs: _Pairs, *,
                   group: bool, members: list[str], seed: int, n_boot: int, n_boot_corpus: int
                   ) -> MetricComparison:
    ea, eb = entities(baseline)[name], entities(candidate)[name]
    ma, mb = ea[0][metric], eb[0][metric]
    notes: list[str] = []
    sa = sb = None
    scored = _paired_scores(pairs.a, pairs.b, metric) if pairs.why is None else None
    if scored is not None:
        sa, sb, lost_a, lost_b = scored
        if lost_a or lost_b:
            notes.append(f"{len(pairs.a) - len(sa)} documents without a per-document score (baseline {lost_a}, "
                         f"candidate {lost_b}) left out of the paired test")
    if sa is not None and sb is not None:
        ok = np.isfinite(sa) & np.isfinite(sb)
        if not ok.all():
            notes.append(f"{int((~ok).sum())} documents with a non-finite score left out of the test")
            sa, sb = np.asarray(sa)[ok].tolist(), np.asarray(sb)[ok].tolist()
    kind = _kind(baseline, members, metric, sa)
    rng = derive_seed(seed, f"{name}/{metric}")
    test: PairedTest | None = None
    stat = corpus_statistic(metric) if kind == "corpus" else None
    items_a = items_b = None
    if pairs.why is None and stat is not None:
        items_a, items_b = _items(pairs.a, metric), _items(pairs.b, metric)
    if items_a is not None and items_b is not None and stat is not None:
        test = paired_bootstrap_corpus(items_a, items_b, stat, n_boot=n_boot_corpus, seed=seed, rng=rng)
    elif pairs.why is None and kind != "corpus" and sa is not None and sb is not None:
        test = (mcnemar_test(sa, sb) if kind == "binary"
                else paired_bootstrap_mean(sa, sb, n_boot=n_boot, seed=seed, rng=rng))
    else:
        why = pairs.why or (
            f"metric {metric!r} is not in the per-document scores" if kind != "corpus"
            else f"corpus metric {metric!r} has no registered statistic (register_corpus_metric)"
            if stat is None else f"corpus metric {metric!r} has no per-document items in the samples")
        notes.append(f"unpaired test: {why}")
        if kind == "binary":
            test = two_proportion_z(ma.value, ea[2], mb.value, eb[2])
        else:
            test = welch_from_stderr(ma.value, ma.stderr, ea[2], mb.value, mb.stderr, eb[2])
            if test.p_value is None:
                notes.append("no test possible: a stderr is missing")
    paired = test.test.startswith(("mcnemar", "paired"))
    if paired and (test.n != ea[2] or test.n != eb[2]):
        notes.append(f"Δ and p on the {test.n} shared documents (n: {ea[2]} vs {eb[2]})")
    if ma.higher_is_better != mb.higher_is_better:
        notes.append("higher_is_better differs between the runs; the baseline's is used")
    delta_ci = (test.ci_low, test.ci_high) if test.ci_low is not None and test.ci_high is not None else None
    return MetricComparison(
        task=name, metric=metric, kind=kind, higher_is_better=ma.higher_is_better, group=group,
        baseline=ma.value, baseline_ci=_ci(ma), n_baseline=ea[2], candidate=mb.value, candidate_ci=_ci(mb),
        n_candidate=eb[2], delta=test.delta, delta_ci=delta_ci, p_value=test.p_value, test=test.test,
        paired=paired, n=test.n, detail=test.detail, notes=notes)


def _same_run(baseline: LoadedRun, candidate: LoadedRun) -> list[Issue]:
    """One run on both sides (a CI step pointing --baseline and --candidate at the same folder, or a baseline
    query that finds the candidate itself) compares nothing and would always pass: blocking. Adapters / models of
    one many-variant run share its run id but not their model or adapter."""
    a, b = baseline.describe(), candidate.describe()
    if (a["run_id"], a["model"], a["adapter"]) != (b["run_id"], b["model"], b["adapter"]):
        return []
    return [Issue(scope="run", field="run_id", blocking=True, integrity=True, message=(
        f"baseline {baseline.ref} and candidate {candidate.ref} are the same run ({a['run_id']}): nothing is compared"))]


def compare(baseline: LoadedRun, candidate: LoadedRun, *, only: Iterable[str] | None = None,
            seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_N_BOOT,
            n_boot_corpus: int = DEFAULT_N_BOOT_CORPUS, policy: GatePolicy | None = None) -> Comparison:
    """Compare every shared metric (or the ``task/metric`` keys in ``only``). Integrity issues (status,
    coverage — of ``policy``'s names too —, NaNs, results vs samples) come first, all blocking."""
    if seed < 0:  # numpy's "expected non-negative integer" traceback otherwise, after both runs were loaded
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"--seed {seed}: must be ≥ 0", hint="e.g. --seed 1234")
    shared = shared_metrics(baseline, candidate)
    keys = list(shared) if only is None else [k for k in only if k in shared]
    ea, eb = entities(baseline), entities(candidate)
    names = list(dict.fromkeys(shared[k][0] for k in keys))
    checked = dict.fromkeys(m for n in names for m in ea[n][1] if m in eb[n][1])  # tasks behind groups too
    issues = integrity.check(baseline, candidate, [shared[k] for k in keys], policy)
    issues += _same_run(baseline, candidate)
    issues += provenance_issues(baseline, candidate, checked)
    for run, side in ((baseline, "baseline"), (candidate, "candidate")):
        issues += [Issue(scope="run", field="samples", message=f"{side}: {n}") for n in run.notes]
    ia, ib = _index(baseline.samples), _index(candidate.samples)
    pairs: dict[str, _Pairs] = {}
    for name in names:
        members = [m for m in ea[name][1] if m in eb[name][1]]
        if set(ea[name][1]) != set(eb[name][1]):
            issues.append(Issue(scope=name, field="members", message=(
                f"group members differ: {len(ea[name][1])} in baseline, {len(eb[name][1])} in candidate")))
        pairs[name] = _Pairs(name, members, ia, ib)
        issues += pairs[name].issues(name)
    metrics = []
    for key in keys:
        name, metric = shared[key]
        members = [m for m in ea[name][1] if m in eb[name][1]]
        metrics.append(compare_metric(name, metric, baseline, candidate, pairs[name], group=ea[name][3],
                                      members=members, seed=seed, n_boot=n_boot, n_boot_corpus=n_boot_corpus))
    return Comparison(
        baseline=baseline.describe(), candidate=candidate.describe(), seed=seed, n_boot=n_boot,
        metrics=metrics, issues=issues, only_baseline=sorted(set(ea) - set(eb)),
        only_candidate=sorted(set(eb) - set(ea)))
