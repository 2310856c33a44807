"""The vectorised classification bootstrap equals the per-resample sklearn reports it replaced."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalmon.core.results import TaskResult
from evalmon.metrics.ranking import bootstrap_metrics, report_from_items

TOL = 1e-12


def _per_resample(items: list[Any], resamples: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """The previous implementation: one ``report_from_items`` (sklearn) per resample."""
    out: dict[str, list[float]] = {}
    for row in resamples:
        for m, v in report_from_items([items[i] for i in row], 10, labels).metrics.items():
            out.setdefault(m, []).append(math.nan if v is None else float(v))
    return {m: np.asarray(v) for m, v in out.items()}


def _assert_equal(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> None:
    assert set(old) == set(new)
    for m in old:
        assert (np.isnan(old[m]) == np.isnan(new[m])).all(), m  # the same replicates are undefined
        ok = ~np.isnan(old[m])
        assert np.max(np.abs(old[m][ok] - new[m][ok]), initial=0.0) <= TOL, m


def _items(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> list[Any]:
    return [[int(a), [float(v) for v in p], threshold] for a, p in zip(y, proba, strict=True)]


@pytest.mark.parametrize(("k", "n", "decimals", "threshold"),
                         [(2, 6, 1, 0.5), (2, 30, 2, 0.3), (3, 25, 2, 0.5), (3, 40, 6, 0.5), (5, 30, 1, 0.5)])
def test_random_data_equals_per_resample_sklearn(k: int, n: int, decimals: int, threshold: float) -> None:
    rng = np.random.default_rng(k * 100 + n)
    y = rng.integers(0, k, n)
    proba = np.round(rng.dirichlet(np.ones(k), n), decimals)  # coarse rounding → many tied scores
    proba = proba / proba.sum(axis=1, keepdims=True)
    # tiny n: resamples with one class only (undefined AUCs) and zero-weight bins/thresholds occur
    resamples = np.random.default_rng(1).integers(0, n, size=(60, n))
    labels = [str(j) for j in range(k)]
    items = _items(y, proba, threshold)
    new = bootstrap_metrics(items, resamples, 10, labels)
    _assert_equal(_per_resample(items, resamples, labels), new)
    if n <= 6:
        assert np.isnan(new["pr_auc"]).any()  # the one-class case was exercised


def test_real_pubmedqa_rows_equal_per_resample_sklearn(benchmarks_dir: Path) -> None:
    from evalmon.tasks.base import TaskOptions, build_task

    task = build_task("pubmedqa_cls", TaskOptions(data_dir=benchmarks_dir))
    gold = np.asarray([d.label for d in task.docs()])
    assert len(gold) >= 500 and set(gold.tolist()) == {0, 1, 2}
    rng = np.random.default_rng(7)  # label scores as the task makes them: a softmax of loglikelihoods
    lls = rng.normal(-2.0, 1.0, size=(len(gold), 3)) + 1.5 * np.eye(3)[gold]
    items = [task.score(d, [type("R", (), {"logprob": float(v)})() for v in row])["accuracy"]
             for d, row in zip(task.docs(), np.round(lls, 1), strict=True)]
    resamples = np.random.default_rng(1234).integers(0, len(items), size=(40, len(items)))
    _assert_equal(_per_resample(items, resamples, list(task.labels)), bootstrap_metrics(items, resamples, 10,
                                                                                        list(task.labels)))


def test_task_finish_stderr_matches_the_per_resample_loop(benchmarks_dir: Path) -> None:
    """``finish`` draws the same seeded resamples as before, so every stderr and CI is unchanged."""
    from evalmon.metrics.intervals import percentile_interval
    from evalmon.tasks.base import TaskOptions, build_task

    task = build_task("pubmedqa_cls", TaskOptions(data_dir=benchmarks_dir, extra={"bootstrap_iters": 30}))
    rng = np.random.default_rng(3)
    items = [[d.label, list(rng.dirichlet(np.ones(3))), 0.5] for d in task.docs()]
    blank = TaskResult(name="pubmedqa_cls", n=len(items), num_fewshot=0, source="", config_hash="", metrics={})
    result = task.finish(blank, {m: items for m in task.metrics}, seed=1234)
    resamples = np.random.default_rng(1234).integers(0, len(items), size=(30, len(items)))
    old = _per_resample(items, resamples, list(task.labels))
    assert set(result.metrics) == set(task.metrics)
    for m, value in result.metrics.items():
        vals = old[m][np.isfinite(old[m])]
        assert value.stderr == pytest.approx(float(np.std(vals, ddof=1)), abs=TOL), m
        assert (value.ci_low, value.ci_high) == pytest.approx(percentile_interval(list(vals)).bounds, abs=TOL), m
