"""Evaluate one task on one model: dispatch requests by type, score, aggregate.

This is the arrow ``Task → Requests → Engine → Responses → Scorer/Metrics`` of the design; the
suite runner calls it per task. Requests of each type go to their engine in one call so batching,
dedupe and the response cache work across the whole task.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any

from evalmon.core.lm import LM, GenRequest, LLRequest, RollingRequest
from evalmon.core.results import MetricValue, SampleRecord, TaskResult, TaskTiming
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import Advance, EngineStats, run_generate, run_loglikelihood, run_rolling
from evalmon.metrics.stats import mean_stderr, sample_stddev
from evalmon.tasks.base import MetricSpec, Task, config_hash


def dispatch(lm: LM, reqs: Sequence[Any], cache: ResponseCache | None, advance: Advance
             ) -> tuple[list[Any], EngineStats]:
    """Send each request to the engine for its type; responses come back in request order."""
    out: list[Any] = [None] * len(reqs)
    total = EngineStats()
    by_type: dict[type, list[int]] = {}
    for i, r in enumerate(reqs):
        by_type.setdefault(type(r), []).append(i)
    for kind, idxs in by_type.items():
        batch = [reqs[i] for i in idxs]
        if kind is LLRequest:
            results, stats = run_loglikelihood(lm, batch, cache, advance)
        elif kind is GenRequest:
            results, stats = run_generate(lm, batch, cache, advance)
        elif kind is RollingRequest:
            results, stats = run_rolling(lm, batch, cache, advance)
        else:  # pragma: no cover - programming error
            raise TypeError(f"unknown request type {kind.__name__}")
        for i, res in zip(idxs, results, strict=True):
            out[i] = res
        for field in ("requests", "unique", "cached", "computed", "tokens", "padded_tokens", "seconds"):
            setattr(total, field, getattr(total, field) + getattr(stats, field))
    return out, total


def bootstrap_stderr(fn: Any, items: list[Any], iters: int, seed: int) -> float | None:
    """Std of ``fn`` over ``iters`` document resamples (lm-eval's bootstrap_stderr idea, seeded)."""
    if len(items) < 2 or iters <= 0:
        return None
    rnd = random.Random(seed)
    n = len(items)
    stats = [fn([items[rnd.randrange(n)] for _ in range(n)]) for _ in range(iters)]
    return sample_stddev(stats)


def aggregate(spec: MetricSpec, values: list[Any], seed: int) -> MetricValue:
    if spec.corpus is not None:
        value = float(spec.corpus(values))
        if spec.stderr_fn is not None:
            se = spec.stderr_fn(values, spec.bootstrap_iters, seed) if len(values) > 1 else None
        else:
            se = bootstrap_stderr(spec.corpus, values, spec.bootstrap_iters, seed)
        if se is not None and not math.isfinite(se):
            se = None
        return MetricValue.with_ci(value, se, spec.higher_is_better)
    return MetricValue.with_ci(sum(values) / len(values), mean_stderr(values), spec.higher_is_better)


def _prompt_text(req: Any) -> str:
    if isinstance(req, GenRequest | LLRequest) and req.messages:  # chat turns (LLRequest: chat-template mode)
        return "\n".join(f"{r}: {c}" for r, c in req.messages)
    return getattr(req, "context", None) or getattr(req, "text", "")


def evaluate_task(task: Task, lm: LM, cache: ResponseCache | None, advance: Advance, seed: int = 1234
                  ) -> tuple[TaskResult, list[SampleRecord]]:
    """Score ``task`` on ``lm``. Multi-stage tasks (e.g. multi-turn chat + judge) implement
    ``evaluate(lm, cache, advance, seed)`` themselves and are delegated to."""
    custom = getattr(task, "evaluate", None)
    if custom is not None:
        return custom(lm, cache, advance, seed)
    docs = list(task.docs())
    per_doc = [list(task.requests(d)) for d in docs]
    flat = [r for reqs in per_doc for r in reqs]
    responses, stats = dispatch(lm, flat, cache, advance)
    samples: list[SampleRecord] = []
    per_metric: dict[str, list[Any]] = {m: [] for m in task.metrics}
    extra_fields = getattr(task, "sample_fields", None)
    i = 0
    for doc, reqs in zip(docs, per_doc, strict=True):
        res = responses[i : i + len(reqs)]
        i += len(reqs)
        scores = task.score(doc, res)
        for m, v in scores.items():
            per_metric[m].append(v)
        fields: dict[str, Any] = dict(extra_fields(doc, res)) if extra_fields else {}
        if "outputs" not in fields and res and isinstance(res[0], str):
            fields["outputs"] = list(res)
        mean_scores = {m: float(v) for m, v in scores.items() if task.metrics[m].corpus is None}
        corpus_items = {m: v for m, v in scores.items() if task.metrics[m].corpus is not None}
        prompt = _prompt_text(reqs[0]) if reqs else ""
        samples.append(SampleRecord(task=task.name, doc_id=str(doc.id),
                                    prompt_hash=hashlib.sha256(prompt.encode()).hexdigest()[:16],
                                    scores=mean_scores, items=corpus_items, **fields))
    metrics = {m: aggregate(task.metrics[m], v, seed) for m, v in per_metric.items() if v}
    timing = TaskTiming(
        seconds=round(stats.seconds, 4), requests=stats.requests, unique_requests=stats.unique,
        cached=stats.cached, computed=stats.computed, tokens=stats.tokens, padded_tokens=stats.padded_tokens,
        padding_waste=round(1 - stats.tokens / stats.padded_tokens, 4) if stats.padded_tokens else 0.0,
        requests_per_s=round(stats.requests / stats.seconds, 2) if stats.seconds > 0 else 0.0,
        tokens_per_s=round(stats.tokens / stats.seconds, 2) if stats.seconds > 0 else 0.0)
    cfg = task.config()
    result = TaskResult(
        name=task.name, n=len(docs), num_fewshot=task.num_fewshot, source=task.source,
        config_hash=config_hash(cfg), config=with_bootstrap_record(cfg, task.metrics, seed), metrics=metrics,
        metric_kinds={m: s.kind for m, s in task.metrics.items()},
        lm_eval_task=getattr(task, "lm_eval_task", None), timing=timing)
    finish = getattr(task, "finish", None)  # optional: notes, curves, joint CIs from the corpus items
    if finish is not None:
        result = finish(result, per_metric, seed)
    return result, samples


def with_bootstrap_record(cfg: dict[str, Any], metrics: dict[str, MetricSpec], seed: int) -> dict[str, Any]:
    """``cfg`` + how the corpus metrics' stderr was computed (seed, iterations) — after the config
    hash, so the hash still names the task definition only."""
    corpus = {m: s.bootstrap_iters for m, s in metrics.items() if s.corpus is not None}
    if not corpus:
        return cfg
    return {**cfg, "bootstrap": {
        "seed": seed, "iters": corpus,
        "method": "resample documents with replacement; stderr = sample std of the replicates; "
                  "95% CI = value ± 1.96·stderr"}}
