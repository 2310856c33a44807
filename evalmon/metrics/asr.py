"""Corpus WER / CER / MER through jiwer, with a documented, configurable text normalisation.

Corpus-level: total edit operations / total reference words (jiwer's ``process_words`` over the
whole list), never a mean of per-utterance rates. The stderr / 95% interval come from a seeded
bootstrap over utterances that resamples per-utterance error counts (no re-alignment).

Default normalisation (``Normalization()``), applied identically to references and hypotheses:
lower-case → expand common English contractions? no (off by default) → remove punctuation
(Unicode category P*, keeping apostrophes inside words) → collapse whitespace → strip.
Every step is a flag so a team can match the normaliser its published numbers used.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.core import registry
from evalmon.data.normalize import Normalization
from evalmon.metrics.text import CorpusScore, check_bootstrap, check_parallel

ASR_METRICS = ("wer", "cer", "mer")


@dataclass(frozen=True)
class ErrorCounts:
    errors: int  # S + D + I (words or characters)
    ref_len: int  # N reference units
    hits: int = 0  # H (for MER: errors / (H + S + D + I))


def _counts(metric: str, refs: Sequence[str], hyps: Sequence[str]) -> list[ErrorCounts]:
    import jiwer

    out = []
    for r, h in zip(refs, hyps, strict=True):
        if metric == "cer":
            o = jiwer.process_characters(r, h) if r else None
        else:
            o = jiwer.process_words(r, h) if r else None
        if o is None:  # empty reference: every hypothesis unit is an insertion
            n_h = len(h) if metric == "cer" else len(h.split())
            out.append(ErrorCounts(errors=n_h, ref_len=0, hits=0))
            continue
        errors = o.substitutions + o.deletions + o.insertions
        out.append(ErrorCounts(errors=errors, ref_len=o.hits + o.substitutions + o.deletions, hits=o.hits))
    return out


def _rate(metric: str, counts: Sequence[ErrorCounts]) -> float:
    errors = sum(c.errors for c in counts)
    denom = errors + sum(c.hits for c in counts) if metric == "mer" else sum(c.ref_len for c in counts)
    return errors / denom if denom else float("nan")


def asr_score(metric: str, hyps: Sequence[str], refs: Sequence[str], *, norm: Normalization | None = None,
              n_bootstrap: int = 1000, seed: int = 12345) -> CorpusScore:
    """Corpus ``metric`` (wer | cer | mer) of ``hyps`` against one reference stream ``refs``."""
    check_parallel(hyps, [refs])
    check_bootstrap(n_bootstrap, seed)
    norm = norm or Normalization()
    counts = _counts(metric, [norm.apply(r) for r in refs], [norm.apply(h) for h in hyps])
    value = _rate(metric, counts)
    stderr = lo = hi = None
    if n_bootstrap > 1 and len(counts) > 1 and math.isfinite(value):
        rnd = random.Random(seed)
        n = len(counts)
        draws = (_rate(metric, [counts[rnd.randrange(n)] for _ in range(n)]) for _ in range(n_bootstrap))
        # a resample of only empty references has no rate: it is left out of the interval
        samples = sorted(x for x in draws if math.isfinite(x))
        if len(samples) > 1:
            k = len(samples) // 40
            stderr, lo, hi = statistics.stdev(samples), samples[k], samples[len(samples) - k - 1]
    sig = f"{metric}|jiwer|corpus|norm:{norm.describe()}|bs:{n_bootstrap}|seed:{seed}"
    return CorpusScore(metric=metric, score=value, stderr=stderr, ci_low=lo, ci_high=hi, signature=sig,
                       n=len(hyps), seed=seed, higher_is_better=False)


def corpus_from_items(metric: str, norm: Normalization | None = None) -> Any:
    """``MetricSpec.corpus`` over per-document items ``[hypothesis, reference]``."""

    def compute(items: list[Any]) -> float:
        return asr_score(metric, [i[0] for i in items], [i[1] for i in items], norm=norm, n_bootstrap=0).score

    return compute


def _register() -> None:
    """Corpus statistics for paired gates (``evalmon.metrics.paired``): items ``[hypothesis, reference]``
    as the ``asr`` tasks store them — already normalised, so no second normalisation here."""
    identity = Normalization(lowercase=False, remove_punctuation=False)
    for name in ASR_METRICS:
        registry.metrics.add(name, corpus_from_items(name, identity))


_register()
