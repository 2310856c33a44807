"""Classification metrics from label scores, via scikit-learn.

Binary: ``y_true`` in {0, 1}, ``score`` = P(positive). Multi-class: ``proba`` [n, k] rows summing to
1, one-vs-rest (macro) for PR-AUC / ROC-AUC. Undefined values (all-one-class labels) are reported as
``None`` with the reason, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalmon.core import registry


@dataclass
class ClassificationReport:
    n: int
    positive_rate: float | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why
    curves: dict[str, Any] = field(default_factory=dict)  # pr / reliability points for plots


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """ECE with equal-width bins over [0, 1] (weighted |accuracy − confidence|) + reliability points."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    ece, points = 0.0, []
    for b in range(bins):
        mask = idx == b
        if not mask.any():
            continue
        conf, acc, w = float(p[mask].mean()), float(y[mask].mean()), float(mask.mean())
        ece += w * abs(acc - conf)
        points.append({"bin": b, "confidence": conf, "accuracy": acc, "weight": w})
    return ece, points


def binary_report(y_true: Sequence[int], score: Sequence[float], threshold: float = 0.5,
                  bins: int = 10) -> ClassificationReport:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        precision_recall_curve,
        roc_auc_score,
    )

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(score, dtype=float)
    rep = ClassificationReport(n=len(y), positive_rate=float(y.mean()) if len(y) else None)
    pred = (p >= threshold).astype(int)
    rep.metrics["f1"] = float(f1_score(y, pred, zero_division=0.0))
    rep.metrics["accuracy"] = float((pred == y).mean()) if len(y) else None
    rep.metrics["brier"] = float(brier_score_loss(y, p)) if len(y) else None
    ece, points = expected_calibration_error(y, p, bins)
    rep.metrics["ece"] = ece
    rep.curves["reliability"] = points
    if len(set(y.tolist())) < 2:
        why = "labels contain one class only" if len(y) else "no examples"
        for m in ("pr_auc", "roc_auc"):
            rep.metrics[m] = None
            rep.undefined[m] = why
        return rep
    rep.metrics["pr_auc"] = float(average_precision_score(y, p))
    rep.metrics["roc_auc"] = float(roc_auc_score(y, p))
    prec, rec, _ = precision_recall_curve(y, p)
    step = max(1, len(prec) // 200)
    rep.curves["pr"] = {"precision": prec[::step].tolist(), "recall": rec[::step].tolist()}
    return rep


def multiclass_report(y_true: Sequence[int], proba: Sequence[Sequence[float]], labels: Sequence[str],
                      bins: int = 10) -> ClassificationReport:
    """One-vs-rest macro PR-AUC / ROC-AUC; argmax accuracy and macro F1; top-label ECE; multi-class Brier."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    P = np.asarray(proba, dtype=float)
    k = len(labels)
    rep = ClassificationReport(n=len(y), positive_rate=None)
    pred = P.argmax(axis=1) if len(y) else np.array([], dtype=int)
    rep.metrics["accuracy"] = float((pred == y).mean()) if len(y) else None
    rep.metrics["f1_macro"] = float(f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0.0))
    onehot = np.eye(k)[y] if len(y) else np.zeros((0, k))
    rep.metrics["brier"] = float(((P - onehot) ** 2).sum(axis=1).mean()) if len(y) else None
    conf = P.max(axis=1) if len(y) else np.array([])
    ece, points = expected_calibration_error((pred == y).astype(int), conf, bins)
    rep.metrics["ece"] = ece
    rep.curves["reliability"] = points
    present = [c for c in range(k) if 0 < (y == c).sum() < len(y)]
    if not present:
        for m in ("pr_auc", "roc_auc"):
            rep.metrics[m] = None
            rep.undefined[m] = "labels contain one class only"
        return rep
    rep.metrics["pr_auc"] = float(np.mean([average_precision_score(y == c, P[:, c]) for c in present]))
    rep.metrics["roc_auc"] = float(np.mean([roc_auc_score(y == c, P[:, c]) for c in present]))
    if len(present) < k:
        rep.undefined["classes_without_both_outcomes"] = ",".join(labels[c] for c in range(k) if c not in present)
    return rep


# --------------------------------------------------------------------------- bootstrap, vectorised
def bootstrap_metrics(items: Sequence[Sequence[Any]], resamples: np.ndarray, bins: int = 10,
                      labels: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``report_from_items`` of every resample at once: ``resamples`` [R, n] holds document indices; the result
    maps each metric to R values (NaN where the resample leaves it undefined).

    Equal to calling ``report_from_items([items[i] for i in row])`` per row up to float rounding (≤ 1e-12,
    checked in tests/metrics/test_ranking_bootstrap.py), ~100× faster: the scores are sorted once, and a
    resample is its per-document counts (a weighted copy of the corpus), so confusion counts, per-bin sums and
    the ranking curves (average precision; ROC-AUC as the tie-aware Mann-Whitney statistic) are weighted
    cumulative sums over the sorted scores — what sklearn computes per resample with ``sample_weight``.
    """
    y = np.asarray([int(it[0]) for it in items], dtype=int)
    P = np.asarray([list(it[1]) for it in items], dtype=float)
    n, k = P.shape
    idx = np.asarray(resamples, dtype=np.intp)
    R = idx.shape[0]
    counts = np.zeros((R, n))  # counts[r, i]: how often document i is in resample r
    np.add.at(counts, (np.repeat(np.arange(R), idx.shape[1]), idx.ravel()), 1.0)
    m = float(idx.shape[1])
    out: dict[str, np.ndarray] = {}
    if k == 2:
        threshold = float(items[0][2]) if len(items[0]) > 2 else 0.5
        score = P[:, 1]
        pred = (score >= threshold).astype(int)
        tp, pred_pos, true_pos = counts @ (pred & y), counts @ pred, counts @ y
        out["f1"] = _f1(tp, pred_pos, true_pos)
        out["accuracy"] = (pred[idx] == y[idx]).mean(axis=1)
        out["brier"] = ((y[idx] - score[idx]) ** 2).mean(axis=1)
        out["ece"] = _ece(counts, m, y, score, bins)
        both = (true_pos > 0) & (true_pos < m)
        out["pr_auc"], out["roc_auc"] = (np.where(both, v, np.nan) for v in _ranking(counts, y == 1, score))
        return out
    pred = P.argmax(axis=1)
    correct = (pred == y).astype(int)
    out["accuracy"] = correct[idx].mean(axis=1)
    f1_sum = np.zeros(R)
    for c in range(k):  # sklearn: the mean over labels=range(k) of the per-class F1 (0 where undefined)
        tp, pred_c, true_c = counts @ ((pred == c) & (y == c)), counts @ (pred == c), counts @ (y == c)
        f1_sum = f1_sum + _f1(tp, pred_c, true_c)
    out["f1_macro"] = f1_sum / k
    out["brier"] = ((P - np.eye(k)[y]) ** 2).sum(axis=1)[idx].mean(axis=1)
    out["ece"] = _ece(counts, m, correct, P.max(axis=1), bins)
    ap_sum, auc_sum, present = np.zeros(R), np.zeros(R), np.zeros(R)
    for c in range(k):  # one-vs-rest over the classes with both outcomes in the resample
        true_c = counts @ (y == c)
        both = (true_c > 0) & (true_c < m)
        ap, auc = _ranking(counts, y == c, P[:, c])
        ap_sum, auc_sum = ap_sum + np.where(both, ap, 0.0), auc_sum + np.where(both, auc, 0.0)
        present += both
    with np.errstate(invalid="ignore", divide="ignore"):
        out["pr_auc"], out["roc_auc"] = ap_sum / present, auc_sum / present  # NaN where no class qualifies
    return out


def _f1(tp: np.ndarray, pred_pos: np.ndarray, true_pos: np.ndarray) -> np.ndarray:
    denom = true_pos + pred_pos
    return np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)  # zero_division=0.0


