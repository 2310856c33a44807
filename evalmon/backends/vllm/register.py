"""Registers ``backend: vllm`` (entry point ``evalmon.backends: vllm``); vllm itself loads only with the model."""

from __future__ import annotations

from typing import Any

from evalmon.backends.vllm.config import VLLMModelConfig
from evalmon.core import registry
from evalmon.core.lm import LM


@registry.backends.register("vllm", config=VLLMModelConfig, spec_key="path",
                            description="a checkpoint in-process on vLLM (CUDA GPU)",
                            hints={"tensor_parallel_size": "a whole number of GPUs ≥ 1",
                                   "engine_args": "a mapping of other vllm.EngineArgs fields"})
def _vllm(model_cfg: Any) -> LM:
    from evalmon.backends.vllm.lm import VLLMLM

    lm: LM = VLLMLM(model_cfg)
    return lm
