"""Capability ``adapters``: one loaded base model, N PEFT adapters, a variant LM per adapter.

``HFAdapterSet(settings, {name: path})`` loads the base once (``HFCausalLM``: tokenizer, packed-scoring
probe, fingerprint), then attaches the adapters with peft — ``PeftModel.from_pretrained`` for the first,
``load_adapter`` for the rest (``peft_load.attach_adapter``: a bad dir or an adapter of another base is a
one-line ``ModelError`` before anything runs). ``variant(name)`` is an LM whose every call first makes
its adapter the active one (``set_adapter``) — or, for ``None`` (the base), runs inside peft's
``disable_adapter()`` context — and then uses the base's own scoring (packed shared-prefix scoring
included), so each variant's numbers are those of a separate run with ``adapter: path``.

Fingerprints: the base variant's is the base model's (no adapter: its cached responses are those of a
plain run of the base); an adapter variant's is the base's with ``adapter`` (the resolved dir),
``adapter_hash`` (sha256 of its weight files) and ``adapter_config_hash`` set — equal to the one a separate
run with ``adapter: path`` records, so the response cache is shared with such runs and kept per adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.backends.hf.peft_load import AdapterIdentity, attach_adapter
from evalmon.core.lm import (
    EngineStats,
    GenRequest,
    LLRequest,
    LLResult,
    ModelFingerprint,
    Progress,
    RollingRequest,
)

BASE = "base"


class HFAdapterSet:
    """The base model + its adapters; itself the base variant (``variant(None)``)."""

    capabilities = HFCausalLM.capabilities | {"adapters"}

    def __init__(self, settings: HFSettings, adapters: dict[str, str]) -> None:
        base_settings = dataclasses.replace(settings, adapter=None)
        self.lm = HFCausalLM(base_settings)  # the base loads once
        self.adapter_names: tuple[str, ...] = tuple(adapters)
        self.identities: dict[str, AdapterIdentity] = {}
        model = self.lm.model
        for name, ref in adapters.items():
            model, ident = attach_adapter(model, ref, base_id=self.lm.fingerprint.model, revision=settings.revision,
                                          load_error=self.lm._load_error, name=name, key=f"model.adapters.{name}")
            self.identities[name] = ident
        model.to(self.lm.device)
        model.eval()
        self.lm.model = model  # the PeftModel: forwards go through the active adapter
        base_fp = self.lm.fingerprint
        self._variants: dict[str | None, HFAdapterVariant] = {None: HFAdapterVariant(self, None, base_fp)}
        for name, ident in self.identities.items():
            fp = dataclasses.replace(base_fp, adapter=ident.path, adapter_hash=ident.weights_hash,
                                     adapter_config_hash=ident.config_hash,
                                     extra={**base_fp.extra, "adapter_name": name})
            self._variants[name] = HFAdapterVariant(self, name, fp)
        self.fingerprint = base_fp

    def variant(self, name: str | None) -> HFAdapterVariant:
        key = None if name in (None, BASE) else name
        if key not in self._variants:
            raise KeyError(name)
        return self._variants[key]

    @contextlib.contextmanager
    def active(self, name: str | None) -> Iterator[None]:
        """``name``'s adapter is the one the forwards use; None: no adapter (peft's ``disable_adapter``)."""
        model = self.lm.model
        if name is None:
            with model.disable_adapter():
                yield
            return
        if model.active_adapter != name:
            model.set_adapter(name)
        yield

    # the base variant's LM protocol (the suite's "model" when a caller ignores the variants)
    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Progress | None = None) -> list[LLResult]:
        return self.variant(None).loglikelihood(reqs, progress)

    def loglikelihood_rolling(self, reqs: Sequence[RollingRequest], progress: Progress | None = None
                              ) -> list[LLResult]:
        return self.variant(None).loglikelihood_rolling(reqs, progress)

    def generate(self, reqs: Sequence[GenRequest], progress: Progress | None = None) -> list[str]:
        return self.variant(None).generate(reqs, progress)

    def stats(self) -> EngineStats:
        return self.lm.stats()

    def token_count(self, text: str) -> int:
        return self.lm.token_count(text)

    def __getattr__(self, name: str) -> Any:  # tokenizer, max_length, render_chat, …: the base model's
        if name.startswith("__") or name in {"lm", "_variants", "identities", "adapter_names"}:
            raise AttributeError(name)
        return getattr(self.lm, name)


class HFAdapterVariant:
    """One variant (the base or one adapter) of an ``HFAdapterSet``: an LM with its own fingerprint."""

    capabilities = HFCausalLM.capabilities

    def __init__(self, owner: HFAdapterSet, name: str | None, fingerprint: ModelFingerprint) -> None:
        self.owner = owner
        self.name = name
        self.fingerprint = fingerprint

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Progress | None = None) -> list[LLResult]:
        with self.owner.active(self.name):
            return self.owner.lm.loglikelihood(reqs, progress)

    def loglikelihood_rolling(self, reqs: Sequence[RollingRequest], progress: Progress | None = None
                              ) -> list[LLResult]:
        with self.owner.active(self.name):
            return self.owner.lm.loglikelihood_rolling(reqs, progress)

    def generate(self, reqs: Sequence[GenRequest], progress: Progress | None = None) -> list[str]:
        with self.owner.active(self.name):
            return self.owner.lm.generate(reqs, progress)

    def token_logprobs(self, reqs: Sequence[LLRequest]) -> Any:
        with self.owner.active(self.name):
            return self.owner.lm.token_logprobs(reqs)

    def stats(self) -> EngineStats:
        return self.owner.lm.stats()

    def token_count(self, text: str) -> int:
        return self.owner.lm.token_count(text)

    def __getattr__(self, name: str) -> Any:  # tokenizer, max_length, render_chat, …: the base model's
        if name.startswith("__") or name in {"owner", "name", "fingerprint"}:
            raise AttributeError(name)
        return getattr(self.owner.lm, name)
