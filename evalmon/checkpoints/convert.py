"""Dequantise a GGUF file into a float32 Hugging Face checkpoint (transformers' GGUF support + ``gguf``).

``from_pretrained(dir, gguf_file=NAME)`` dequantises every tensor to float32; ``save_pretrained`` refuses a
model that still carries the GGUF quantizer, so it is detached first (the weights are plain tensors by
then). The tokenizer (with its chat template) is rebuilt from the GGUF's metadata and saved beside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from evalmon.checkpoints.cache import Log
from evalmon.checkpoints.heartbeat import heartbeat, quiet_tqdm
from evalmon.core.errors import ModelError

GGUF_MAGIC = b"GGUF"
PROVENANCE_FILE = "evalmon_checkpoint.json"  # what a converted checkpoint was made from (read by the HF backend)


def check_gguf_file(path: Path) -> None:
    """A one-line ModelError unless ``path`` is a readable file that starts with the GGUF magic."""
    if not path.is_file():
        raise ModelError(f"GGUF file {path} not found", hint="check the path (hf:/path/to/model.gguf)")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read GGUF file {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})",
                         hint="give a .gguf file as written by llama.cpp, or a Hugging Face checkpoint directory")


_PARSE_LOCK = threading.RLock()


def _fast_reader(path: Any, mode: str = "r") -> Any:
    """``gguf.GGUFReader`` over a plain ndarray view of its memory map instead of the ``np.memmap`` itself: the
    reader slices the file once per vocabulary entry, and ``np.memmap``'s ``__getitem__`` / ``__array_finalize__``
    are most of its time (Gemma-3's 262k tokens: 21 s → 10 s per parse here; same fields, same tensor bytes).
    Upstream: gguf-py's read-only speed-up, ggml-org/llama.cpp PR #13378 (open; #10159 closed unmerged)."""
    import gguf.gguf_reader as reader_module
    import numpy as np

    class _PlainMap:
        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

        @staticmethod
        def memmap(*args: Any, **kwargs: Any) -> Any:
            return np.memmap(*args, **kwargs).view(np.ndarray)  # the view keeps the mapping alive (its base)

    reader_module.np = _PlainMap()  # type: ignore[assignment]  # the module's global, under _PARSE_LOCK
    try:
        return reader_module.GGUFReader(path, mode)  # type: ignore[arg-type]
    finally:
        reader_module.np = np


@contextmanager
def parsed_once() -> Iterator[None]:
    """Inside: every ``gguf.GGUFReader(path)`` — ours and transformers' (it parses the file three times: config,
    tokenizer, weights) — returns one shared reader per file, built by ``_fast_reader``. Re-entrant; one thread
    at a time (it swaps module attributes)."""
    import gguf

    with _PARSE_LOCK:
        original = gguf.GGUFReader
        if getattr(original, "_evalmon_parsed_once", False):  # nested: the outer context's cache serves
            yield
            return
        readers: dict[tuple[str, str], Any] = {}

        def shared(path: Any, mode: str = "r") -> Any:
            key = (str(Path(path).resolve()), mode)
            if key not in readers:
                readers[key] = _fast_reader(path, mode)
            return readers[key]

        shared._evalmon_parsed_once = True  # type: ignore[attr-defined]
        gguf.GGUFReader = shared  # type: ignore[assignment,misc]
        try:
            yield
        finally:
            gguf.GGUFReader = original  # type: ignore[misc]
            readers.clear()


def gguf_info(path: Path, log: Log | None = None) -> dict[str, Any]:
    """Architecture, quantisation type (``general.file_type`` by name), model name and licence from the header."""
    from gguf import LlamaFileType

    try:
        with heartbeat(log, f"reading the GGUF header of {path.name}", announce_after=2.0), parsed_once():
            import gguf

            reader = gguf.GGUFReader(path)  # parses every field (a 262k-token vocabulary takes seconds)
    except Exception as exc:  # any parse failure means a bad file for the user
        raise ModelError(f"{path}: cannot read the GGUF header ({type(exc).__name__}: {exc})",
                         hint="the file is truncated or not a GGUF file") from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        part = f.parts[f.data[0]]
        return bytes(part).decode("utf-8", "replace") if f.types and f.types[0].name == "STRING" else part[0].item()

    file_type = field("general.file_type")
    try:
        quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quant = f"file_type {file_type}"
    return {"architecture": field("general.architecture"), "quantization": quant,
            "gguf_model_name": field("general.name"), "gguf_license": field("general.license")}


# GGUF architecture names transformers maps to another key (its load_gguf_checkpoint does the same)
_ARCH_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2",
                 "t5encoder": "t5"}


def check_architecture(path: Path, architecture: str | None) -> None:
    """A one-line ModelError, before any slow work, when transformers has no GGUF mapping for the architecture."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES as supported

    if architecture is None or architecture in supported or _ARCH_ALIASES.get(architecture) in supported:
        return  # (transformers' own check stays the final word)
    raise ModelError(f"{path}: transformers cannot dequantise this GGUF (architecture {architecture!r} is not "
                     "supported by its GGUF loader)", hint="convert it to a Hugging Face checkpoint with "
                     "llama.cpp's tools, or upgrade transformers")


def _unsupported(exc: Exception) -> str | None:
    text = str(exc)
    return text if "not supported" in text and ("architecture" in text or "GGUF" in text) else None


@contextmanager
def _quiet_bars() -> Iterator[None]:
    """No tqdm bars (the heartbeat reports progress; carriage-return bars garble CI logs)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with quiet_tqdm(gguf_utils):  # its per-tensor bar ignores transformers' progress-bar switch
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def dequantise(gguf: Path, out: Path, log: Log | None = None) -> dict[str, Any]:
    """Write ``out``: float32 safetensors + tokenizer (+ chat template). Returns architecture/parameter facts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(gguf)
    start = time.monotonic()
    with heartbeat(log, f"dequantising {gguf.name} to float32 with transformers"), _quiet_bars(), parsed_once():
        try:
            # the model first: transformers checks the GGUF's architecture there (the tokenizer may load anyway)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            reason = _unsupported(exc)
            if reason:
                raise ModelError(f"{gguf}: transformers cannot dequantise this GGUF ({reason})",
                                 hint="convert it to a Hugging Face checkpoint with llama.cpp's tools, or upgrade "
                                      "transformers") from None
            first = " ".join(str(exc).split())[:300]
            raise ModelError(f"{gguf}: loading the GGUF with transformers failed ({type(exc).__name__}: {first})",
                             hint="check that the file is complete and a causal language model") from None
        model.hf_quantizer = None  # the tensors are float32 already; save_pretrained refuses otherwise
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    return {"transformers_architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "convert_seconds": round(time.monotonic() - start, 1),
            "transformers_version": metadata.version("transformers"),
            "gguf_version": metadata.version("gguf"), "torch_version": metadata.version("torch")}
