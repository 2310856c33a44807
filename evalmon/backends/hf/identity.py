"""What a checkpoint's identity is made of, without the model: the weight files' hash and the generation
defaults that change outputs; and whether a load failed on cut-short weight files. ``HFCausalLM``, the ASR backend, the adapter loader and the vLLM backend stamp
fingerprints (and response-cache keys) with these."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_HASH_LIMIT_BYTES = 2 * 1024**3  # hash weights fully below 2 GiB, else size+head/tail fingerprint
# generation_config entries that never change what is generated (left out of the fingerprint)
_GEN_NEUTRAL = {"transformers_version", "_from_model_config", "use_cache", "output_attentions",
                "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate", "pad_token_id"}


def weights_fingerprint(path: Path) -> str:
    """sha256 over the weight files (names, sizes and content; head+tail only above 2 GiB)."""
    files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".gguf"})
    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in files)
    for p in files:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        with p.open("rb") as fh:
            if total <= _HASH_LIMIT_BYTES:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            else:
                h.update(fh.read(1 << 20))
                fh.seek(max(0, p.stat().st_size - (1 << 20)))
                h.update(fh.read(1 << 20))
    return ("sha256:" if total <= _HASH_LIMIT_BYTES else "sha256-headtail:") + h.hexdigest()[:32]


def generation_identity(model: Any) -> dict[str, Any]:
    """The checkpoint's generation defaults that change outputs (``generation_config`` minus bookkeeping):
    ``model.generate`` applies them (EOS ids, repetition penalty, …), so they belong in the cache key."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return {}
    try:
        diff = config.to_diff_dict()
    except (AttributeError, TypeError, ValueError):
        return {}
    return {k: v for k, v in sorted(diff.items()) if k not in _GEN_NEUTRAL and not k.startswith("_")}


def _corrupt_weights(exc: BaseException) -> bool:
    """Whether torch/safetensors raised ``exc`` for a weight file that is cut short or is not one."""
    import pickle

    from safetensors import SafetensorError

    if isinstance(exc, SafetensorError | pickle.UnpicklingError | EOFError):
        return True
    text = str(exc)  # torch.load of a cut .bin: "PytorchStreamReader failed reading zip archive …"
    return isinstance(exc, RuntimeError) and ("PytorchStreamReader" in text or "zip archive" in text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


__all__ = ["generation_identity", "weights_fingerprint"]
