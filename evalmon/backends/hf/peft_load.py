"""Attach PEFT adapters to a loaded base model, with one-line errors, and the adapter's identity.

``attach_adapter`` wraps the base in a ``PeftModel`` (the first adapter, ``PeftModel.from_pretrained``) or
adds one more adapter to an existing ``PeftModel`` (``load_adapter``); an adapter dir without
``adapter_config.json``, with cut-short weights, or trained for another base (shape mismatch) is a
``ModelError`` naming the key (``model.adapter`` / ``model.adapters.<name>``). The identity that goes into
the model fingerprint is the sha256 of the weight files (``weights_fingerprint``, as before) plus the hash
of ``adapter_config.json`` (rank, alpha, target modules … change the numbers too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.backends.hf.fingerprint import adapter_config_hash
from evalmon.core.errors import ModelError

LoadError = Callable[[str, bool, Exception], ModelError]


@dataclass(frozen=True)
class AdapterIdentity:
    """Where an adapter came from and what it is (the fingerprint's ``adapter*`` fields)."""

    path: str  # resolved local dir, or the hub id
    weights_hash: str | None
    config_hash: str | None


def looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or Path(path).expanduser().exists()


def attach_adapter(model: Any, ref: str, *, base_id: str, revision: str | None, load_error: LoadError,
                   name: str | None = None, key: str = "model.adapter") -> tuple[Any, AdapterIdentity]:
    """``model`` with the adapter at ``ref`` attached (and active unless ``model`` already had adapters).

    ``name`` None: the single-adapter mode (peft's ``default`` adapter name). A ``PeftModel`` gets one more
    adapter (``load_adapter``); anything else is wrapped (``PeftModel.from_pretrained``)."""
    from peft import PeftModel

    from evalmon.backends.hf.identity import _corrupt_weights, _first_line, weights_fingerprint

    local = looks_local(ref)
    adapter = str(Path(ref).expanduser().resolve()) if local else ref
    if local and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelError(f"{key}: no adapter_config.json in {adapter}",
                         hint="point adapter at a PEFT adapter directory (save_pretrained output)")
    hub_revision = revision if not local else None
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(adapter, adapter_name=name or "default", revision=hub_revision)
        elif name is None:
            model = PeftModel.from_pretrained(model, adapter, revision=hub_revision)
        else:
            model = PeftModel.from_pretrained(model, adapter, adapter_name=name, revision=hub_revision)
    except OSError as exc:
        raise load_error(adapter, local, exc) from None
    except Exception as exc:
        if _corrupt_weights(exc):
            raise ModelError(f"{key}: the weight files in {adapter} look truncated or corrupt "
                             f"({_first_line(exc)})", hint="copy, download or save the adapter again") from None
        if not isinstance(exc, RuntimeError | ValueError | KeyError):
            raise
        if not local and "adapter_config.json" in str(exc):  # neither a local dir nor a hub adapter
            raise ModelError(f"{key}: adapter not found: {adapter} is no local directory and no hub adapter",
                             hint="point it at a PEFT adapter directory (save_pretrained output)") from None
        msg = " ".join(str(exc).split())[:300]
        raise ModelError(f"{key}: adapter {adapter} does not match the base model {base_id}: {msg}",
                         hint="use the adapter trained on this base checkpoint") from None
    identity = AdapterIdentity(adapter, weights_fingerprint(Path(adapter)) if local else None,
                               adapter_config_hash(Path(adapter)) if local else None)
    return model, identity
