"""The trained hallucination detector for responses without retrieved contexts (signal ``halludetect``).

A logistic regression (scikit-learn, trained by ``benchmarks/train_hallucination.py``; model card:
``docs/detectors/hallucination.md``) over the features of one (prompt, response) pair that the artifact
names (``feature_matrix``):

* ``STAT_FEATURES``: the cosine between the prompt's and the response's MiniLM embeddings (bundled
  all-MiniLM-L6-v2), the proxy-model uncertainty statistics of the response given its prompt
  (``uncertainty.py``: mean / min / p10 token log-prob, tail share, surprisal per character, log token count)
  and the log word count — v1;
* ``PMI_FEATURES`` (v2): the same response scored without its question (one more pass of the proxy model):
  how much the question made the answer more likely (pointwise mutual information: mean, first tokens,
  minimum, share of tokens made likelier) and the unconditioned mean log-prob;
* ``TEXT_FEATURES``: the share of words with digits / capitalised (compared, not in v2);
* ``response_embedding[i]``: the response's 384-d embedding (compared in v1, did not transfer).

The artifact is portable JSON (default ``detectors/halludetect-v1.json``; v2 loadable with ``artifact:
builtin:halludetect-v2.json`` — better within each held-out set, worse pooled, 1.6× the cost: model card):
feature names, standardisation, coefficients, intercept, imputation values, the threshold chosen on the
training split's out-of-fold predictions, the training data and validation figures — never a pickle.
Columns: ``halludetect.score`` (probability of a hallucinated answer) and ``halludetect.flag`` (score ≥
threshold), NaN for records not scored (empty response, or not in the proxy model's ``sample_rate``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError
from evalmon.core.records import PROMPT, RESPONSE
from evalmon.monitor.signals.base import BaseSignal, text_series
from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder
from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal

ARTIFACT = "halludetect-v1.json"  # the default (v2: one more proxy pass, not clearly better — model card)
STAT_FEATURES = ("mean_logprob", "min_logprob", "p10_logprob", "tail_share", "surprisal_per_char",
                 "log_n_tokens", "log_words", "qa_cosine")
# v2: the response's token log-probs without its question (an empty user turn) — pointwise mutual information
PMI_FEATURES = ("pmi_mean", "pmi_first", "pmi_min", "pmi_positive_share", "uncond_mean_logprob")
TEXT_FEATURES = ("digit_words", "capital_words")
PMI_FIRST_TOKENS = 8


def stat_features(stats: pd.DataFrame, prefix: str, prompts_vec: np.ndarray, resp_vec: np.ndarray,
                  responses: Sequence[str]) -> np.ndarray:
    """The non-embedding features, columns in ``STAT_FEATURES`` order (NaN where a statistic is missing)."""
    n = len(responses)
    cols = [stats[f"{prefix}.{s}"].to_numpy(dtype=float) for s in STAT_FEATURES[:5]]
    cols.append(np.log1p(stats[f"{prefix}.n_tokens"].to_numpy(dtype=float)))
    cols.append(np.log1p(np.array([len(r.split()) for r in responses], dtype=float)))
    cols.append(np.einsum("ij,ij->i", prompts_vec, resp_vec) if n else np.zeros(0))
    return np.stack(cols, axis=1) if n else np.zeros((0, len(STAT_FEATURES)))


def pmi_features(cond: Sequence[float], uncond: Sequence[float]) -> dict[str, float]:
    """How much the question made the answer more likely: per-token log-prob with minus without it (token by
    token where both tokenise alike, else the means only)."""
    c, u = np.asarray(cond, dtype=float), np.asarray(uncond, dtype=float)
    if not len(c) or not len(u):
        return dict.fromkeys(PMI_FEATURES, float("nan"))
    pmi = c - u if len(c) == len(u) else np.full(1, c.mean() - u.mean())
    return {"pmi_mean": float(c.mean() - u.mean()), "pmi_first": float(pmi[:PMI_FIRST_TOKENS].mean()),
            "pmi_min": float(pmi.min()), "pmi_positive_share": float(np.mean(pmi > 0)),
            "uncond_mean_logprob": float(u.mean())}


def text_features(response: str) -> dict[str, float]:
    """Share of words with a digit, and of capitalised words after the first (numbers and names)."""
    words = response.split()
    return {"digit_words": float(np.mean([any(ch.isdigit() for ch in w) for w in words])) if words else 0.0,
            "capital_words": float(np.mean([w[:1].isupper() for w in words[1:]])) if len(words) > 1 else 0.0}


def feature_matrix(names: Sequence[str], prompts: Sequence[str], responses: Sequence[str], stats: pd.DataFrame,
                   uncond: Sequence[Sequence[float]] | None, cond: Sequence[Sequence[float]] | None, *,
                   encode: Callable[[list[str]], np.ndarray], prefix: str = "uncertainty") -> np.ndarray:
    """The artifact's features (``names``, in order) of (prompt, response) pairs: ``stats`` — the proxy model's
    statistics frame (``<prefix>.*`` columns); ``cond``/``uncond`` — the token log-probs with / without the
    question (needed for ``PMI_FEATURES`` only)."""
    p_vec, r_vec = encode(list(prompts)), encode(list(responses))
    cols = dict(zip(STAT_FEATURES, stat_features(stats, prefix, p_vec, r_vec, responses).T, strict=True))
    if any(n in PMI_FEATURES for n in names):
        if cond is None or uncond is None:
            raise ValueError("the PMI features need the token log-probs with and without the question")
        rows = [pmi_features(c, u) for c, u in zip(cond, uncond, strict=True)]
        cols.update({k: np.array([r[k] for r in rows], dtype=float) for k in PMI_FEATURES})
    text = [text_features(r) for r in responses]
    cols.update({k: np.array([t[k] for t in text], dtype=float) for k in TEXT_FEATURES})
    for i in range(r_vec.shape[1] if r_vec.ndim == 2 else 0):
        cols[f"response_embedding[{i}]"] = r_vec[:, i]
    return np.stack([cols[n] for n in names], axis=1) if len(responses) else np.zeros((0, len(names)))


def load_artifact(path: str | None = None) -> dict[str, Any]:
    """The detector JSON: ``path``, ``builtin:<name>`` (e.g. ``builtin:halludetect-v1.json``) or, without one,
    the one shipped in the package."""
    try:
        if path is None or path.startswith("builtin:"):
            name = ARTIFACT if path is None else path.removeprefix("builtin:")
            text = resources.files("evalmon.monitor.signals").joinpath("detectors", name).read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        art = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"signals.halludetect.artifact: cannot read {path or ARTIFACT}: {exc}",
                          hint="give the JSON written by benchmarks/train_hallucination.py") from None
    problem = _artifact_problem(art)
    if problem:
        raise ConfigError(f"signals.halludetect.artifact: {path or ARTIFACT} {problem}",
                          hint="give the JSON written by benchmarks/train_hallucination.py")
    return art


def _artifact_problem(art: Any) -> str:
    """Why ``art`` is not a detector this code can apply ('' when it is): checked when the signal is built, so
    a wrong file is an error before the proxy model has scored anything."""
    if not isinstance(art, dict):
        return f"is not a JSON object (got {type(art).__name__})"
    missing = {"mean", "scale", "coef", "intercept", "impute", "threshold"} - set(art)
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    names = art.get("features") or STAT_FEATURES
    known = {*STAT_FEATURES, *PMI_FEATURES, *TEXT_FEATURES}
    unknown = [n for n in names if not (isinstance(n, str) and (n in known or n.startswith("response_embedding[")))]
    if unknown:
        return f"has features this evalmon cannot compute: {unknown[:5]} (written by a newer version?)"
    for key in ("mean", "scale", "coef", "impute"):
        v = art[key]
        if not isinstance(v, list) or len(v) != len(names) or not all(isinstance(x, int | float) for x in v):
            return f"{key}: expected {len(names)} numbers (one per feature)"
    if isinstance(art["intercept"], bool) or not isinstance(art["intercept"], int | float):
        return f"intercept: {art['intercept']!r} is not a number"
    thr = art["threshold"]
    if isinstance(thr, bool) or not isinstance(thr, int | float) or not 0 <= thr <= 1:
        return f"threshold: {thr!r} is not a probability"
    return ""


def predict(art: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Probability of 'hallucinated' for feature rows ``x`` (NaN features imputed with the training means)."""
    x = np.where(np.isnan(x), np.asarray(art["impute"], dtype=float), x)
    z = (x - np.asarray(art["mean"])) / np.asarray(art["scale"])
    logit = z @ np.asarray(art["coef"], dtype=float) + float(art["intercept"])
    return 1.0 / (1.0 + np.exp(-logit))


