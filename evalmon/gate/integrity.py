"""Is each run whole and self-consistent? Checked before any statistics, by ``compare`` and ``gate``.

A gate must never pass a partial or corrupt candidate. Every problem found here is an ``Issue`` with
``blocking=True`` and ``integrity=True`` — ``--allow-incomparable`` forgives provenance differences,
never these:

* **status** — ``results.json`` must say ``finished`` on both sides, and an MLflow run must be
  ``FINISHED`` (an interrupted, crashed or still-running evaluation is partial);
* **coverage** — every task/group and metric the baseline reports, and every task/metric a policy rule
  names exactly, must be in the candidate (a policy name the baseline lacks cannot be gated either);
* **values** — a compared metric that is NaN/inf on either side, a candidate metric that is NaN/inf
  where the baseline has a value, and NaN/inf per-document scores;
* **samples** — no task/group with ``n`` ≤ 0 (nothing scored: partial) on either side; in
  ``samples.jsonl.gz`` no document id twice within a task, no rows of a task results.json lacks, and
  every per-document score of a ``binary`` metric is 0 or 1;
* **consistency** — each task's ``n`` equals its documents in ``samples.jsonl.gz``, and each mean metric
  (binary/continuous) equals the mean of its per-document scores (relative tolerance 1e-9); a group's
  value equals the mean over its members' documents. Corpus metrics (BLEU, WER, perplexity: items, not
  scores) are checked for ``n`` only, and so are the judge family's rates, which pool turns while the
  per-document score is a per-question mean.

Runs without samples are only checked for status, coverage and values (``resolve`` already warns that
their tests fall back to unpaired).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from evalmon.core.results import MetricValue, SampleRecord
from evalmon.gate.resolve import LoadedRun

if TYPE_CHECKING:
    from evalmon.config.gate import GatePolicy

REL_TOL = 1e-9
_NOT_PER_DOC_KINDS = {"corpus", "count", "external"}
_POOLED_FAMILIES = {"judge"}  # metric = pooled over turns, per-document score = per-question mean
_GLOB = set("*?[")

Entity = tuple[dict[str, MetricValue], list[str], int, bool]  # metrics, member tasks, n, is_group


class Issue(BaseModel):
    scope: str  # "run" or a task/group name
    field: str
    message: str
    blocking: bool = False
    integrity: bool = False  # data integrity, not provenance: --allow-incomparable never downgrades it


def entities(run: LoadedRun) -> dict[str, Entity]:
    """name → (metrics, member tasks, n, is_group) for every task and group of a run."""
    r = run.result
    out: dict[str, Entity] = {name: (t.metrics, [name], t.n, False) for name, t in r.tasks.items()}
    for name, g in r.groups.items():
        out.setdefault(name, (g.metrics, list(g.members), g.n, True))
    return out


def names(items: Iterable[str], k: int = 20) -> str:
    shown = list(items)
    return ", ".join(shown[:k]) + (f" … ({len(shown)} in all)" if len(shown) > k else "") if shown else "none"


def _block(field: str, message: str, scope: str = "run") -> Issue:
    return Issue(scope=scope, field=field, message=message, blocking=True, integrity=True)


# --------------------------------------------------------------------------- status
def status_issues(run: LoadedRun, side: str) -> list[Issue]:
    r, out = run.result, []
    if r.status != "finished":
        out.append(_block("status", f"{side} {run.label}: status is {r.status!r}, not 'finished': a partial run "
                                    f"({len(r.tasks)} tasks in results.json)"))
    if run.tracking_status is not None and run.tracking_status != "FINISHED":
        out.append(_block("mlflow_status", f"{side} {run.label}: MLflow run {run.mlflow_run_id} status is "
                                           f"{run.tracking_status}, not FINISHED"))
    return out


# --------------------------------------------------------------------------- coverage
def coverage_issues(baseline: LoadedRun, candidate: LoadedRun, policy: GatePolicy | None = None) -> list[Issue]:
    ea, eb = entities(baseline), entities(candidate)
    if ea and not any(n in eb for n in ea):
        return [_block("coverage", f"runs share no task: baseline {baseline.label} has {names(sorted(ea), 8)}; "
                                   f"candidate {candidate.label} has {names(sorted(eb), 8)}")]
    tasks: dict[str, str] = dict.fromkeys(ea, "")  # required name → "" (baseline) or the policy rule's place
    metrics: dict[tuple[str, str], str] = {(n, m): "" for n in ea for m in ea[n][0]}
    not_in_baseline: list[str] = []
    for i, rule in enumerate(policy.rules if policy else []):
        assert policy is not None
        pt, pm = rule.pattern()
        if _GLOB & set(pt):
            continue
        where = policy.where(i)
        tasks.setdefault(pt, where)
        if not _GLOB & set(pm):
            metrics.setdefault((pt, pm), where)
            if pt not in ea or pm not in ea[pt][0]:
                not_in_baseline.append(f"{pt}/{pm} ({where})")
        elif pt not in ea:
            not_in_baseline.append(f"{pt} ({where})")

    def shown(name: str, where: str) -> str:
        return f"{name} ({where})" if where else name

    out = []
    lost_tasks = [shown(n, w) for n, w in tasks.items() if n not in eb]
    if lost_tasks:
        out.append(_block("coverage", f"candidate {candidate.label} lacks {len(lost_tasks)} of the "
                                      f"{len(tasks)} tasks/groups the baseline or policy has: {names(lost_tasks)}"))
    lost = [shown(f"{n}/{m}", w) for (n, m), w in metrics.items() if n in eb and m not in eb[n][0]]
    if lost:
        out.append(_block("coverage", f"candidate {candidate.label} lacks {len(lost)} metric(s) the baseline or "
                                      f"policy has: {names(lost)}"))
    if not_in_baseline:
        out.append(_block("coverage", f"baseline {baseline.label} lacks what the policy gates: "
                                      f"{names(not_in_baseline)} — nothing to compare against"))
    return out


# --------------------------------------------------------------------------- values
def value_issues(baseline: LoadedRun, candidate: LoadedRun, keys: Iterable[tuple[str, str]]) -> list[Issue]:
    """NaN/inf metric values: any compared one, and candidate values where the baseline has one."""
    ea, eb = entities(baseline), entities(candidate)
    scope = set(keys)
    bad: dict[str, list[str]] = {"baseline": [], "candidate": []}
    for n in (n for n in ea if n in eb):
        notes = {**baseline.result.tasks[n].notes} if n in baseline.result.tasks else {}
        if n in candidate.result.tasks:
            notes.update(candidate.result.tasks[n].notes)
        for m in (m for m in ea[n][0] if m in eb[n][0]):
            va, vb = ea[n][0][m].value, eb[n][0][m].value
            why = f", {notes[m]}" if m in notes else ""
            if not math.isfinite(vb) and (math.isfinite(va) or (n, m) in scope):
                bad["candidate"].append(f"{n}/{m} = {vb}{why}")
            if not math.isfinite(va) and (n, m) in scope:
                bad["baseline"].append(f"{n}/{m} = {va}{why}")
    out = []
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if bad[side]:
            out.append(_block("nan_metric", f"{side} {run.label}: {len(bad[side])} metric value(s) are NaN/inf, "
                                            f"nothing to compare: {names(bad[side])}"))
    return out


# --------------------------------------------------------------------------- empty tasks
def empty_issues(run: LoadedRun, side: str) -> list[Issue]:
    """A task or group that scored no documents is partial, whatever value its metrics kept."""
    empty = [f"{name} (n={n})" for name, (_, _, n, _) in entities(run).items() if n <= 0]
    if not empty:
        return []
    return [_block("empty_task", f"{side} {run.label}: {len(empty)} task(s)/group(s) scored no documents, "
                                 f"a partial run: {names(empty)}")]


# --------------------------------------------------------------------------- results vs samples
def _by_task(samples: list[SampleRecord]) -> dict[str, list[SampleRecord]]:
    out: dict[str, list[SampleRecord]] = {}
    for s in samples:
        out.setdefault(s.task, []).append(s)
    return out


def _pooled(members: list[str]) -> bool:
    """True when a member is a registered task whose family pools its metrics (not per-document means)."""
    from evalmon.tasks import base as registry

    return any((info := registry.TASKS.get(m)) is not None and info.family in _POOLED_FAMILIES for m in members)


def record_issues(run: LoadedRun, side: str) -> list[Issue]:
    """Samples that are not what results.json summarises: duplicate ids, unknown tasks, binary scores ∉ {0, 1}."""
    if run.samples is None:
        return []
    docs, tasks, where = _by_task(run.samples), run.result.tasks, f"{side} {run.label}"
    dups, unknown, out_of_range = [], [], []
    for task, rows in docs.items():
        if task not in tasks:
            unknown.append(f"{task} ({len(rows)} rows)")
            continue
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.doc_id] = counts.get(r.doc_id, 0) + 1
        twice = [f"{d} ×{c}" for d, c in counts.items() if c > 1]
        if twice:
            dups.append(f"{task}: {names(twice, 3)}")
        for metric, kind in tasks[task].metric_kinds.items():
            if kind != "binary":
                continue
            bad = sum(1 for r in rows if (v := r.scores.get(metric)) is not None and math.isfinite(v)
                      and v not in (0.0, 1.0))
            if bad:
                out_of_range.append(f"{task}/{metric} ({bad} of {len(rows)} documents)")
    out = []
    if unknown:
        out.append(_block("samples_tasks", f"{where}: samples.jsonl.gz has rows for task(s) not in results.json "
                                           f"(the samples do not match the results): {names(unknown)}"))
    if dups:
        out.append(_block("samples_doc_ids", f"{where}: duplicate document ids in samples.jsonl.gz (a document "
                                             f"counted twice, another never evaluated): {names(dups, 8)}"))
    if out_of_range:
        out.append(_block("samples_range", f"{where}: binary per-document scores outside {{0, 1}} (corrupt "
                                           f"samples): {names(out_of_range)}"))
    return out


def sample_issues(run: LoadedRun, side: str, keys: Iterable[tuple[str, str]]) -> list[Issue]:
    """``n`` vs documents for every task; per-document NaNs and mean vs results.json for ``keys``."""
    if run.samples is None:
        return []
    docs = _by_task(run.samples)
    ents = entities(run)
    wrong_n = [f"{t}: n={res.n} vs {len(docs.get(t, []))} documents" for t, res in run.result.tasks.items()
               if res.n != len(docs.get(t, []))]
    nan: list[str] = []
    lacking: list[str] = []
    differ: list[str] = []
    for name, metric in keys:
        if name not in ents:
            continue
        mv, members = ents[name][0].get(metric), ents[name][1]
        kinds = {run.result.tasks[m].metric_kinds.get(metric) for m in members if m in run.result.tasks}
        if mv is None or kinds & _NOT_PER_DOC_KINDS or any(m not in docs for m in members) or _pooled(members):
            continue
        values = [r.scores.get(metric) for m in members for r in docs[m]]
        present = [float(v) for v in values if v is not None]
        if not present:
            continue  # not a per-document metric
        key = f"{name}/{metric}"
        if len(present) < len(values):
            lacking.append(f"{key} ({len(values) - len(present)} of {len(values)} documents)")
        bad = sum(not math.isfinite(v) for v in present)
        if bad:
            nan.append(f"{key} ({bad} of {len(values)} documents)")
            continue
        mean = math.fsum(present) / len(present)
        if math.isfinite(mv.value) and not math.isclose(mv.value, mean, rel_tol=REL_TOL, abs_tol=1e-12):
            differ.append(f"{key} = {mv.value:.10g} but the mean of its {len(present)} per-document scores "
                          f"is {mean:.10g}")
    out = []
    where = f"{side} {run.label}"
    if wrong_n:
        out.append(_block("samples_n", f"{where}: results.json n disagrees with samples.jsonl.gz: {names(wrong_n)}"))
    if nan:
        out.append(_block("nan_samples", f"{where}: per-document scores are NaN/inf: {names(nan)}"))
    if lacking:
        out.append(_block("samples_missing", f"{where}: documents without a per-document score: {names(lacking)}"))
    if differ:
        out.append(_block("consistency", f"{where}: results.json disagrees with samples.jsonl.gz: {names(differ, 8)}"))
    return out


# --------------------------------------------------------------------------- all of it
def check(baseline: LoadedRun, candidate: LoadedRun, keys: Iterable[tuple[str, str]],
          policy: GatePolicy | None = None) -> list[Issue]:
    """Every integrity issue of the pair; ``keys`` are the (task, metric) pairs being compared."""
    keys = list(keys)
    issues = status_issues(baseline, "baseline") + status_issues(candidate, "candidate")
    issues += coverage_issues(baseline, candidate, policy)
    issues += value_issues(baseline, candidate, keys)
    for run, side in ((baseline, "baseline"), (candidate, "candidate")):
        issues += empty_issues(run, side) + record_issues(run, side)
    issues += sample_issues(baseline, "baseline", keys) + sample_issues(candidate, "candidate", keys)
    return issues
