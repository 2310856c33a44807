"""Two-run statistics for compare/gate: paired tests on per-document outcomes, unpaired fallbacks, Holm.

* ``mcnemar_exact(b, c)`` — exact McNemar: two-sided binomial test of the discordant pairs against 1/2
  (``b`` = baseline right / candidate wrong, ``c`` = the reverse). Equals statsmodels'
  ``mcnemar(table, exact=True)`` and scipy's ``binomtest(b, b + c).pvalue``. Vectorised over arrays.
* ``paired_bootstrap_mean(a, b)`` — paired bootstrap of the mean difference ``mean(b - a)`` for
  continuous per-document scores (mc2, per-doc loglikelihoods): resample documents with replacement
  (the same indices for both runs), seeded. Two-sided p-value from the null-centred bootstrap
  distribution, ``(1 + #{|δ* − δ̂| ≥ |δ̂|}) / (B + 1)``; 95 % percentile interval for δ.
* ``paired_bootstrap_corpus(a, b, statistic)`` — the same for corpus metrics (BLEU, chrF, WER,
  perplexity) whose value is not a mean of per-doc scores: ``statistic`` recomputes the corpus value
  from a resampled list of per-document items (``SampleRecord.items[metric]``, e.g.
  ``[hypothesis, reference]``). A metric only has to register its function —
  ``registry.metrics.add("bleu", fn)`` in a module listed under the ``evalmon.metrics`` entry points
  (loaded on first lookup) — and compare/gate use it for every task reporting ``bleu``.
* ``holm(pvalues)`` — Holm step-down adjusted p-values (monotone, capped at 1); NaN stays NaN.
* Unpaired fallbacks, when per-document samples are missing: ``two_proportion_z`` (pooled, binary
  metrics from value and n) and ``welch_from_stderr`` (Welch–Satterthwaite t from value, stderr and n).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special  # not scipy.stats: importing it costs seconds on a busy CI runner

from evalmon.core import registry

T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]
CorpusStatistic = Callable[[Sequence[Any]], float]

DEFAULT_N_BOOT = 10_000  # per-sample means: vectorised, cheap
DEFAULT_N_BOOT_CORPUS = 1_000  # corpus statistics: one Python call per replicate
DEFAULT_SEED = 1234
Z95 = 1.959963984540054
_CHUNK_ELEMS = 2_000_000  # indices drawn per chunk (memory bound for large n)

def register_corpus_metric(name: str, fn: CorpusStatistic | None = None) -> Any:
    """Register ``fn(items) -> float`` computing corpus metric ``name`` from per-document items.

    ``items`` is a list of ``SampleRecord.items[name]`` (resampled, possibly with repeats). Usable as a
    decorator (``@register_corpus_metric("bleu")``) or a call; it registers in ``evalmon.core.registry.metrics``
    (entry-point group ``evalmon.metrics``), where a name taken by other code is a one-line error."""
    return registry.metrics.register(name) if fn is None else registry.metrics.add(name, fn)


def corpus_statistic(name: str) -> CorpusStatistic | None:
    """The registered statistic for corpus metric ``name`` (loading the ``evalmon.metrics`` entry points once)."""
    return registry.metrics.get(name) if name in registry.metrics else None


def derive_seed(seed: int, key: str) -> np.random.Generator:
    """A generator for one metric: reproducible from (seed, key), independent across keys."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


