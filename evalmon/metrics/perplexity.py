"""Perplexity aggregations, numerically identical to lm-eval 0.4.13's ``loglikelihood_rolling`` tasks.

Per document lm-eval's ``process_results`` yields ``(loglikelihood, weight)`` items (``ConfigurableTask``
and ``tasks/wikitext``):

* ``word_perplexity``  item ``(ll, words)``, ``words = len(re.split(r"\\s+", text))``;
  aggregation ``weighted_perplexity`` = ``exp(-Σll / Σwords)``.
* ``byte_perplexity``  item ``(ll, bytes)``, ``bytes = len(text.encode("utf-8"))``;
  aggregation ``weighted_perplexity`` = ``exp(-Σll / Σbytes)``.
* ``bits_per_byte``    item ``(ll, bytes)``; aggregation ``bits_per_byte`` = ``-Σll / Σbytes / ln 2``.

``ll`` is the natural-log loglikelihood of the whole document (``loglikelihood_rolling``). lm-eval
reports no stderr for these (``weighted_perplexity`` is not in its bootstrappable list); evalmon adds a
seeded document bootstrap (vectorised: one index matrix, two weighted sums per replicate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from evalmon.core import registry
from evalmon.metrics.intervals import BootstrapEstimate, percentile_interval

PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")


def count_words(text: str) -> int:
    """lm-eval's ``Task.count_words`` (leading/trailing whitespace adds an empty "word", as there)."""
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def weighted_mean(items: Sequence[Sequence[float]]) -> float:
    a, b = zip(*items, strict=True)
    return sum(a) / sum(b)


def weighted_perplexity(items: Sequence[Sequence[float]]) -> float:
    return math.exp(-weighted_mean(items))


def bits_per_byte(items: Sequence[Sequence[float]]) -> float:
    return -weighted_mean(items) / math.log(2)


AGGREGATIONS = {"word_perplexity": weighted_perplexity, "byte_perplexity": weighted_perplexity,
                "bits_per_byte": bits_per_byte}


def items_for(text: str, loglikelihood: float) -> dict[str, list[float]]:
    """Per-document items of the three metrics (what lm-eval's ``process_results`` returns)."""
    words, nbytes = count_words(text), count_bytes(text)
    return {"word_perplexity": [loglikelihood, words], "byte_perplexity": [loglikelihood, nbytes],
            "bits_per_byte": [loglikelihood, nbytes]}


def bootstrap_replicates(metric: str, items: Sequence[Sequence[float]], iters: int, seed: int
                         ) -> np.ndarray | None:
    """``metric`` over ``iters`` document resamples (numpy generator seeded by ``seed``)."""
    if len(items) < 2 or iters <= 1:
        return None
    arr = np.asarray(items, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arr), size=(iters, len(arr)))
    ratio = arr[idx, 0].sum(axis=1) / arr[idx, 1].sum(axis=1)
    return -ratio / math.log(2) if metric == "bits_per_byte" else np.exp(-ratio)


def bootstrap_stderr(metric: str, items: Sequence[Sequence[float]], iters: int, seed: int) -> float | None:
    """Sample std of ``metric`` over ``iters`` document resamples (numpy generator seeded by ``seed``)."""
    values = bootstrap_replicates(metric, items, iters, seed)
    return None if values is None else float(np.std(values, ddof=1))


def bootstrap_estimate(metric: str, items: Sequence[Sequence[float]], iters: int, seed: int
                       ) -> BootstrapEstimate | None:
    """``bootstrap_stderr`` and the percentile interval of the same replicates (positive for perplexity)."""
    values = bootstrap_replicates(metric, items, iters, seed)
    if values is None:
        return None
    return BootstrapEstimate(float(np.std(values, ddof=1)), percentile_interval(values))


def stderr_fn(metric: str) -> Any:
    """A ``MetricSpec.stderr_fn`` for ``metric``: stderr and percentile interval."""

    def fn(items: list[Any], iters: int, seed: int) -> BootstrapEstimate | None:
        return bootstrap_estimate(metric, items, iters, seed)

    return fn


def _register() -> None:
    """Corpus statistics for paired gates (``evalmon.metrics.paired``)."""
    for name, fn in AGGREGATIONS.items():
        registry.metrics.add(name, fn)


_register()