def _ece(counts: np.ndarray, m: float, y: np.ndarray, p: np.ndarray, bins: int) -> np.ndarray:
    """``expected_calibration_error`` per resample from per-bin weighted sums (same bins, same bin order)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    member = np.eye(bins)[b]  # [n, bins]
    w = counts @ member
    conf_sum, acc_sum = counts @ (member * p[:, None]), counts @ (member * y[:, None])
    safe = np.where(w > 0, w, 1.0)
    gap = np.where(w > 0, (w / m) * np.abs(acc_sum / safe - conf_sum / safe), 0.0)
    ece = np.zeros(counts.shape[0])
    for j in range(bins):  # summed bin by bin, as the scalar version does
        ece = ece + gap[:, j]
    return ece


def _ranking(counts: np.ndarray, positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC per resample (sklearn's definitions with ``sample_weight=counts``).

    Rows where the resample lacks positives or negatives come out as garbage/NaN; the caller masks them.
    """
    order = np.argsort(score, kind="mergesort")[::-1]  # sklearn's _binary_clf_curve order
    s = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]  # tied scores form one threshold
    pos_w = np.add.reduceat(counts[:, order] * positive[order], starts, axis=1)  # [R, groups]
    all_w = np.add.reduceat(counts[:, order], starts, axis=1)
    neg_w = all_w - pos_w
    tps, fps = np.cumsum(pos_w, axis=1), np.cumsum(neg_w, axis=1)
    n_pos, n_neg = tps[:, -1:], fps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        ps = tps + fps
        precision = np.where(ps > 0, tps / np.where(ps > 0, ps, 1.0), 0.0)
        recall = tps / n_pos
        step = np.diff(recall, axis=1, prepend=0.0)
        ap = np.sum((step * precision)[:, ::-1], axis=1)  # sklearn sums from the lowest threshold up
        auc = (pos_w * (n_neg - fps + 0.5 * neg_w)).sum(axis=1) / (n_pos[:, 0] * n_neg[:, 0])
    return ap, auc


