"""ONNX Runtime encoder for a sentence-transformers model (Transformer → mean pooling → Normalize).

Numerically equivalent to ``SentenceTransformer.encode(..., normalize_embeddings=True)`` (cosine ≥ 0.9999,
``tests/monitor/test_embeddings_onnx.py``) and ~5–10 % cheaper on CPU (measured; int8 ~1.7× cheaper but not equivalent). The graph (transformer + mean pooling +
L2 norm) is exported once with ``torch.onnx`` from the loaded torch model, offline, and cached in the user
cache dir (``$EVALMON_CACHE_DIR``/``~/.cache/evalmon``) under ``embeddings/<sha256 of the weights>[-int8].onnx``
so a changed model is re-exported. Texts are tokenised with the model's fast tokenizer, truncated where the
model truncates (``max_seq_length``), sorted by token length and padded per batch (``length_batches``: at most
``batch_size`` texts and ``MAX_BATCH_TOKENS`` padded word pieces a batch). ``quantize="int8"``
(opt-in) applies ONNX Runtime dynamic int8 quantisation (it changes the numbers: see docs/monitor-signals.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.monitor.signals.batching import length_batches

_OPSET = 17


def onnx_supported(st_model: Any) -> bool:
    """The model is Transformer → mean Pooling [→ Normalize] (the shape this exporter reproduces)."""
    mods = list(st_model)
    if len(mods) not in (2, 3) or type(mods[0]).__name__ != "Transformer" or type(mods[1]).__name__ != "Pooling":
        return False
    if len(mods) == 3 and type(mods[2]).__name__ != "Normalize":
        return False
    cfg = mods[1].get_config_dict() if hasattr(mods[1], "get_config_dict") else {}
    return cfg.get("pooling_mode") == "mean" and cfg.get("include_prompt", True) is not False


def _weights_hash(hf_model: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(hf_model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _export(st_model: Any, target: Path) -> None:
    import torch

    hf = st_model[0].auto_model.eval()
    # eager attention exports the plain MatMul/Softmax pattern that ONNX Runtime's BERT optimizer fuses
    # (the sdpa export is ~10 % slower than torch); restored afterwards for the torch path
    attn = getattr(hf.config, "_attn_implementation", None)
    hf.set_attn_implementation("eager")

    class _Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            tok = self.hf(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tok.dtype)
            pooled = (tok * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "seq"}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Pooled(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["embedding"], opset_version=_OPSET, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "embedding": {0: "batch"}})
    if attn:
        hf.set_attn_implementation(attn)
    from onnxruntime.transformers.optimizer import optimize_model

    cfg = hf.config
    fused = optimize_model(str(tmp), model_type="bert", num_heads=int(cfg.num_attention_heads),
                           hidden_size=int(cfg.hidden_size))
    fused.save_model_to_file(str(tmp))
    os.replace(tmp, target)


def _quantize(src: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.onnx")
    import onnx

    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(tmp, target)


def cached_onnx(st_model: Any, quantize: str | None = None) -> Path:
    """The exported (and, with ``quantize="int8"``, quantised) graph for ``st_model``, built once per weights."""
    from evalmon.checkpoints.cache import cache_subdir, locked

    root = cache_subdir("embeddings")
    base = root / f"{_weights_hash(st_model[0].auto_model)}-opset{_OPSET}-fused.onnx"
    target = base if not quantize else base.with_name(base.stem + f"-{quantize}.onnx")
    if not target.exists():
        with locked(target):
            if not base.exists():
                _export(st_model, base)
            if quantize and not target.exists():
                _quantize(base, target)
    return target


_RESERVED: ContextVar[int] = ContextVar("evalmon_onnx_reserved_cores", default=0)


@contextmanager
def cores_reserved(n: int = 1) -> Iterator[None]:
    """Within the block (this thread's context), encoders on the default thread count leave ``n`` cores to other
    work — ``compute_signals`` runs the signals' ``prepare`` (pii's single-threaded spaCy NER) beside the shared
    embedding pass. ORT's intra-op pool on every core while another thread holds one waits at each operator for its
    slowest thread (and spins): the overlapped pass of 2,000 synthesised records took 15.5–19.1 s with 2 threads on 2
    cores, 12.7–13.4 s with 1 (session 15); alone, the pass keeps both."""
    token = _RESERVED.set(_RESERVED.get() + max(0, n))
    try:
        yield
    finally:
        _RESERVED.reset(token)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _env_threads() -> int:
    """``$EVALMON_EMBEDDINGS_THREADS``, else ``$OMP_NUM_THREADS`` (what torch would use), else 0 (all cores)."""
    raw = os.environ.get("EVALMON_EMBEDDINGS_THREADS", "").strip()
    if not raw:
        omp = os.environ.get("OMP_NUM_THREADS", "").strip()
        return int(omp) if omp.isdigit() and int(omp) > 0 else 0
    if not raw.isdigit():
        from evalmon.core.errors import ConfigError

        raise ConfigError(f"EVALMON_EMBEDDINGS_THREADS={raw!r} is not a number of threads",
                          hint="set it to a positive integer (e.g. 1 on shared cores) or unset it")
    return int(raw)


def _bundle_key(model_dir: Path, quantize: str | None) -> Path:
    """Where the graph exported from ``model_dir``'s weights is recorded, keyed by the weight files' bytes."""
    from evalmon.checkpoints.cache import cache_subdir

    h = hashlib.sha256(f"opset{_OPSET}:{quantize or ''}".encode())
    for f in sorted(model_dir.rglob("*.safetensors")) or sorted(model_dir.rglob("*.bin")):
        h.update(f.read_bytes())
    return cache_subdir("embeddings") / f"dir-{h.hexdigest()[:32]}.json"


def remember_export(model_dir: Path, st_model: Any, graph: Path, quantize: str | None) -> None:
    """Record ``graph`` as the export of ``model_dir`` (what ``cached_encoder`` reads without loading the model)."""
    key = _bundle_key(model_dir, quantize)
    facts = json.dumps({"graph": graph.name, "max_seq_length": int(st_model.max_seq_length or 512),
                        "dim": int(st_model[0].auto_model.config.hidden_size)})
    try:
        if key.read_text(encoding="utf-8") == facts:
            return
    except OSError:
        pass
    tmp = key.with_name(f".{key.name}.{os.getpid()}.tmp")  # a damaged or missing record is (re)written
    try:
        tmp.write_text(facts, encoding="utf-8")
        os.replace(tmp, key)
    except OSError:  # a read-only cache: later processes load the model, as before (a speed-up, not a need)
        tmp.unlink(missing_ok=True)


def cached_encoder(model_dir: Path, quantize: str | None = None,
                   threads: int | None = None) -> tuple[OnnxEncoder, int] | None:
    """The encoder of an already exported model directory and its ``max_seq_length``, from the tokenizer and the
    cached graph alone — no sentence-transformers import, no torch model (~10 s of a monitor process's start-up
    on 2 cores); ``None`` until a first full load has exported and recorded it."""
    key = _bundle_key(model_dir, quantize)
    try:
        facts = json.loads(key.read_text(encoding="utf-8"))
        graph = key.parent / str(facts["graph"])
        limit, dim = int(facts["max_seq_length"]), int(facts["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not graph.is_file():
        return None
    from transformers import AutoTokenizer  # what the sentence-transformers Transformer module loads

    return OnnxEncoder(AutoTokenizer.from_pretrained(str(model_dir)), graph, dim, threads=threads), limit


# Padded word pieces per batch. Texts are sorted by length, so a batch pads to its longest; with 64 texts a batch the
# long end of a monitor batch (responses near the 256 cap beside 100-piece ones) paid ~30 % padding, and ONNX Runtime's
# cost per real word piece also rises with the batch's area (attention). 1,024 (64 texts of ≤ 16 pieces, 4 of 256):
# the default signals' MiniLM texts of 2,000 synthesised records 10.4–10.6 s → 7.1–7.9 s on 2 cores (2,048: 8.0–8.8 s,
# 4,096: 9.1–9.2 s, 16 texts a batch 8.3–8.5 s); vectors equal to 3e-8 (session 15).
MAX_BATCH_TOKENS = 1024


class OnnxEncoder:
    """``encode(texts)`` → (n, dim) float32 unit rows, like the torch model it was exported from."""

    @classmethod
    def from_model(cls, st_model: Any, *, quantize: str | None = None, threads: int | None = None) -> OnnxEncoder:
        """Export ``st_model`` (once per weights) and open the graph."""
        return cls(st_model.tokenizer, cached_onnx(st_model, quantize), int(st_model[0].auto_model.config.hidden_size),
                   threads=threads)

    def __init__(self, tokenizer: Any, path: Path, dim: int, *, threads: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.path = path
        self._explicit = threads or _env_threads()  # 0: every core, less those ``cores_reserved`` holds
        self._sessions: dict[int, Any] = {}
        self._session(self.threads())  # opened now: a graph ONNX Runtime cannot run fails here, not mid-batch
        self.dim = dim

    def threads(self) -> int:
        """Intra-op threads for a run now: the explicit setting, else every core less those reserved (≥ 1)."""
        return self._explicit or max(1, available_cores() - _RESERVED.get())

    def _session(self, threads: int) -> Any:
        """One ONNX Runtime session of the graph per thread count (ORT fixes it when a session is created)."""
        if threads not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[threads] = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def encode(self, texts: Sequence[str], *, max_tokens: int, batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_tokens, padding=False,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        session = self._session(self.threads())
        for idx in length_batches([len(e) for e in enc], batch_size, MAX_BATCH_TOKENS):
            width = max(len(enc[i]) for i in idx)
            ids = np.full((len(idx), width), self.pad_id, np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for row, i in enumerate(idx):
                ids[row, :len(enc[i])] = enc[i]
                mask[row, :len(enc[i])] = 1
            (vecs,) = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})
            out[idx] = vecs
        return out
