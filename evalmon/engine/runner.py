"""Drive an ``LM`` over a task's requests: dedupe, cache lookup, batched scoring, progress.

Model-agnostic: works for any backend implementing ``LM.loglikelihood(reqs, progress)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evalmon.errors import ModelError
from evalmon.models.base import LM, GenRequest, LLRequest, LLResult, RollingRequest
from evalmon.models.cache import ResponseCache

Advance = Callable[[int], None]


@dataclass
class EngineStats:
    requests: int = 0
    unique: int = 0
    cached: int = 0
    computed: int = 0
    tokens: int = 0  # real tokens forwarded (loglikelihood) / prompt + generated tokens (generation)
    padded_tokens: int = 0  # positions the forwards computed, padding included
    seconds: float = 0.0


def run_loglikelihood(
    lm: LM,
    requests: Sequence[LLRequest],
    cache: ResponseCache | None = None,
    advance: Advance | None = None,
) -> tuple[list[LLResult], EngineStats]:
    """Score ``requests`` (duplicates scored once, cached ones not at all). Results in input order.

    Each completed batch is written to the cache before the next starts, so an interrupt loses
    at most one batch. ``advance(n)`` reports progress in requests (duplicates included).
    """
    t0 = time.perf_counter()
    stats = EngineStats(requests=len(requests))
    keys = [r.key() for r in requests]
    unique: dict[str, LLRequest] = {}
    multiplicity: dict[str, int] = {}
    for k, r in zip(keys, requests, strict=True):
        unique.setdefault(k, r)
        multiplicity[k] = multiplicity.get(k, 0) + 1
    stats.unique = len(unique)
    model_key = lm.fingerprint.cache_key()
    have: dict[str, LLResult] = cache.get_many(model_key, list(unique)) if cache else {}
    stats.cached = len(have)
    if advance and have:
        advance(sum(multiplicity[k] for k in have))
    todo_keys = [k for k in unique if k not in have]
    todo = [unique[k] for k in todo_keys]
    stats.computed = len(todo)

    def on_batch(done: list[tuple[int, LLResult]]) -> None:
        items = [(todo_keys[i], res) for i, res in done]
        for k, res in items:
            have[k] = res
        if cache:
            cache.put_many(model_key, items)
        if advance:
            advance(sum(multiplicity[k] for k, _ in items))

    if todo:
        lm.loglikelihood(todo, progress=on_batch)
        last = getattr(lm, "last_stats", None)
        stats.tokens = int(getattr(last, "tokens_forwarded", 0))
        stats.padded_tokens = int(getattr(last, "padded_tokens", 0))
    stats.seconds = time.perf_counter() - t0
    return [have[k] for k in keys], stats


def run_generate(
    lm: LM,
    requests: Sequence[GenRequest],
    cache: ResponseCache | None = None,
    advance: Advance | None = None,
) -> tuple[list[str], EngineStats]:
    """Generate for ``requests``; greedy ones are deduplicated and cached (sampled ones never are)."""
    generate = getattr(lm, "generate", None)
    if generate is None:
        raise ModelError(f"backend {lm.fingerprint.backend!r} cannot generate text")
    t0 = time.perf_counter()
    stats = EngineStats(requests=len(requests))
    keys = [r.key() if r.greedy else f"sample:{i}:{r.key()}" for i, r in enumerate(requests)]
    unique: dict[str, GenRequest] = {}
    multiplicity: dict[str, int] = {}
    for k, r in zip(keys, requests, strict=True):
        unique.setdefault(k, r)
        multiplicity[k] = multiplicity.get(k, 0) + 1
    stats.unique = len(unique)
    model_key = lm.fingerprint.cache_key()
    cacheable = [k for k, r in unique.items() if r.greedy]
    have: dict[str, str] = cache.get_texts(model_key, cacheable) if cache and cacheable else {}
    stats.cached = len(have)
    if advance and have:
        advance(sum(multiplicity[k] for k in have))
    todo_keys = [k for k in unique if k not in have]
    stats.computed = len(todo_keys)

    def on_batch(done: list[tuple[int, str]]) -> None:
        items = [(todo_keys[i], text) for i, text in done]
        have.update(items)
        if cache:
            cache.put_texts(model_key, [(k, t) for k, t in items if unique[k].greedy])
        if advance:
            advance(sum(multiplicity[k] for k, _ in items))

    if todo_keys:
        generate([unique[k] for k in todo_keys], progress=on_batch)
        last = getattr(lm, "last_gen_stats", None)
        stats.tokens = int(getattr(last, "prompt_tokens", 0)) + int(getattr(last, "generated_tokens", 0))
    stats.seconds = time.perf_counter() - t0
    return [have[k] for k in keys], stats


def run_rolling(
    lm: LM,
    requests: Sequence[RollingRequest],
    cache: ResponseCache | None = None,
    advance: Advance | None = None,
) -> tuple[list[LLResult], EngineStats]:
    """Whole-text loglikelihoods (perplexity); deduplicated and cached like loglikelihood requests."""
    rolling = getattr(lm, "loglikelihood_rolling", None)
    if rolling is None:
        raise ModelError(f"backend {lm.fingerprint.backend!r} cannot compute rolling loglikelihoods")
    t0 = time.perf_counter()
    stats = EngineStats(requests=len(requests))
    keys = [r.key() for r in requests]
    unique = dict(zip(keys, requests, strict=True))
    stats.unique = len(unique)
    model_key = lm.fingerprint.cache_key()
    have = cache.get_many(model_key, list(unique)) if cache else {}
    stats.cached = len(have)
    if advance and have:
        advance(sum(1 for k in keys if k in have))
    todo_keys = [k for k in unique if k not in have]
    stats.computed = len(todo_keys)

    def on_batch(done: list[tuple[int, LLResult]]) -> None:
        items = [(todo_keys[i], res) for i, res in done]
        have.update(items)
        if cache:
            cache.put_many(model_key, items)
        if advance:
            advance(sum(keys.count(k) for k, _ in items))

    if todo_keys:
        rolling([unique[k] for k in todo_keys], progress=on_batch)
        stats.tokens = int(getattr(getattr(lm, "last_stats", None), "tokens_forwarded", 0))
    stats.seconds = time.perf_counter() - t0
    return [have[k] for k in keys], stats
