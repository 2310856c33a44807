"""Drift statistics computed from merged summaries alone (no raw values): what a Spark run can compute for
a window of any size, next to evidently's tests on the bounded reservoir.

From the fixed-edge histograms of ``Summary.numeric`` (edges at the reference's quantiles, plus an underflow
and an overflow bin) and the exact category counts of ``Summary.categories``:

- ``psi``: population stability index over the histogram bins (zero shares filled as evidently fills them);
- ``jensenshannon``: Jensen–Shannon distance of the bin shares (natural log, as evidently);
- ``wasserstein``: Wasserstein-1 distance of the binned values (each bin at its midpoint; the outer bins
  between the observed min/max and the outer edge), divided by the reference's standard deviation (the
  "normed" distance evidently uses);
- ``chisquare``: the p-value of the chi-square test of the current category counts against the reference's
  shares (evidently's ``chisquare`` test; exact: the counts are exact).

evidently bins numeric columns differently (Sturges' rule on the pooled raw values), so PSI and JS agree with
its values only within a tolerance, measured in ``tests/monitor/test_spark_histdrift.py`` and docs/scale.md;
the Wasserstein distance differs by at most the binning error; chi-square p-values are equal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.monitor.summary import Summary

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.summary import NumericState

NULL_KEY = "<null>"  # how Summary.update counts missing categories (not a category for the tests)


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    """evidently's ``get_binned_data(feel_zeroes=True)``: zero shares → a small positive share."""
    p = p.astype(float).copy()
    nonzero = p[p != 0]
    if nonzero.size:
        low = nonzero.min()
        p[p == 0] = low / 10**6 if low <= 0.0001 else 0.0001
    return p


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two count vectors over the same bins."""
    r = _fill_zeroes(np.asarray(reference, float) / max(float(np.sum(reference)), 1.0))
    c = _fill_zeroes(np.asarray(current, float) / max(float(np.sum(current)), 1.0))
    return float(np.sum((r - c) * np.log(r / c)))


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log) of two count vectors over the same bins."""
    from scipy.spatial import distance

    r = np.asarray(reference, float) / max(float(np.sum(reference)), 1.0)
    c = np.asarray(current, float) / max(float(np.sum(current)), 1.0)
    return float(distance.jensenshannon(r, c, np.e))


def _midpoints(edges: tuple[float, ...], lo: float, hi: float) -> np.ndarray:
    bounds = np.array([min(lo, edges[0]) if edges else lo, *edges, max(hi, edges[-1]) if edges else hi], float)
    return (bounds[:-1] + bounds[1:]) / 2


def wasserstein_normed(ref: NumericState, cur: NumericState, edges: tuple[float, ...]) -> float:
    """Wasserstein-1 of the binned values / the reference's (population) standard deviation."""
    from scipy import stats

    if not ref.n or not cur.n:
        return math.nan
    mids = _midpoints(edges, min(ref.min, cur.min), max(ref.max, cur.max))
    mean = ref.total / ref.n
    std = math.sqrt(max(ref.total_sq / ref.n - mean * mean, 0.0))
    d = stats.wasserstein_distance(mids, mids, np.asarray(ref.hist, float), np.asarray(cur.hist, float))
    return float(d / max(std, 0.001))


def chisquare_p(reference: dict[str, int], current: dict[str, int]) -> float:
    """p-value of the chi-square test of ``current`` counts against ``reference`` shares (evidently's)."""
    from scipy.stats import chisquare

    keys = sorted({*reference, *current} - {NULL_KEY})
    n_ref = sum(reference.get(k, 0) for k in keys) + reference.get(NULL_KEY, 0)
    n_cur = sum(current.get(k, 0) for k in keys) + current.get(NULL_KEY, 0)
    if not keys or not n_ref or not n_cur:
        return math.nan
    k_norm = n_cur / n_ref
    f_exp = np.array([reference.get(k, 0) * k_norm for k in keys], float)
    f_obs = np.array([current.get(k, 0) for k in keys], float)
    if not math.isclose(f_exp.sum(), f_obs.sum(), rel_tol=1e-8):  # nulls on one side only: scipy refuses
        f_exp = f_exp * (f_obs.sum() / f_exp.sum()) if f_exp.sum() else f_exp
    with np.errstate(divide="ignore", invalid="ignore"):  # a category absent from the reference: inf, p = 0
        return float(chisquare(f_obs, f_exp)[1])


PREFIX = "drift_hist"  # window metrics ``drift_hist/<stat>/<column>`` (usable in alert rules)


def summary_drift(reference: Summary, current: Summary) -> dict[str, float]:
    """``drift_hist/<stat>/<column>`` for every numeric and categorical column of two summaries (same spec);
    NaN where either side has no value of the column (the key stays: an alert rule on it sees "missing")."""
    if reference.spec != current.spec:
        raise ValueError("summaries built from different specs")
    out: dict[str, float] = {}
    for col, edges in current.spec.numeric.items():
        r, c = reference.numeric[col], current.numeric[col]
        both = bool(r.n and c.n)
        out[f"{PREFIX}/psi/{col}"] = psi(np.array(r.hist), np.array(c.hist)) if both else math.nan
        out[f"{PREFIX}/jensenshannon/{col}"] = (jensenshannon(np.array(r.hist), np.array(c.hist)) if both
                                                else math.nan)
        out[f"{PREFIX}/wasserstein/{col}"] = wasserstein_normed(r, c, edges)
    for col in current.spec.categorical:
        out[f"{PREFIX}/chisquare/{col}"] = chisquare_p(reference.categories.get(col, {}),
                                                       current.categories.get(col, {}))
    return out


_CACHE: list[Any] = []  # [reference frame, spec, its summary]: a fixed reference is summarised once per run


def window_drift(reference: pd.DataFrame, current: Summary) -> dict[str, float]:
    """A window's histogram drift against the reference *rows* the executors hand ``detect`` (the fixed or
    file reference: all of it; ``reference.kind: previous``: the previous window's drift sample, i.e. the whole
    window while it has at most ``SAMPLE_ROWS`` records), binned on the run's summary spec. Only the spec's
    columns the reference rows hold are compared (``previous``: the drift plan's columns)."""
    from dataclasses import replace

    spec = current.spec
    if _CACHE and _CACHE[0] is reference and _CACHE[1] == spec:
        ref = _CACHE[2]
    else:
        ref = Summary.zero(replace(spec, sample=())).update(reference)
        _CACHE[:] = [reference, spec, ref]
    cur = Summary(ref.spec, current.count, current.numeric, current.categories, None)
    keep = set(reference.columns)
    return {k: v for k, v in summary_drift(ref, cur).items() if k.split("/", 2)[2] in keep}