# --------------------------------------------------------------------------- per-document items
def report_from_items(items: Sequence[Sequence[Any]], bins: int = 10,
                      labels: Sequence[str] | None = None) -> ClassificationReport:
    """The report for per-document items ``[gold_index, [p_0, …, p_k-1], threshold]`` (what the
    ``classification`` tasks store): two classes → binary with P(class 1) as the score, else OvR."""
    y = [int(it[0]) for it in items]
    proba = np.asarray([list(it[1]) for it in items], dtype=float)
    k = proba.shape[1] if proba.ndim == 2 and len(items) else 2
    if k == 2:
        threshold = float(items[0][2]) if items and len(items[0]) > 2 else 0.5
        return binary_report(y, proba[:, 1] if len(items) else [], threshold=threshold, bins=bins)
    return multiclass_report(y, proba, list(labels or [str(j) for j in range(k)]), bins=bins)


def metric_from_items(metric: str) -> Any:
    """A corpus statistic ``items -> float`` for one metric (NaN where undefined)."""

    def compute(items: list[Any]) -> float:
        value = report_from_items(items).metrics.get(metric)
        return float("nan") if value is None else float(value)

    compute.__name__ = f"classification_{metric}"
    return compute


CLASSIFICATION_METRICS = ("pr_auc", "roc_auc", "f1", "f1_macro", "accuracy", "ece", "brier")


def _register() -> None:
    """Corpus statistics for paired gates (``evalmon.metrics.paired``)."""
    for name in CLASSIFICATION_METRICS:
        registry.metrics.add(name, metric_from_items(name))


_register()
