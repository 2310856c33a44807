"""Threshold selection and validation metrics of the detectors (benchmarks/train_detectors.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from detector_data import Example

from evalmon.monitor.detectors import Detector


def refusal_kind_report(rows: list[Example], x: np.ndarray, p_signal: np.ndarray, det: Detector,
                        val: np.ndarray) -> dict[str, Any]:
    """Recall by refusal kind (full / partial / soft, benchmarks/detector_data.py) through the signal and of the
    classifier alone, and false refusals on ordinary answers, on the permissive validation split."""
    y = np.array([r.label for r in rows])
    kind = np.array([r.kind for r in rows])
    src = np.array([r.source for r in rows])
    p_clf = det.predict_proba_vectors(x)
    out: dict[str, Any] = {}
    ordinary = np.isin(src, ("mt_bench", "truthfulqa", "gsm8k", "smollm2_generated"))
    for tag, m in [("full refusals", kind == "full"), ("partial refusals", kind == "partial"),
                   ("soft refusals", (kind == "soft") & (y == 1)), ("ordinary answers", ordinary & (y == 0)),
                   ("jailbroken / harmful answers (GPTFuzz, HarmBench)",
                    (kind == "answer") & np.isin(src, ("gptfuzz", "harmbench")))]:
        m = m & val
        out[f"{tag}, validation split: signal"] = metrics(y[m], p_signal[m], det.threshold)
        out[f"{tag}, validation split: classifier alone"] = metrics(y[m], p_clf[m], det.threshold)
    return out


def threshold_for(scores_neg: np.ndarray, target_fpr: float) -> float:
    """Lowest threshold t with mean(scores_neg >= t) <= target_fpr."""
    s = np.sort(scores_neg)[::-1]
    k = int(np.floor(target_fpr * len(s)))  # at most k negatives may reach t
    return float(np.nextafter(s[k], 1.0)) if k < len(s) else float(s[-1])


def metrics(y: np.ndarray, p: np.ndarray, thr: float) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    f = p >= thr
    out: dict[str, float] = {"n": len(y), "positives": int(y.sum())}
    if 0 < y.sum() < len(y):
        out["pr_auc"] = round(float(average_precision_score(y, p)), 4)
        out["roc_auc"] = round(float(roc_auc_score(y, p)), 4)
    if y.sum():
        out["recall"] = round(float(f[y == 1].mean()), 4)
    if (y == 0).sum():
        out["fpr"] = round(float(f[y == 0].mean()), 4)
    if f.sum():
        out["precision"] = round(float(y[f].mean()), 4)
    return out

