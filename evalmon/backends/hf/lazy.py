"""Load an ``hf`` model only when a request misses the response cache.

``load_hf(settings)``: when the fingerprint memo (``fingerprint.py``) knows this checkpoint, the LM is a
``LazyHFCausalLM`` — the stored fingerprint and the backend's capabilities, nothing loaded, no torch or
transformers imported. The first call that needs the model (a request the response cache does not hold,
``token_count``, ``render_chat``, any attribute of the real model) loads it; its fingerprint must equal
the stored one (else the run stops: the cache keys served so far would be wrong). Otherwise the model is
loaded at once, as before, and its fingerprint stored for the next run.

``EVALMON_FORBID_MODEL_LOAD=1`` makes every ``hf`` model load fail with a one-line error (tests and CI use
it to prove that a rerun is served from the response cache alone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from evalmon.backends.hf.fingerprint import forget, memo_key, recall, remember
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ModelError
from evalmon.core.lm import (
    EngineStats,
    GenRequest,
    LLRequest,
    LLResult,
    ModelFingerprint,
    Progress,
    RollingRequest,
)

FORBID_ENV = "EVALMON_FORBID_MODEL_LOAD"


def _build(settings: HFSettings) -> HFCausalLM:
    if os.environ.get(FORBID_ENV, "") not in {"", "0"}:
        raise ModelError(f"model.path: loading {settings.path} is forbidden ({FORBID_ENV} is set) and a request "
                         "missed the response cache", hint=f"unset {FORBID_ENV} to let evalmon load the model")
    return HFCausalLM(settings)


def load_hf(settings: HFSettings) -> HFCausalLM | LazyHFCausalLM:
    """The ``hf`` LM for ``settings``: lazy when its fingerprint is known, else loaded now (and memoised)."""
    key = memo_key(settings)
    known = recall(key, settings.batch_size) if key else None
    if known is not None:
        return LazyHFCausalLM(settings, known, key)
    lm = _build(settings)
    if key:
        remember(key, lm.fingerprint)
    return lm


class LazyHFCausalLM:
    """An ``HFCausalLM`` that loads on first use; ``fingerprint`` is known without loading."""

    capabilities = HFCausalLM.capabilities

    def __init__(self, settings: HFSettings, fingerprint: ModelFingerprint, key: str | None = None) -> None:
        self.settings = settings
        self.fingerprint = fingerprint
        self._key = key
        self._real: HFCausalLM | None = None

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def load(self) -> HFCausalLM:
        """The real model (loaded on the first call)."""
        if self._real is None:
            real = _build(self.settings)
            if real.fingerprint.cache_key() != self.fingerprint.cache_key():
                if self._key:
                    forget(self._key)
                raise ModelError(f"model.path: {self.fingerprint.model} loaded with another fingerprint than the "
                                 "one stored for it; cached responses may not belong to it",
                                 hint="rerun: the stored fingerprint was discarded")
            self._real = real
        return self._real

    # the LM protocol: only what needs the model loads it
    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Progress | None = None) -> list[LLResult]:
        return self.load().loglikelihood(reqs, progress)

    def loglikelihood_rolling(self, reqs: Sequence[RollingRequest], progress: Progress | None = None
                              ) -> list[LLResult]:
        return self.load().loglikelihood_rolling(reqs, progress)

    def generate(self, reqs: Sequence[GenRequest], progress: Progress | None = None) -> list[str]:
        return self.load().generate(reqs, progress)

    def stats(self) -> EngineStats:
        return self._real.stats() if self._real is not None else EngineStats()

    def token_count(self, text: str) -> int:
        return self.load().token_count(text)

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        return self.load().render_chat(messages)

    def __getattr__(self, name: str) -> Any:  # tokenizer, model, max_length, …: the real model's
        if name.startswith("__") or name in {"settings", "fingerprint", "_key", "_real"}:
            raise AttributeError(name)
        return getattr(self.load(), name)
