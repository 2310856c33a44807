"""Drive an ``LM`` over a task's requests: dedupe, cache lookup, batched scoring, progress.

Model-agnostic: works for any backend implementing ``LM.loglikelihood(reqs, progress)`` (and
``generate`` / ``loglikelihood_rolling`` for those request types). One routine does the bookkeeping
for all three: identical requests are computed once, cached ones not at all, and every batch the
backend reports is committed to the cache before the next starts — an interrupt loses at most one
batch. ``advance(n)`` reports progress in requests (duplicates included).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from evalmon.core.errors import ModelError
from evalmon.core.lm import LM, GenRequest, LLRequest, LLResult, RollingRequest
from evalmon.harness.cache import ResponseCache

Advance = Callable[[int], None]
R = TypeVar("R")


@dataclass
class EngineStats:
    requests: int = 0
    unique: int = 0
    cached: int = 0
    computed: int = 0
    tokens: int = 0  # real tokens forwarded (loglikelihood) / prompt + generated tokens (generation)
    padded_tokens: int = 0  # positions the forwards computed, padding included
    seconds: float = 0.0


@dataclass(frozen=True)
class _Store:
    """How one request type reads and writes the response cache."""

    get: Callable[[ResponseCache, str, list[str]], dict[str, Any]]
    put: Callable[[ResponseCache, str, list[tuple[str, Any]]], None]


_SCORES = _Store(lambda c, m, k: c.get_many(m, k), lambda c, m, items: c.put_many(m, items))
_TEXTS = _Store(lambda c, m, k: c.get_texts(m, k), lambda c, m, items: c.put_texts(m, items))


def _run_cached(
    lm: LM,
    requests: Sequence[Any],
    keys: list[str],
    compute: Callable[..., object],
    store: _Store,
    cache: ResponseCache | None,
    advance: Advance | None,
    cacheable: Callable[[Any], bool] = lambda r: True,
) -> tuple[list[Any], EngineStats]:
    t0 = time.perf_counter()
    stats = EngineStats(requests=len(requests))
    unique: dict[str, Any] = {}
    multiplicity: dict[str, int] = {}
    for k, r in zip(keys, requests, strict=True):
        unique.setdefault(k, r)
        multiplicity[k] = multiplicity.get(k, 0) + 1
    stats.unique = len(unique)
    model_key = lm.fingerprint.cache_key()
    lookup = [k for k, r in unique.items() if cacheable(r)]
    have: dict[str, Any] = store.get(cache, model_key, lookup) if cache and lookup else {}
    stats.cached = len(have)
    if advance and have:
        advance(sum(multiplicity[k] for k in have))
    todo_keys = [k for k in unique if k not in have]
    stats.computed = len(todo_keys)

    def on_batch(done: list[tuple[int, Any]]) -> None:
        items = [(todo_keys[i], res) for i, res in done]
        have.update(items)
        if cache:
            store.put(cache, model_key, [(k, res) for k, res in items if cacheable(unique[k])])
        if advance:
            advance(sum(multiplicity[k] for k, _ in items))

    if todo_keys:
        compute([unique[k] for k in todo_keys], progress=on_batch)
    stats.seconds = time.perf_counter() - t0
    return [have[k] for k in keys], stats


def _method(lm: LM, name: str, what: str) -> Callable[..., object]:
    fn = getattr(lm, name, None)
    if fn is None:
        raise ModelError(f"backend {lm.fingerprint.backend!r} cannot {what}")
    return fn  # type: ignore[no-any-return]


def _loglikelihood_tokens(lm: LM, stats: EngineStats) -> None:
    last = getattr(lm, "last_stats", None)
    stats.tokens = int(getattr(last, "tokens_forwarded", 0))
    stats.padded_tokens = int(getattr(last, "padded_tokens", 0))


def run_loglikelihood(lm: LM, requests: Sequence[LLRequest], cache: ResponseCache | None = None,
                      advance: Advance | None = None) -> tuple[list[LLResult], EngineStats]:
    """Score ``requests`` (duplicates scored once, cached ones not at all). Results in input order."""
    results, stats = _run_cached(lm, requests, [r.key() for r in requests], lm.loglikelihood, _SCORES, cache,
                                 advance)
    if stats.computed:
        _loglikelihood_tokens(lm, stats)
    return results, stats


def run_rolling(lm: LM, requests: Sequence[RollingRequest], cache: ResponseCache | None = None,
                advance: Advance | None = None) -> tuple[list[LLResult], EngineStats]:
    """Whole-text loglikelihoods (perplexity); deduplicated and cached like loglikelihood requests."""
    rolling = _method(lm, "loglikelihood_rolling", "compute rolling loglikelihoods")
    results, stats = _run_cached(lm, requests, [r.key() for r in requests], rolling, _SCORES, cache, advance)
    if stats.computed:
        _loglikelihood_tokens(lm, stats)
    return results, stats


def run_generate(lm: LM, requests: Sequence[GenRequest], cache: ResponseCache | None = None,
                 advance: Advance | None = None) -> tuple[list[str], EngineStats]:
    """Generate for ``requests``; greedy ones are deduplicated and cached (sampled ones never are)."""
    generate = _method(lm, "generate", "generate text")
    keys = [r.key() if r.greedy else f"sample:{i}:{r.key()}" for i, r in enumerate(requests)]
    results, stats = _run_cached(lm, requests, keys, generate, _TEXTS, cache, advance,
                                 cacheable=lambda r: bool(r.greedy))
    if stats.computed:
        last = getattr(lm, "last_gen_stats", None)
        stats.tokens = int(getattr(last, "prompt_tokens", 0)) + int(getattr(last, "generated_tokens", 0))
    return results, stats
