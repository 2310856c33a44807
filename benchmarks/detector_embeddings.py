"""The detectors' input features (benchmarks/train_detectors.py): the MiniLM embedding of each text with an
on-disk cache (.evalmon/cache/detectors/embeddings.npz, keyed by the hash of the truncated text), and refusal's
extra columns (phrase families, soft-refusal cues, the tail embedding)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".evalmon/cache/detectors"


def text_key(text: str) -> str:
    return hashlib.blake2b(text[: get_embedder(DEFAULT_MODEL).max_chars].encode("utf-8", "replace"),
                           digest_size=16).hexdigest()


def embed(texts: list[str]) -> np.ndarray:
    """Texts → (n, 384) with an on-disk cache keyed by the hash of the truncated text."""
    emb = get_embedder(DEFAULT_MODEL)
    keys = [text_key(t) for t in texts]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "embeddings.npz"
    store: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            store = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    todo = [i for i, k in enumerate(keys) if k not in store]
    t0 = time.perf_counter()
    for start in range(0, len(todo), 256):
        chunk = todo[start:start + 256]
        vecs = emb.encode([texts[i] for i in chunk])
        for i, v in zip(chunk, vecs, strict=True):
            store[keys[i]] = v
        print(f"  embedded {start + len(chunk)}/{len(todo)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        emb._memo.clear()
        np.savez(path, keys=np.array(list(store)), vecs=np.stack(list(store.values())))
    return np.stack([store[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


# refusal v3: the classifier reads the response embedding plus one 0/1 column per phrase family of the signal
# (evalmon.monitor.signals.refusal.pattern_hits, the regexes stored in the artifact's card)
# v4: + the MiniLM embedding of the response after its first 300 characters (evalmon.monitor.signals.refusal.tail_texts;
# zeros for responses of ≤ 350 characters): whether the help asked for follows a disclaimer. Validation split, full
# pass, threshold the lowest with ≤ 3 % of ordinary answers and ≤ 23.7 % of jailbroken answers refused: soft-refusal
# recall 0.776 without the tail → 0.829 with it (at v3's rule alone: jailbroken answers refused 0.311 → 0.247)
REFUSAL_FEATURES: dict[str, Any] = {"embedding": "response", "head_chars": 400, "patterns": {}, "tail_from": 300,
                                    "tail_min_chars": 50}


def refusal_pattern_matrix(texts: list[str], cues: bool = True) -> np.ndarray:
    """The phrase-family columns (+ the classifier-only soft-refusal cues) of the refusal classifier."""
    import pandas as pd

    from evalmon.monitor.signals.refusal import PATTERNS, SOFT_CUES, pattern_hits

    pats = {**PATTERNS, **SOFT_CUES} if cues else dict(PATTERNS)
    if cues:
        REFUSAL_FEATURES["patterns"] = pats
    return pattern_hits(pd.Series(texts, dtype=object), pats, REFUSAL_FEATURES["head_chars"])


def tail_matrix(texts: list[str], feats: dict[str, Any]) -> np.ndarray:
    """Refusal v4's tail embedding per text (zeros where the text has no tail; none for a card without one)."""
    if "tail_from" not in feats:
        return np.zeros((len(texts), 0))
    from evalmon.monitor.signals.refusal import tail_texts

    tails = tail_texts(texts, int(feats["tail_from"]), int(feats.get("tail_min_chars", 50)))
    out = np.zeros((len(texts), 384))
    nz = [i for i, t in enumerate(tails) if t]
    if nz:
        out[nz] = embed([tails[i] for i in nz])
    return out


# jailbreak v2: + the gibberish columns (evalmon/monitor/signals/gibberish.py) × GIBBERISH_SCALE — what optimisation-
# based attacks (GCG, GBDA, UAT, AutoPrompt: a searched-for token string after the request) look like. Permissive
# validation split, threshold at ≤ 2 % FP on ordinary prompts, HarmBench attacks of validation behaviours: MiniLM alone
# (+ the HarmBench attacks as training positives) 0.33 of the attacks, German news flagged 0.37; + the columns at scale
# 1 / 4 / 10: 0.61 / 0.60 / 0.60, German 0.055 / 0.025 / 0.025 (C=16 at ×4: 0.63, German 0.095) → ×4, C=4
GIBBERISH_SCALE = 4.0
# ... + the static (model2vec) embedding of the prompt (the cascade computes it for every text anyway): a bag-of-word-
# pieces view beside MiniLM's contextual one. Validation behaviours' attacks 0.66 → 0.74 (PAP 0.40 → 0.53, TAP 0.41 →
# 0.50, PAIR 0.74 → 0.84), hostile / German / plain requests unchanged; leave-one-method-out better for 7 of 8 methods
# (EnsembleGCG 0.67 → 0.83, GBDA 0.41 → 0.48, UAT 0.55 → 0.64, PAIR 0.68 → 0.74, TAP 0.41 → 0.45; PAP 0.27 → 0.25);
# C = 1 instead of 4: 0.62
JAILBREAK_STATIC = True


def gibberish_card() -> dict[str, Any]:
    from evalmon.monitor.signals.gibberish import COLUMNS

    return {"gibberish": {"columns": list(COLUMNS), "scale": GIBBERISH_SCALE},
            **({"static_embedding": True} if JAILBREAK_STATIC else {})}


def detector_features(name: str, texts: list[str]) -> np.ndarray:
    """The feature matrix a detector's members read: the MiniLM embedding, + pattern columns and the tail
    embedding for refusal, + the gibberish columns for jailbreak (v2)."""
    x = embed(texts)
    if name == "jailbreak":
        from evalmon.monitor.signals.gibberish import gibberish_features
        from evalmon.monitor.signals.static_embed import get_static_embedder

        static = get_static_embedder().encode(texts).astype(np.float64) if JAILBREAK_STATIC else np.zeros((len(texts), 0))
        return np.hstack([x, GIBBERISH_SCALE * gibberish_features(texts), static])
    if name != "refusal":
        return x
    return np.hstack([x, refusal_pattern_matrix(texts).astype(np.float64), tail_matrix(texts, REFUSAL_FEATURES)])
