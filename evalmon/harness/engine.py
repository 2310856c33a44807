"""Drive an ``LM`` over requests: dedupe, cache lookup, batched compute, progress — for every request type.

One routine does the bookkeeping for all four request types (``LLRequest``, ``RollingRequest``,
``GenRequest``, ``TranscribeRequest``): identical requests are computed once, cached ones not at all, and
every batch the backend reports is committed to the cache before the next starts — an interrupt loses at
most one batch. A NaN score (an overflowed forward, NaN weights) stops the run as a ``ModelError`` after the
batch's finite scores are cached: it is neither scored as a wrong answer nor stored. ``advance(n)`` reports progress in requests (duplicates included). What a backend can
answer is its declared ``capabilities``; ``require`` turns a gap into one line before anything runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from evalmon.core.errors import ModelError
from evalmon.core.lm import (
    LM,
    EngineStats,
    GenerativeLM,
    GenRequest,
    LLRequest,
    LLResult,
    RollingLM,
    RollingRequest,
    SpeechLM,
    TranscribeRequest,
    Transcription,
)
from evalmon.harness.cache import ResponseCache

Advance = Callable[[int], None]

__all__ = ["Advance", "EngineStats", "dispatch", "require", "run_generate", "run_loglikelihood", "run_rolling",
           "run_transcribe"]

# what a task needs, worded for the one-line error, and what to do about it
_NEEDS = {
    "loglikelihood": ("a model that scores loglikelihoods", "use model.backend: hf (or an openai server that "
                                                            "returns prompt logprobs)"),
    "rolling": ("a model that computes rolling loglikelihoods (perplexity)", "use model.backend: hf"),
    "generate": ("a model that generates text", "use model.backend: hf or openai"),
    "transcribe": ("a speech-recognition model", "e.g. model: {backend: hf_asr, path: openai/whisper-tiny}"),
    "adapters": ("a backend that loads adapters", "use model.backend: hf"),
}


def require(lm: LM, needs: frozenset[str] | set[str], who: str, role: str | None = None) -> None:
    """Raise a one-line ``ModelError`` when ``lm`` (the model of ``role``) lacks one of the capabilities ``who``
    (e.g. "task x") needs."""
    missing = sorted(set(needs) - set(lm.capabilities))
    if not missing:
        return
    what, hint = _NEEDS.get(missing[0], (f"capability {missing[0]!r}", "use a backend that declares it"))
    have = ", ".join(sorted(lm.capabilities)) or "none"
    model = "the model" if role is None else "the suite's model" if role == "candidate" else f"the {role} model"
    raise ModelError(f"{who} needs {what} ({', '.join(missing)}), but {model} (backend "
                     f"{lm.fingerprint.backend!r}) cannot (its capabilities: {have})", hint=hint)


@dataclass(frozen=True)
class _Store:
    """How one request type reads and writes the response cache."""

    get: Callable[[ResponseCache, str, list[str]], dict[str, Any]]
    put: Callable[[ResponseCache, str, list[tuple[str, Any]]], None]


_SCORES = _Store(lambda c, m, k: c.get_many(m, k), lambda c, m, items: c.put_many(m, items))
_TEXTS = _Store(lambda c, m, k: c.get_texts(m, k), lambda c, m, items: c.put_texts(m, items))


def _nan_error(lm: LM, n_bad: int, n_batch: int) -> ModelError:
    fp = lm.fingerprint
    return ModelError(f"model {fp.model} ({fp.backend}, {fp.dtype}): the loglikelihood is NaN for {n_bad} of "
                      f"{n_batch} request{'s' * (n_batch > 1)} — the forward pass overflowed or the weights hold "
                      "NaN", hint=("check the checkpoint's weights" if fp.dtype == "float32" else
                                   "use dtype: float32 (half precision overflows easily) or check the checkpoint")
                      + "; finished requests are cached — rerun to resume")


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
        bad = [k for k, res in items if isinstance(res, LLResult) and math.isnan(res.logprob)]
        items = [(k, res) for k, res in items if k not in bad]  # what is right is kept, in the cache too
        have.update(items)
        if cache:
            store.put(cache, model_key, [(k, res) for k, res in items if cacheable(unique[k])])
        if advance:
            advance(sum(multiplicity[k] for k, _ in items))
        if bad:
            raise _nan_error(lm, len(bad), len(done))

    if todo_keys:
        compute([unique[k] for k in todo_keys], progress=on_batch)
        forwarded = lm.stats()
        stats.tokens, stats.padded_tokens = forwarded.tokens, forwarded.padded_tokens
    stats.seconds = time.perf_counter() - t0
    return [have[k] for k in keys], stats


def run_loglikelihood(lm: LM, requests: Sequence[LLRequest], cache: ResponseCache | None = None,
                      advance: Advance | None = None) -> tuple[list[LLResult], EngineStats]:
    """Score ``requests`` (duplicates scored once, cached ones not at all). Results in input order."""
    require(lm, {"loglikelihood"}, "a batch of requests")
    return _run_cached(lm, requests, [r.key() for r in requests], lm.loglikelihood, _SCORES, cache, advance)


def run_rolling(lm: LM, requests: Sequence[RollingRequest], cache: ResponseCache | None = None,
                advance: Advance | None = None) -> tuple[list[LLResult], EngineStats]:
    """Whole-text loglikelihoods (perplexity); deduplicated and cached like loglikelihood requests."""
    require(lm, {"rolling"}, "a batch of requests")
    rolling = cast(RollingLM, lm).loglikelihood_rolling
    return _run_cached(lm, requests, [r.key() for r in requests], rolling, _SCORES, cache, advance)


def run_generate(lm: LM, requests: Sequence[GenRequest], cache: ResponseCache | None = None,
                 advance: Advance | None = None) -> tuple[list[str], EngineStats]:
    """Generate for ``requests``; greedy ones are deduplicated and cached (sampled ones never are)."""
    require(lm, {"generate"}, "a batch of requests")
    keys = [r.key() if r.greedy else f"sample:{i}:{r.key()}" for i, r in enumerate(requests)]
    return _run_cached(lm, requests, keys, cast(GenerativeLM, lm).generate, _TEXTS, cache, advance,
                       cacheable=lambda r: bool(r.greedy))


def run_transcribe(lm: LM, requests: Sequence[TranscribeRequest], cache: ResponseCache | None = None,
                   advance: Advance | None = None) -> tuple[list[Transcription], EngineStats]:
    """Transcribe ``requests``: every file is decoded (and resampled) at the backend's ``sampling_rate``
    first — a bad file fails before the model runs — then keyed by the content hash of what the model
    hears, so duplicates are transcribed once and cached transcripts not at all."""
    from evalmon.data.audio import load_audio  # lazy: numpy/scipy only for speech tasks

    require(lm, {"transcribe"}, "a batch of requests")
    speech = cast(SpeechLM, lm)
    t0 = time.perf_counter()
    rate = int(speech.sampling_rate)
    prepared = []
    for r in requests:
        audio = load_audio(r.audio, rate, resample=r.resample)
        prepared.append(r.prepared(audio.digest(), audio.samples, audio.seconds, audio.source_rate))
    texts, stats = _run_cached(lm, prepared, [r.key() for r in prepared], speech.transcribe, _TEXTS, cache, advance)
    stats.seconds = time.perf_counter() - t0  # decoding included
    out = [Transcription(t, r.seconds, r.source_rate, rate, r.digest or "") for t, r in zip(texts, prepared, strict=True)]
    return out, stats


_RUNNERS: dict[type, Callable[..., tuple[list[Any], EngineStats]]] = {
    LLRequest: run_loglikelihood, GenRequest: run_generate, RollingRequest: run_rolling,
    TranscribeRequest: run_transcribe}


def dispatch(lm: LM, reqs: Sequence[Any], cache: ResponseCache | None, advance: Advance
             ) -> tuple[list[Any], EngineStats]:
    """Send each request to the engine for its type (one call per type, so batching, dedupe and the cache
    work across them); responses come back in request order."""
    out: list[Any] = [None] * len(reqs)
    total = EngineStats()
    by_type: dict[type, list[int]] = {}
    for i, r in enumerate(reqs):
        by_type.setdefault(type(r), []).append(i)
    for kind, idxs in by_type.items():
        runner = _RUNNERS.get(kind)
        if runner is None:  # pragma: no cover - programming error
            raise TypeError(f"unknown request type {kind.__name__}")
        results, stats = runner(lm, [reqs[i] for i in idxs], cache, advance)
        for i, res in zip(idxs, results, strict=True):
            out[i] = res
        total.add(stats)
    return out, total
