"""``model: {backend: vllm, …}`` → pydantic (registered as the backend's ``config``; see ``register.py``).

The parallel and memory settings go to ``vllm.LLM`` as they are; ``engine_args`` passes any other
``vllm.EngineArgs`` field through (it may not repeat a key set here). ``adapters`` (name → LoRA dir) turns
on vLLM's multi-LoRA (``enable_lora``); each adapter is one ``LoRARequest`` and one variant of the model
(``model.adapters`` in the harness's adapter matrix, docs/adapters.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import StrictConfig
from evalmon.config.models import ADAPTER_NAME, resolve_ref

_OWN = {"model", "tokenizer", "revision", "dtype", "tensor_parallel_size", "pipeline_parallel_size",
        "data_parallel_size", "gpu_memory_utilization", "max_model_len", "seed", "trust_remote_code",
        "enable_lora", "max_lora_rank", "max_loras", "enforce_eager"}


class VLLMModelConfig(StrictConfig):
    """A checkpoint served in-process by vLLM's offline ``LLM`` (CUDA GPU)."""

    backend: Literal["vllm"] = "vllm"
    path: str = Field(min_length=1)
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_length: int | None = Field(None, ge=16)  # vLLM's max_model_len (None: the checkpoint's)
    batch_size: int = Field(256, ge=1)  # requests per LLM call (vLLM schedules within a call)
    seed: int = 0
    trust_remote_code: bool = False
    enforce_eager: bool = False
    adapters: dict[str, str] | None = None  # LoRA adapters (name → dir): enable_lora + one LoRARequest each
    max_lora_rank: int = Field(16, ge=1)
    device: Literal["cuda"] = "cuda"
    engine_args: dict[str, Any] = Field(default_factory=dict)  # other vllm.EngineArgs fields, passed through

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: str, info: ValidationInfo) -> str:
        ctx = info.context
        return resolve_ref(v, ctx.get("base_dir") if isinstance(ctx, dict) else None)

    @field_validator("adapters")
    @classmethod
    def _adapters(cls, v: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if v is None:
            return None
        if not v:
            raise PydanticCustomError("empty", "no adapters listed", {"hint": "list name: path pairs, or drop it"})
        ctx = info.context
        base = ctx.get("base_dir") if isinstance(ctx, dict) else None
        for name in v:
            if name == "base" or not ADAPTER_NAME.fullmatch(name):
                raise PydanticCustomError("adapter_name", "adapter name '{name}' is not allowed",
                                          {"name": name, "hint": "letters, digits, '_', '.', '-'; not 'base'"})
        return {n: resolve_ref(p, base) for n, p in v.items()}

    @model_validator(mode="after")
    def _no_repeats(self) -> VLLMModelConfig:
        clash = sorted(set(self.engine_args) & _OWN)
        if clash:
            raise PydanticCustomError("conflict", "engine_args repeats {keys}, which this config sets",
                                      {"keys": ", ".join(clash), "hint": "set them as model keys, not in engine_args"})
        return self

    def llm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``vllm.LLM``."""
        kwargs: dict[str, Any] = {
            "model": self.path, "tokenizer": self.path, "revision": self.revision, "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size, "seed": self.seed,
            "gpu_memory_utilization": self.gpu_memory_utilization, "trust_remote_code": self.trust_remote_code,
            "enforce_eager": self.enforce_eager}
        if self.pipeline_parallel_size > 1:
            kwargs["pipeline_parallel_size"] = self.pipeline_parallel_size
        if self.data_parallel_size > 1:
            kwargs["data_parallel_size"] = self.data_parallel_size
        if self.max_length is not None:
            kwargs["max_model_len"] = self.max_length
        if self.adapters:
            kwargs.update(enable_lora=True, max_lora_rank=self.max_lora_rank, max_loras=len(self.adapters))
        return {**kwargs, **self.engine_args}
