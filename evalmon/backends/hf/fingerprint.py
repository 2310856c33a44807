"""The ``hf`` backend's fingerprint without loading the model: a memo of what a load computed.

``ModelFingerprint.cache_key`` needs the weights hash, tokenizer hash, chat template, generation defaults,
context length … — all of which a load (``HFCausalLM``) computes. The memo stores that fingerprint, whole,
under a key made of the settings, the versions of the libraries that compute it (evalmon, transformers,
tokenizers, torch, peft) and the name, size and mtime of every file in the checkpoint (and adapter)
directory. A later run with the same key gets the stored fingerprint — byte-identical to the one the load
computed, so response-cache keys written before still hit — without importing torch/transformers or
rehashing the weights (``lazy.LazyHFCausalLM`` then loads the model only on the first cache miss). Any
change of a file, a setting or a library version is a new key, so a stale memo is never read. Hub ids
(not local directories) have no memo.

The memo lives in ``<evalmon cache>/fingerprints/<key>.json`` (``$EVALMON_CACHE_DIR``, …); an unreadable
or unwritable memo is ignored (the model is then loaded, as before).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from evalmon.core.jsonout import canonical_hash
from evalmon.core.lm import ModelFingerprint

MEMO_VERSION = 2  # 2: fingerprints carry adapter_config_hash
# adapter_config.json entries that do not change what the adapter computes
_ADAPTER_CONFIG_NEUTRAL = {"base_model_name_or_path", "revision", "peft_version", "auto_mapping", "inference_mode"}
_LIBRARIES = ("evalmon", "transformers", "tokenizers", "torch", "peft", "safetensors")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _local(path: str) -> Path | None:
    p = Path(path).expanduser()
    if not path.startswith(("/", "./", "../", "~")) and not p.exists():
        return None  # a hub id
    return p.resolve() if p.exists() else None


def adapter_config_hash(directory: Path) -> str | None:
    """Hash of a PEFT adapter's ``adapter_config.json`` minus bookkeeping keys (None when unreadable): rank,
    alpha, target modules … change the numbers as much as the weights do."""
    try:
        config = json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return "sha256:" + canonical_hash({k: v for k, v in config.items() if k not in _ADAPTER_CONFIG_NEUTRAL}, 16)


def file_signature(path: Path) -> list[list[Any]]:
    """(relative name, size, mtime in ns) of every file under ``path`` (or of ``path`` itself), sorted."""
    if path.is_file():
        st = path.stat()
        return [[path.name, st.st_size, st.st_mtime_ns]]
    out: list[list[Any]] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .cache/ of hub downloads, .git
        for name in files:
            if name.startswith(".") and name.endswith(".lock"):
                continue
            p = Path(root) / name
            with contextlib.suppress(OSError):
                st = p.stat()
                out.append([str(p.relative_to(path)), st.st_size, st.st_mtime_ns])
    return sorted(out)


def memo_key(settings: Any) -> str | None:
    """The memo key of an ``HFSettings`` (None: no memo — a hub model or a path that does not exist)."""
    base = _local(settings.path)
    if base is None:
        return None
    files: dict[str, Any] = {"path": file_signature(base)}
    if settings.adapter:
        adapter = _local(settings.adapter)
        if adapter is None:
            return None
        files["adapter"] = file_signature(adapter)
    settings_key = {k: v for k, v in asdict(settings).items() if k != "batch_size"}  # recorded, not computed
    payload = {"memo": MEMO_VERSION, "settings": {**settings_key, "path": str(base)},
               "versions": {name: _version(name) for name in _LIBRARIES}, "files": files}
    return canonical_hash(payload, 32)


def _memo_path(key: str) -> Path:
    from evalmon.checkpoints.cache import cache_root

    return cache_root() / "fingerprints" / f"{key}.json"


def recall(key: str, batch_size: int) -> ModelFingerprint | None:
    """The fingerprint stored under ``key`` with this run's ``batch_size`` (the one setting a load only
    records), or None."""
    try:
        data = json.loads(_memo_path(key).read_text(encoding="utf-8"))
        return ModelFingerprint(**{**data["fingerprint"], "batch_size": batch_size})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(key: str, fingerprint: ModelFingerprint) -> None:
    """Store ``fingerprint`` under ``key`` (atomically; failures are ignored: the memo is an optimisation)."""
    path = _memo_path(key)
    with contextlib.suppress(OSError, TypeError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint.to_dict()}, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def forget(key: str) -> None:
    with contextlib.suppress(OSError):
        _memo_path(key).unlink()
