"""Model backends by name (``model.backend``) through ``evalmon.core.registry.backends``.

A backend registers a loader ``(model_config) -> LM`` with metadata ``config`` (the pydantic class that
validates ``model:`` when ``backend: <name>``), ``spec_key`` (what a bare ``--model <name>:<value>`` fills),
``description`` (shown in hints) and optionally ``hints`` (per-key "what to do" texts). This module is the
entry point of evalmon's own backends; loaders import torch/transformers/httpx only when a model is built.
A third-party backend is one module (config class + loader + ``@registry.backends.register``) and an entry
point in the group ``evalmon.backends``.
"""

from __future__ import annotations

from typing import Any

from evalmon.config.models import ASRModelConfig, HFModelConfig, NoModelConfig, OpenAIModelConfig
from evalmon.core import registry
from evalmon.core.lm import LM


@registry.backends.register("hf", config=HFModelConfig, spec_key="path", description="a local/hub checkpoint")
def _hf(model_cfg: Any) -> LM:
    from evalmon.backends.hf.lazy import load_hf  # the model loads on the first response-cache miss
    from evalmon.backends.hf.model import HFSettings

    load: Any = load_hf
    if getattr(model_cfg, "adapters", None):  # one base, many adapters (backends/hf/adapters.py): loaded now
        from evalmon.backends.hf.adapters import HFAdapterSet

        def load(settings: HFSettings) -> LM:
            return HFAdapterSet(settings, dict(model_cfg.adapters))
    return load(HFSettings(
        path=str(model_cfg.path), revision=model_cfg.revision, dtype=model_cfg.dtype,
        device=model_cfg.device, batch_size=model_cfg.batch_size, max_length=model_cfg.max_length,
        adapter=str(model_cfg.adapter) if model_cfg.adapter else None,
        trust_remote_code=model_cfg.trust_remote_code, add_bos_token=model_cfg.add_bos_token,
        chat_template_fallback=getattr(model_cfg, "chat_template_fallback", "error"),
        scoring=getattr(model_cfg, "scoring", "packed"),
        token_budget=getattr(model_cfg, "token_budget", None), gguf=getattr(model_cfg, "gguf", None)))


@registry.backends.register("openai", config=OpenAIModelConfig, spec_key="base_url",
                            description="an OpenAI-compatible server")
def _openai(model_cfg: Any) -> LM:
    from evalmon.backends.openai_compat import OpenAICompatLM

    return OpenAICompatLM(model_cfg)


@registry.backends.register("hf_asr", config=ASRModelConfig, spec_key="path",
                            description="a speech recognition checkpoint")
def _hf_asr(model_cfg: Any) -> LM:
    from evalmon.backends.asr_hf import load_asr

    return load_asr(model_cfg)


@registry.backends.register("none", config=NoModelConfig, description="score existing outputs")
def _none(model_cfg: Any) -> LM:
    from evalmon.backends.none import NoModel

    return NoModel()


def load_lm(model_cfg: Any) -> LM:
    """The LM for a validated model config (its ``backend`` names the registered loader)."""
    loader = registry.backends.get(getattr(model_cfg, "backend", "hf"), where="model.backend")
    lm: LM = loader(model_cfg)
    return lm
