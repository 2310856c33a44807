"""Aggregation statistics, numerically identical to lm-eval's ``metrics.py``.

* ``mean_stderr``: sample standard deviation (n-1) / sqrt(n) — lm-eval's ``mean_stderr``.
* ``pooled_sample_stderr``: lm-eval's group stderr when subtasks are weighted by size.
* ``aggregate_group``: micro average (weighted by size) + pooled stderr (``weight_by_size: True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def sample_stddev(values: Sequence[float]) -> float:
    mu = mean(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))


def mean_stderr(values: Sequence[float]) -> float | None:
    """lm-eval: ``sample_stddev(arr) / sqrt(len(arr))``; undefined (None) for n < 2."""
    if len(values) < 2:
        return None
    return sample_stddev(values) / math.sqrt(len(values))


def pooled_sample_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float:
    """lm-eval's pooled variance of size-weighted subtask means."""
    pooled_var = sum((n - 1) * se**2 * n for n, se in zip(sizes, stderrs, strict=True)) / (
        sum(sizes) - len(sizes)
    )
    return math.sqrt(pooled_var / sum(sizes))


def aggregate_group(values: Sequence[float], stderrs: Sequence[float | None], sizes: Sequence[int]
                    ) -> tuple[float, float | None]:
    """Size-weighted mean of subtask scores and the pooled stderr (None if any member lacks one)."""
    total = sum(sizes)
    value = sum(v * n for v, n in zip(values, sizes, strict=True)) / total
    if any(se is None for se in stderrs) or total - len(sizes) <= 0:
        return value, None
    return value, pooled_sample_stderr([float(se) for se in stderrs if se is not None], sizes)
