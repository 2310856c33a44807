"""95% confidence intervals that stay in range and say how they were made.

* Proportions — per-document values all 0/1 (``acc``, ``acc_norm``, ``exact_match``, ``mc1`` …): the
  Wilson score interval (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``, identical to
  statsmodels' ``proportion_confint(k, n, method="wilson")``). Always inside [0, 1] and informative at
  0/n and n/n successes, where value ± 1.96·stderr is ``[-0.048, 0.148]`` or ``[1, 1]``.
* Other per-document means (``mc2``, ``f1``, judge ratings …): BCa bootstrap of the mean
  (``scipy.stats.bootstrap``, vectorised, seeded); percentile where BCa is undefined or above
  ``BCA_MAX_N`` documents (its jackknife is O(n²); at that size the correction is negligible).
* Corpus metrics (BLEU, WER, perplexity, PR-AUC …): the 2.5/97.5 percentiles of their document-resampling
  bootstrap replicates — never value ± 1.96·se, so perplexity's interval is positive and asymmetric.

lm-eval's stderr (sample std / √n; the bootstrap replicates' std for corpus metrics) is reported unchanged
alongside; only the interval is computed here. The core result type only stores the bounds and the method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy/scipy load on first use: tasks import this module at registration
    import numpy as np

CONFIDENCE = 0.95
WILSON = "wilson"
BCA = "bootstrap BCa"
PERCENTILE = "bootstrap percentile"
BCA_MAX_N = 5000  # larger samples: percentile bootstrap of the mean
NORMAL = "normal"  # value ± 1.96·stderr: only for a stderr without replicates (third-party stderr_fn)

__all__ = ["BCA", "CONFIDENCE", "NORMAL", "PERCENTILE", "WILSON", "BootstrapEstimate", "Interval",
           "estimate_of", "group_interval", "is_proportion", "mean_interval", "percentile_interval", "wilson"]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class BootstrapEstimate:
    """What a corpus metric's ``stderr_fn`` may return: the replicates' std and their percentile interval."""

    stderr: float | None
    interval: Interval | None


def is_proportion(values: Sequence[float]) -> bool:
    """Every per-document value is 0 or 1 (a proportion of successes)."""
    return len(values) > 0 and all(v == 0 or v == 1 for v in values)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for ``successes`` out of ``n``."""
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(max(0.0, float(ci.low)), min(1.0, float(ci.high)), WILSON)


def percentile_interval(replicates: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
                        ) -> Interval | None:
    """The central ``confidence`` percentile interval of bootstrap replicates (non-finite ones left out)."""
    import numpy as np

    arr = np.asarray(replicates, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return None
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(arr, [tail, 100 - tail])
    return Interval(float(lo), float(hi), PERCENTILE)


def mean_interval(values: Sequence[float], *, iters: int = 1000, seed: int = 1234,
                  confidence: float = CONFIDENCE) -> Interval | None:
    """The interval of a per-document mean: Wilson for 0/1 values, else a seeded BCa bootstrap.

    None when undefined: a non-finite value, or fewer than 2 documents for the bootstrap."""
    if not values or not all(math.isfinite(v) for v in values):
        return None
    if is_proportion(values):
        return wilson(int(sum(values)), len(values), confidence)
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if arr.size < 2 or iters < 2:
        return None
    if np.ptp(arr) == 0:  # every document scored the same: no spread to resample
        return Interval(float(arr[0]), float(arr[0]), PERCENTILE)
    from scipy.stats import bootstrap

    # BCa's jackknife is O(n²) (3 s at n = 20 000); past BCA_MAX_N its correction is negligible
    method = "BCa" if arr.size <= BCA_MAX_N else "percentile"
    batch = max(1, 4_000_000 // arr.size)  # bounds the resample / jackknife matrices' memory
    res = bootstrap((arr,), np.mean, n_resamples=iters, batch=batch, vectorized=True, method=method,
                    confidence_level=confidence, rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if method == "BCa" and math.isfinite(lo) and math.isfinite(hi):
        return Interval(lo, hi, BCA)
    return percentile_interval(res.bootstrap_distribution, confidence)


def group_interval(values: Sequence[float], sizes: Sequence[int], methods: Sequence[str | None],
                   confidence: float = CONFIDENCE) -> Interval | None:
    """A size-weighted group of proportions is one proportion: Wilson on the pooled successes.
    None unless every member's interval is Wilson (the caller then keeps its own interval)."""
    if not values or any(m != WILSON for m in methods):
        return None
    n = sum(sizes)
    successes = round(sum(v * s for v, s in zip(values, sizes, strict=True)))
    return wilson(successes, n, confidence)


def estimate_of(score: object) -> BootstrapEstimate:
    """A corpus score's own bootstrap (``stderr``, percentile ``ci_low``/``ci_high``: sacrebleu, jiwer)."""
    se, lo, hi = (getattr(score, k, None) for k in ("stderr", "ci_low", "ci_high"))
    interval = Interval(float(lo), float(hi), PERCENTILE) if lo is not None and hi is not None else None
    return BootstrapEstimate(se, interval)
