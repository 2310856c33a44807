"""Ranking metrics of the hallucination detector's report (benchmarks/train_hallucination.py): PR-AUC at the
natural base rate and with the hallucinated rows subsampled to a traffic-like share."""

from __future__ import annotations

from typing import Any

import numpy as np

RATES = (0.2, 0.1)


def pr_auc_at_rate(y: np.ndarray, p: np.ndarray, rate: float, seed: int, reps: int = 200) -> float | None:
    """Mean PR-AUC when the positives are subsampled (seeded) to ``rate`` of the rows — the balanced
    validation sets at a traffic-like hallucination share, where "2× the base rate" is reachable."""
    from sklearn.metrics import average_precision_score

    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = round(rate / (1 - rate) * len(neg))
    if k < 1 or k > len(pos):
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        idx = np.concatenate([neg, rng.choice(pos, k, replace=False)])
        vals.append(average_precision_score(y[idx], p[idx]))
    return float(np.mean(vals))


def scores_entry(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, Any]:
    """PR-AUC at the natural base rate and with the positives subsampled to each of ``RATES``; ROC-AUC."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"rows": len(y), "base_rate": float(y.mean()), "pr_auc": float(average_precision_score(y, p)),
            "roc_auc": float(roc_auc_score(y, p)),
            **{f"pr_auc_at_{r}": pr_auc_at_rate(y, p, r, seed) for r in RATES}}