class HalluDetectSignal(BaseSignal):
    name: ClassVar[str] = "halludetect"
    version: ClassVar[str] = "2"

    def __init__(self, *, artifact: str | None = None, threshold: float | None = None,
                 proxy: ProxyUncertaintySignal | Any = None, batch_size: int = 64,
                 allow_download: bool = False) -> None:
        self.art = load_artifact(artifact)
        self.artifact_ref = artifact or f"builtin:{ARTIFACT}"
        self.threshold = float(self.art["threshold"] if threshold is None else threshold)
        self.features: list[str] = list(self.art.get("features") or STAT_FEATURES)
        self.proxy = proxy if proxy is not None else ProxyUncertaintySignal()
        self.embedder = get_embedder(self.art.get("embedding_model", DEFAULT_MODEL), batch_size=batch_size,
                                     allow_download=allow_download)
        self.columns = ("halludetect.score", "halludetect.flag")
        self.inputs = (PROMPT, RESPONSE)

    def options(self) -> dict[str, Any]:
        return {"artifact": self.artifact_ref, "version": self.art.get("version"), "threshold": self.threshold,
                "proxy": self.proxy.options()}

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        score = np.full(len(frame), np.nan)
        names = self.features
        need_uncond = any(f in PMI_FEATURES for f in names)
        idx, cond, uncond = self.proxy.scored_logprobs(frame, unconditional=need_uncond)
        if idx:
            prompts, responses = text_series(frame, PROMPT).tolist(), text_series(frame, RESPONSE).tolist()
            stats = self.proxy.stats_frame(frame, idx, cond).iloc[idx]
            x = feature_matrix(names, [prompts[i] for i in idx], [responses[i] for i in idx], stats,
                               [u.logprobs for u in uncond] if need_uncond else None, [c.logprobs for c in cond],
                               encode=self.embedder.encode, prefix=self.proxy.name)
            score[idx] = predict(self.art, x)
        flag = np.where(np.isnan(score), np.nan, (score >= self.threshold).astype(float))
        return pd.DataFrame({"halludetect.score": score, "halludetect.flag": flag}, index=frame.index)


def finite(x: float) -> float | None:
    """JSON-safe float."""
    return float(x) if math.isfinite(x) else None
