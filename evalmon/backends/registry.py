"""Model config → LM backend (lazy imports: torch/transformers load only when a model is built)."""

from __future__ import annotations

from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.core.lm import LM


def load_lm(model_cfg: Any) -> LM:
    backend = getattr(model_cfg, "backend", "hf")
    if backend == "hf":
        from evalmon.backends.hf.model import HFCausalLM, HFSettings

        return HFCausalLM(HFSettings(
            path=str(model_cfg.path), revision=model_cfg.revision, dtype=model_cfg.dtype,
            device=model_cfg.device, batch_size=model_cfg.batch_size, max_length=model_cfg.max_length,
            adapter=str(model_cfg.adapter) if model_cfg.adapter else None,
            trust_remote_code=model_cfg.trust_remote_code, add_bos_token=model_cfg.add_bos_token,
            chat_template_fallback=getattr(model_cfg, "chat_template_fallback", "error"),
            scoring=getattr(model_cfg, "scoring", "packed"), token_budget=getattr(model_cfg, "token_budget", None),
            gguf=getattr(model_cfg, "gguf", None)))
    if backend == "openai":
        from evalmon.backends.openai_compat import OpenAICompatLM

        return OpenAICompatLM(model_cfg)
    if backend == "hf_asr":
        from evalmon.backends.asr_hf import load_asr

        return load_asr(model_cfg)
    if backend == "none":
        from evalmon.backends.none import NoModel

        return NoModel()
    raise ConfigError(f"model.backend: unknown backend {backend!r}", hint="use hf, openai, hf_asr or none")
