"""The trained hallucination detector for responses without retrieved contexts (signal ``halludetect``).

A logistic regression (scikit-learn, trained by ``benchmarks/train_hallucination.py``; model card:
``docs/detectors/hallucination.md``) over the features of one (prompt, response) pair (``features``):

* the cosine between the prompt's and the response's MiniLM embeddings (bundled all-MiniLM-L6-v2) and —
  when the artifact says ``response_embedding: true`` — the response's 384-d embedding itself (v1 does
  not: trained on TruthfulQA topics it did not transfer, see the model card);
* the proxy-model uncertainty statistics of the response given its prompt (``uncertainty.py``: mean / min /
  p10 token log-prob, tail share, surprisal per character, log token count) and the log word count.

The artifact is portable JSON (``detectors/halludetect-v1.json``: standardisation, coefficients, intercept,
imputation values, the threshold chosen on the training split's out-of-fold predictions, the training
data and validation figures) — never a pickle. Columns: ``halludetect.score`` (probability of a
hallucinated answer) and ``halludetect.flag`` (score ≥ threshold), NaN for records not scored (empty
response, or not in the proxy model's ``sample_rate``).
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

ARTIFACT = "halludetect-v1.json"
STAT_FEATURES = ("mean_logprob", "min_logprob", "p10_logprob", "tail_share", "surprisal_per_char",
                 "log_n_tokens", "log_words", "qa_cosine")


def stat_features(stats: pd.DataFrame, prefix: str, prompts_vec: np.ndarray, resp_vec: np.ndarray,
                  responses: Sequence[str]) -> np.ndarray:
    """The non-embedding features, columns in ``STAT_FEATURES`` order (NaN where a statistic is missing)."""
    n = len(responses)
    cols = [stats[f"{prefix}.{s}"].to_numpy(dtype=float) for s in STAT_FEATURES[:5]]
    cols.append(np.log1p(stats[f"{prefix}.n_tokens"].to_numpy(dtype=float)))
    cols.append(np.log1p(np.array([len(r.split()) for r in responses], dtype=float)))
    cols.append(np.einsum("ij,ij->i", prompts_vec, resp_vec) if n else np.zeros(0))
    return np.stack(cols, axis=1) if n else np.zeros((0, len(STAT_FEATURES)))


def features(prompts: Sequence[str], responses: Sequence[str], stats: pd.DataFrame, *,
             encode: Callable[[list[str]], np.ndarray], prefix: str = "uncertainty") -> np.ndarray:
    """Feature matrix [response embedding (d) | STAT_FEATURES] for (prompt, response) pairs."""
    p_vec, r_vec = encode(list(prompts)), encode(list(responses))
    return np.concatenate([r_vec, stat_features(stats, prefix, p_vec, r_vec, responses)], axis=1)


def load_artifact(path: str | None = None) -> dict[str, Any]:
    """The detector JSON: ``path`` or the one shipped in the package."""
    try:
        if path is None:
            text = resources.files("evalmon.monitor.signals").joinpath("detectors", ARTIFACT).read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        art = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"signals.halludetect.artifact: cannot read {path or ARTIFACT}: {exc}",
                          hint="give the JSON written by benchmarks/train_hallucination.py") from None
    missing = {"mean", "scale", "coef", "intercept", "impute", "threshold"} - set(art)
    if missing:
        raise ConfigError(f"signals.halludetect.artifact: {path or ARTIFACT} lacks {', '.join(sorted(missing))}",
                          hint="give the JSON written by benchmarks/train_hallucination.py")
    return art


def predict(art: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Probability of 'hallucinated' for feature rows ``x`` (NaN features imputed with the training means)."""
    x = np.where(np.isnan(x), np.asarray(art["impute"], dtype=float), x)
    z = (x - np.asarray(art["mean"])) / np.asarray(art["scale"])
    logit = z @ np.asarray(art["coef"], dtype=float) + float(art["intercept"])
    return 1.0 / (1.0 + np.exp(-logit))


class HalluDetectSignal(BaseSignal):
    name: ClassVar[str] = "halludetect"
    version: ClassVar[str] = "1"

    def __init__(self, *, artifact: str | None = None, threshold: float | None = None,
                 proxy: ProxyUncertaintySignal | Any = None, batch_size: int = 64,
                 allow_download: bool = False) -> None:
        self.art = load_artifact(artifact)
        self.artifact_ref = artifact or f"builtin:{ARTIFACT}"
        self.threshold = float(self.art["threshold"] if threshold is None else threshold)
        self.proxy = proxy if proxy is not None else ProxyUncertaintySignal()
        self.embedder = get_embedder(self.art.get("embedding_model", DEFAULT_MODEL), batch_size=batch_size,
                                     allow_download=allow_download)
        self.columns = ("halludetect.score", "halludetect.flag")
        self.inputs = (PROMPT, RESPONSE)

    def options(self) -> dict[str, Any]:
        return {"artifact": self.artifact_ref, "version": self.art.get("version"), "threshold": self.threshold,
                "proxy": self.proxy.options()}

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        score = np.full(n, np.nan)
        stats = self.proxy.compute(frame)
        prompts, responses = text_series(frame, PROMPT).tolist(), text_series(frame, RESPONSE).tolist()
        scored = np.flatnonzero(stats[f"{self.proxy.name}.n_tokens"].notna().to_numpy()) if n else []
        if len(scored):
            x = features([prompts[i] for i in scored], [responses[i] for i in scored], stats.iloc[scored],
                         encode=self.embedder.encode, prefix=self.proxy.name)
            if not self.art.get("response_embedding", True):  # a statistics-only artifact
                x = x[:, -len(STAT_FEATURES):]
            score[scored] = predict(self.art, x)
        flag = np.where(np.isnan(score), np.nan, (score >= self.threshold).astype(float))
        return pd.DataFrame({"halludetect.score": score, "halludetect.flag": flag}, index=frame.index)


def finite(x: float) -> float | None:
    """JSON-safe float."""
    return float(x) if math.isfinite(x) else None