# --------------------------------------------------------------------------- paired tests
def mcnemar_exact(b: npt.ArrayLike, c: npt.ArrayLike) -> Any:
    """Two-sided exact McNemar p-value for discordant counts ``b`` and ``c`` (1.0 when b + c == 0)."""
    b_arr, c_arr = np.asarray(b), np.asarray(c)
    n = b_arr + c_arr
    safe_n = np.where(n == 0, 1, n)
    p = np.minimum(1.0, 2.0 * special.bdtr(np.minimum(b_arr, c_arr), safe_n, 0.5))
    p = np.where(n == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


@dataclass(frozen=True)
class PairedTest:
    """Outcome of one paired (or unpaired) two-run test; ``delta`` = candidate − baseline."""

    test: str  # mcnemar-exact | paired-bootstrap | paired-bootstrap-corpus | two-proportion-z | welch | none
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    detail: dict[str, Any]


def mcnemar_test(a: npt.ArrayLike, b: npt.ArrayLike) -> PairedTest:
    """Exact McNemar on paired binary outcomes (0/1) of baseline ``a`` and candidate ``b``.

    The interval is the normal approximation for the mean of the paired differences."""
    x, y = np.asarray(a, dtype=float) > 0.5, np.asarray(b, dtype=float) > 0.5
    n = int(x.size)
    worse = int(np.sum(x & ~y))  # baseline right, candidate wrong
    better = int(np.sum(~x & y))
    delta = (better - worse) / n if n else 0.0
    lo = hi = None
    if n > 1:
        d = y.astype(float) - x.astype(float)
        se = float(np.std(d, ddof=1)) / math.sqrt(n)
        lo, hi = delta - Z95 * se, delta + Z95 * se
    return PairedTest("mcnemar-exact", delta, lo, hi, mcnemar_exact(worse, better), n,
                      {"baseline_only_correct": worse, "candidate_only_correct": better})


def _bootstrap_p(boot: FloatArray, delta: float) -> float:
    """Two-sided p from the null-centred bootstrap distribution (add-one, never 0)."""
    extreme = np.abs(boot - delta) >= abs(delta) - 1e-12
    return float((1 + np.count_nonzero(extreme)) / (boot.size + 1))


def paired_bootstrap_mean(a: npt.ArrayLike, b: npt.ArrayLike, *, n_boot: int = DEFAULT_N_BOOT,
                          seed: int = DEFAULT_SEED, rng: np.random.Generator | None = None) -> PairedTest:
    """Paired bootstrap of ``mean(b) - mean(a)`` over documents (same resampled indices for both)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = int(d.size)
    if n == 0:
        return PairedTest("paired-bootstrap", 0.0, None, None, None, 0, {"n_boot": 0, "seed": seed})
    rng = rng or np.random.default_rng(seed)
    delta = float(d.mean())
    chunk = max(1, _CHUNK_ELEMS // n)
    parts = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        parts.append(d[idx].mean(axis=1))
    boot = np.concatenate(parts)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return PairedTest("paired-bootstrap", delta, float(lo), float(hi), _bootstrap_p(boot, delta), n,
                      {"n_boot": n_boot, "seed": seed})


def paired_bootstrap_corpus(a: Sequence[T], b: Sequence[T], statistic: Callable[[Sequence[T]], float], *,
                            n_boot: int = DEFAULT_N_BOOT_CORPUS, seed: int = DEFAULT_SEED,
                            rng: np.random.Generator | None = None) -> PairedTest:
    """Paired bootstrap of ``statistic(b) - statistic(a)``; ``a[i]`` and ``b[i]`` are the same document."""
    if len(a) != len(b):
        raise ValueError(f"paired items differ in length: {len(a)} vs {len(b)}")
    n = len(a)
    if n == 0:
        return PairedTest("paired-bootstrap-corpus", 0.0, None, None, None, 0, {"n_boot": 0, "seed": seed})
    rng = rng or np.random.default_rng(seed)
    delta = float(statistic(b)) - float(statistic(a))
    boot = np.empty(n_boot)
    for r in range(n_boot):
        idx = rng.integers(0, n, size=n)
        boot[r] = float(statistic([b[i] for i in idx])) - float(statistic([a[i] for i in idx]))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return PairedTest("paired-bootstrap-corpus", delta, float(lo), float(hi), _bootstrap_p(boot, delta), n,
                      {"n_boot": n_boot, "seed": seed})


# --------------------------------------------------------------------------- unpaired fallbacks
def two_proportion_z(p1: float, n1: int, p2: float, n2: int) -> PairedTest:
    """Pooled two-proportion z-test (baseline ``p1`` of ``n1``, candidate ``p2`` of ``n2``)."""
    delta = p2 - p1
    if n1 <= 0 or n2 <= 0:
        return PairedTest("two-proportion-z", delta, None, None, None, 0, {})
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se0 = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / n1 + 1 / n2))
    p = 1.0 if se0 == 0 else float(2 * special.ndtr(-abs(delta) / se0))
    se = math.sqrt(max(p1 * (1 - p1), 0.0) / n1 + max(p2 * (1 - p2), 0.0) / n2)  # unpooled, for the CI
    return PairedTest("two-proportion-z", delta, delta - Z95 * se, delta + Z95 * se, p, min(n1, n2),
                      {"n_baseline": n1, "n_candidate": n2})


def welch_from_stderr(m1: float, se1: float | None, n1: int, m2: float, se2: float | None, n2: int
                      ) -> PairedTest:
    """Welch's t-test from means, standard errors and sizes (None p-value without both stderrs)."""
    delta = m2 - m1
    if se1 is None or se2 is None or not (math.isfinite(se1) and math.isfinite(se2)) or n1 < 2 or n2 < 2:
        return PairedTest("none", delta, None, None, None, min(n1, n2), {"reason": "no stderr"})
    var = se1**2 + se2**2
    if var == 0:
        return PairedTest("welch", delta, delta, delta, 1.0 if delta == 0 else 0.0, min(n1, n2), {"df": None})
    df = var**2 / (se1**4 / (n1 - 1) + se2**4 / (n2 - 1)) if se1 or se2 else float(n1 + n2 - 2)
    t = delta / math.sqrt(var)
    q = float(special.stdtrit(df, 0.975))
    half = q * math.sqrt(var)
    return PairedTest("welch", delta, delta - half, delta + half, float(2 * special.stdtr(df, -abs(t))),
                      min(n1, n2), {"df": df, "n_baseline": n1, "n_candidate": n2})


# --------------------------------------------------------------------------- multiple testing
def holm(pvalues: Sequence[float | None] | npt.ArrayLike) -> FloatArray:
    """Holm step-down adjusted p-values; entries that are None/NaN are left out of the family (NaN)."""
    p = np.array([np.nan if v is None else v for v in np.asarray(pvalues, dtype=object).ravel()],
                 dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out

