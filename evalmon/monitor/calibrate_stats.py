"""A rule's window statistic, as ``evalmon monitor calibrate`` resamples it (``evalmon.monitor.calibrate``).

``window_stat``: how a metric (``rate/``, ``share/``, ``null_rate/``, ``coverage/``, ``mean/``, ``std/``, ``max/``,
``pNN/``, ``records``) is computed from a window's records — as the monitor computes it — over a per-record
array whose rows a resampled window draws, or why it cannot be calibrated. ``distance_stat``: ``drift/<embedding
col>`` under evidently's ``distance`` method (a window's vectors drawn from the reference records the embedding
signal's sample left out; see the ``calibrate`` module docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from evalmon.monitor.alerts import metric_column
from evalmon.monitor.summary import Summary, SummarySpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class WindowStat:
    """A rule's window statistic over a per-record array ``x`` (rows are resampled from it)."""

    kind: str  # "share" | "location" | "records" | "distance"
    x: np.ndarray
    fn: Callable[[np.ndarray], float]
    label: str  # what an injected event is, in words
    draw: Callable[[int, np.random.Generator], float] | None = None  # "distance": a window of n records


def _nanmean(v: np.ndarray) -> float:
    finite = v[~np.isnan(v)]
    return float(finite.mean()) if finite.size else math.nan


def _hist_quantile(reference: pd.DataFrame, column: str, q: float) -> Callable[[np.ndarray], float]:
    """The window quantile as the monitor logs it: the reference-fitted histogram of ``summary.Summary``."""
    spec = SummarySpec.fit(reference, [column])
    edges = np.asarray(spec.numeric[column], dtype=float)

    def stat(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        s = Summary.zero(spec)
        st = s.numeric[column]
        if finite.size:
            st.n, st.min, st.max = int(finite.size), float(finite.min()), float(finite.max())
            st.hist = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1).tolist()
        return s.quantile(column, q)

    return stat


def _std(v: np.ndarray) -> float:
    finite = v[~np.isnan(v)]
    return float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def _max(v: np.ndarray) -> float:
    finite = v[~np.isnan(v)]
    return float(finite.max()) if finite.size else math.nan


def window_stat(reference: pd.DataFrame, metric: str) -> WindowStat | str:
    """How ``metric`` is computed from a window's records, or why it cannot be calibrated."""
    import pandas as pd

    if metric == "records":
        return WindowStat("records", np.zeros(len(reference)), lambda v: float(v.size), "traffic per window")
    stat, _, rest = metric.partition("/")
    column = metric_column(metric)
    if column is None:
        return f"{metric} is not computed per record (drift tests, quality checks): set its value by hand"
    if column not in reference.columns:
        return f"the reference has no column {column!r} (is its signal configured?)"
    if stat == "share":
        value = rest.split("/", 1)[1] if "/" in rest else ""
        text = reference[column].astype("string")
        top = text.value_counts(dropna=True).index[:10]
        hit = ~text.isin(top) if value == "_other" else (text == value)
        x = hit.fillna(value == "_other").to_numpy(dtype=float)
        return WindowStat("share", x, lambda v: float(v.mean()) if v.size else math.nan, f"records with {column} = {value}")
    if stat == "distinct":
        return f"{metric} counts distinct values: set its value by hand"
    values = pd.to_numeric(reference[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if stat in ("null_rate", "coverage"):
        x = np.isnan(values).astype(float)
        if stat == "null_rate":
            return WindowStat("share", x, lambda v: float(v.mean()) if v.size else math.nan, f"records without {column}")
        return WindowStat("share", 1.0 - x, lambda v: float(v.mean()) if v.size else math.nan,
                     f"records {column} could not score")
    if not np.isfinite(values).any():
        return f"empty: no reference record has a value in {column} (the signal scored none)"
    if stat == "rate":
        return WindowStat("share", values, _nanmean, f"records flagged {column}")
    if stat == "mean":
        return WindowStat("location", values, _nanmean, f"{column} of every record")
    if stat == "std":
        return WindowStat("location", values, _std, f"{column} of every record")
    if stat == "max":
        return WindowStat("location", values, _max, f"{column} of every record")
    q = int(stat[1:]) / 100
    return WindowStat("location", values, _hist_quantile(reference, column, q), f"{column} of every record")


def centroid_distance(window: np.ndarray, reference: np.ndarray) -> float:
    """evidently's ``DistanceDriftMethod`` score (Euclidean, no PCA): the distance between the two means."""
    return float(np.linalg.norm(window.mean(axis=0) - reference.mean(axis=0)))


def vector_rows(values: Sequence[Any]) -> np.ndarray:
    rows = [np.asarray(v, dtype=float) for v in values if isinstance(v, np.ndarray | list) and len(v)]
    return np.vstack(rows) if rows else np.empty((0, 0))


def distance_stat(reference: pd.DataFrame, column: str, *, population: np.ndarray | None = None,
                  sample_size: Callable[[int], int] | None = None) -> WindowStat | str:
    """``drift/<embedding col>`` under evidently's ``distance`` method, as the monitor computes it (see the
    module docstring). ``reference[column]``: the vectors the monitor compares every window with (the
    embedding signal's sample of the reference); ``population``: vectors of reference records that sample
    left out — a window's ``sample_size(n)`` vectors are drawn from them. Without a population (the signal
    embedded every reference record) a window is drawn from the reference's vectors and held out of it."""
    m = vector_rows(reference[column].tolist()) if column in reference.columns else np.empty((0, 0))
    if len(m) < 4:
        return f"empty: fewer than 4 reference records have a vector in {column}"
    size = sample_size or (lambda n: n)
    if population is not None and len(population) >= 2 and population.shape[1] == m.shape[1]:
        centre = m.mean(axis=0)

        def draw(n: int, rng: np.random.Generator) -> float:
            return float(np.linalg.norm(population[rng.integers(0, len(population), max(size(n), 1))].mean(axis=0)
                                        - centre))
    else:
        total = m.sum(axis=0)

        def draw(n: int, rng: np.random.Generator) -> float:
            k = min(max(size(n), 1), len(m) - 2)
            part = m[rng.choice(len(m), k, replace=False)].sum(axis=0)
            return float(np.linalg.norm(part / k - (total - part) / (len(m) - k)))

    return WindowStat("distance", np.arange(len(m), dtype=float), lambda v: math.nan, "", draw=draw)
