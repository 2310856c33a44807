"""Evaluate one task: run its stages on the models of their roles, score, aggregate.

This is the arrow ``Task → Requests → Engine → Responses → Scorer/Metrics`` of the design; the suite
runner calls it per task. A task's ``stages()`` run in order; each stage's requests (built per document
from its responses to the earlier stages) go to the model of the stage's role (``harness.roles``) in one
engine call per request type, so batching, dedupe and the response cache work across the whole stage.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from evalmon.core.errors import ModelError
from evalmon.core.lm import (
    LM,
    EngineStats,
    GenRequest,
    LLRequest,
    ModelFingerprint,
    Request,
    RollingRequest,
    needed_capabilities,
)
from evalmon.core.results import MetricValue, SampleRecord, TaskResult, TaskTiming, clip_prompt
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import Advance, dispatch
from evalmon.harness.roles import Models, check_stage, who_is
from evalmon.metrics.intervals import BootstrapEstimate, mean_interval, percentile_interval
from evalmon.metrics.stats import mean_stderr, sample_stddev
from evalmon.tasks.base import CANDIDATE, MetricSpec, StageOutputs, Task, config_hash

__all__ = ["Models", "aggregate", "bootstrap_stderr", "dispatch", "evaluate_task", "with_bootstrap_record"]


def _replicates(fn: Any, items: list[Any], iters: int, seed: int) -> list[float] | None:
    if len(items) < 2 or iters <= 0:
        return None
    rnd = random.Random(seed)
    n = len(items)
    return [fn([items[rnd.randrange(n)] for _ in range(n)]) for _ in range(iters)]


def bootstrap_stderr(fn: Any, items: list[Any], iters: int, seed: int) -> float | None:
    """Std of ``fn`` over ``iters`` document resamples (lm-eval's bootstrap_stderr idea, seeded)."""
    stats = _replicates(fn, items, iters, seed)
    return None if stats is None else sample_stddev(stats)


def bootstrap_estimate(fn: Any, items: list[Any], iters: int, seed: int) -> BootstrapEstimate | None:
    """``bootstrap_stderr`` and the percentile interval of the same replicates."""
    stats = _replicates(fn, items, iters, seed)
    if stats is None:
        return None
    return BootstrapEstimate(sample_stddev(stats), percentile_interval(stats))


def aggregate(spec: MetricSpec, values: list[Any], seed: int) -> MetricValue:
    """Value, stderr (lm-eval's, unchanged) and the 95% interval of ``evalmon.metrics.intervals``."""
    hib = spec.higher_is_better
    if spec.corpus is not None:
        value = float(spec.corpus(values))
        if spec.stderr_fn is not None:
            est = spec.stderr_fn(values, spec.bootstrap_iters, seed) if len(values) > 1 else None
        else:
            est = bootstrap_estimate(spec.corpus, values, spec.bootstrap_iters, seed)
        interval = est.interval if isinstance(est, BootstrapEstimate) else None
        se = est.stderr if isinstance(est, BootstrapEstimate) else est  # a plain stderr: normal interval
        if se is not None and not math.isfinite(se):
            se = None
        if interval is None or not math.isfinite(value):
            return MetricValue.with_ci(value, se, hib)
        return MetricValue.with_ci(value, se, hib, ci=interval.bounds, ci_method=interval.method)
    value = sum(values) / len(values)
    interval = mean_interval(values, iters=spec.bootstrap_iters, seed=seed)
    if interval is None:
        return MetricValue.with_ci(value, mean_stderr(values), hib)
    return MetricValue.with_ci(value, mean_stderr(values), hib, ci=interval.bounds, ci_method=interval.method)


def _prompt_text(req: Request) -> str:
    """What a document's prompt hash covers: its first request's prompt."""
    if isinstance(req, GenRequest | LLRequest):
        if req.messages:  # chat turns (LLRequest: chat-template mode)
            return "\n".join(f"{r}: {c}" for r, c in req.messages)
        return req.context
    if isinstance(req, RollingRequest):
        return req.text
    return req.audio


def run_stages(task: Task, models: Models, cache: ResponseCache | None, advance: Advance
               ) -> tuple[list[Any], list[StageOutputs], list[Any], EngineStats, dict[str, LM]]:
    """Every stage of ``task`` on its role's model: (docs, each doc's responses, each doc's first request,
    engine totals, the models of the roles other than the candidate)."""
    docs = list(task.docs())
    outputs: list[list[list[Any]]] = [[] for _ in docs]
    first: list[Any] = [None] * len(docs)
    total = EngineStats()
    others: dict[str, LM] = {}
    answered_by: list[ModelFingerprint | None] = []
    for stage in task.stages():
        per_doc = [list(stage.requests(d, outputs[i])) for i, d in enumerate(docs)]
        flat = [r for reqs in per_doc for r in reqs]
        responses: list[Any] = []
        answered_by.append(None)
        if flat:
            lm = models.get(stage, task.name)
            check_stage(task, stage, lm, needed_capabilities(flat))
            try:
                responses, stats = dispatch(lm, flat, cache, advance)
            except ModelError as e:
                if stage.role == CANDIDATE:
                    raise
                raise ModelError(f"{task.name}: {who_is(stage.role)} {lm.fingerprint.model}: {e.message}",
                                 hint=e.hint) from None
            total.add(stats)
            answered_by[-1] = lm.fingerprint
            if stage.role != CANDIDATE:
                others[stage.role] = lm
        i = 0
        for k, reqs in enumerate(per_doc):
            outputs[k].append(responses[i: i + len(reqs)])
            i += len(reqs)
            if first[k] is None and reqs:
                first[k] = reqs[0]
    return docs, [StageOutputs(o, answered_by) for o in outputs], first, total, others


def evaluate_task(task: Task, lm: LM | Models | None, cache: ResponseCache | None, advance: Advance,
                  seed: int = 1234, sample_text: bool = True) -> tuple[TaskResult, list[SampleRecord]]:
    """Score ``task``: ``lm`` is the suite's model (the "candidate"), or ``Models`` for every role.
    ``sample_text``: each sample record keeps its prompt's text (clipped), not only its hash."""
    models = lm if isinstance(lm, Models) else Models(lm)
    docs, outputs, first, stats, others = run_stages(task, models, cache, advance)
    samples: list[SampleRecord] = []
    per_metric: dict[str, list[Any]] = {m: [] for m in task.metrics}
    for doc, res, req in zip(docs, outputs, first, strict=True):
        scores = task.score(doc, res)
        for m, v in scores.items():
            per_metric[m].append(v)
        fields: dict[str, Any] = dict(task.sample_fields(doc, res))
        if "outputs" not in fields and res and isinstance(res[0], str):
            fields["outputs"] = list(res)
        mean_scores = {m: float(v) for m, v in scores.items() if task.metrics[m].corpus is None}
        corpus_items = {m: v for m, v in scores.items() if task.metrics[m].corpus is not None}
        prompt = _prompt_text(req) if req is not None else ""
        record = {"prompt_hash": hashlib.sha256(prompt.encode()).hexdigest()[:16], **fields}
        if sample_text and req is not None:
            record["prompt"] = clip_prompt(prompt)
        samples.append(SampleRecord(task=task.name, doc_id=str(doc.id), scores=mean_scores, items=corpus_items,
                                    **record))
    metrics = {m: aggregate(task.metrics[m], v, seed) for m, v in per_metric.items() if v}
    cfg = task.config()
    config = with_bootstrap_record(cfg, task.metrics, seed)
    for role, other in others.items():  # which judge (…) graded: part of the result, not of the config hash
        config = {**config, f"{role}_fingerprint": other.fingerprint.to_dict()}
    result = TaskResult(
        name=task.name, n=len(docs), num_fewshot=task.num_fewshot, source=task.source,
        config_hash=config_hash(cfg), config=config, metrics=metrics,
        metric_kinds={m: s.kind for m, s in task.metrics.items()},
        lm_eval_task=task.lm_eval_task, timing=TaskTiming.from_stats(stats))
    return task.finish(result, per_metric, seed, samples, outputs), samples


def with_bootstrap_record(cfg: dict[str, Any], metrics: dict[str, MetricSpec], seed: int) -> dict[str, Any]:
    """``cfg`` + how the corpus metrics' stderr was computed (seed, iterations) — after the config
    hash, so the hash still names the task definition only."""
    corpus = {m: s.bootstrap_iters for m, s in metrics.items() if s.corpus is not None}
    if not corpus:
        return cfg
    return {**cfg, "bootstrap": {
        "seed": seed, "iters": corpus,
        "method": "resample documents with replacement; stderr = sample std of the replicates; "
                  "95% CI = 2.5/97.5 percentiles of the replicates"}}
