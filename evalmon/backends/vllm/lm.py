"""``backend: vllm``: a checkpoint in-process through vLLM's offline ``LLM`` (CUDA GPU).

``VLLMLM(cfg)`` imports vllm and builds the engine (tensor/pipeline/data parallel settings passed through);
where vllm is not installed or no CUDA GPU is visible it is a one-line ``ModelError`` before anything
loads. Loglikelihood requests go through ``prompt_logprobs``, generation through ``generate``
(``mapping.py``: the pure request ↔ vLLM mapping). ``adapters`` are LoRA adapters on the one engine: each
``variant(name)`` sends its prompts with that adapter's ``LoRARequest`` and has its own fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalmon.backends.vllm.config import VLLMModelConfig
from evalmon.backends.vllm.mapping import (
    encode_pair,
    gen_prompt,
    gen_text,
    ll_prompt,
    ll_result,
    ll_sampling_kwargs,
    sampling_kwargs,
)
from evalmon.core.errors import ModelError
from evalmon.core.lm import EngineStats, GenRequest, LLRequest, LLResult, ModelFingerprint, Progress

HINT = "run on a machine with a CUDA GPU and `pip install vllm`, or use model.backend: hf (CPU) / openai (a server)"


def import_vllm() -> Any:
    """The vllm module, or a one-line error (vllm absent, or no CUDA GPU for it)."""
    try:
        import vllm
    except ImportError as exc:
        raise ModelError(f"model.backend: vllm needs the vllm package, which is not installed ({exc.name or exc})",
                         hint=HINT) from None
    try:
        import torch

        gpu = bool(torch.cuda.is_available())
    except ImportError:
        gpu = False
    if not gpu:
        raise ModelError("model.backend: vllm needs a CUDA GPU and none is visible", hint=HINT)
    return vllm


class VLLMLM:
    """The LM protocol on a ``vllm.LLM`` (see the module doc)."""

    capabilities = frozenset({"loglikelihood", "generate", "adapters"})

    def __init__(self, cfg: VLLMModelConfig, *, _engine: Any = None, _variant: str | None = None) -> None:
        self.cfg = cfg
        self._vllm = import_vllm() if _engine is None else None
        self.llm = _engine if _engine is not None else self._vllm.LLM(**cfg.llm_kwargs())
        self.tokenizer = self.llm.get_tokenizer()
        self.adapter_names: tuple[str, ...] = tuple(cfg.adapters or {})
        self._variant = _variant
        self.max_length = int(cfg.max_length or self.llm.llm_engine.model_config.max_model_len)
        self.fingerprint = self._fingerprint()
        self._stats = EngineStats()

    def _fingerprint(self) -> ModelFingerprint:
        from evalmon.backends.hf.fingerprint import adapter_config_hash
        from evalmon.backends.hf.identity import weights_fingerprint

        path = Path(self.cfg.path)
        adapter = (self.cfg.adapters or {}).get(self._variant) if self._variant else None
        return ModelFingerprint(
            backend="vllm", model=str(path.resolve()) if path.exists() else self.cfg.path, revision=self.cfg.revision,
            weights_hash=weights_fingerprint(path) if path.is_dir() else None, adapter=adapter,
            adapter_config_hash=adapter_config_hash(Path(adapter)) if adapter else None,
            dtype=str(self.llm.llm_engine.model_config.dtype).removeprefix("torch."), device="cuda",
            max_length=self.max_length, batch_size=self.cfg.batch_size,
            extra={"tensor_parallel_size": self.cfg.tensor_parallel_size,
                   "data_parallel_size": self.cfg.data_parallel_size})

    def variant(self, name: str | None) -> VLLMLM:
        if name is not None and name not in self.adapter_names:
            raise ModelError(f"model.adapters: no adapter {name!r}", hint=f"one of {', '.join(self.adapter_names)}")
        return VLLMLM(self.cfg, _engine=self.llm, _variant=name)

    def _lora(self) -> Any:
        if self._variant is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(self._variant, 1 + self.adapter_names.index(self._variant), self.cfg.adapters[self._variant])

    def _encode(self, text: str, special: bool | None) -> list[int]:
        return list(self.tokenizer.encode(text) if special is None else
                    self.tokenizer.encode(text, add_special_tokens=special))

    def _context(self, r: LLRequest | GenRequest) -> str:
        if r.messages is None:
            return r.context
        return str(self.tokenizer.apply_chat_template([{"role": a, "content": b} for a, b in r.messages],
                                                      tokenize=False, add_generation_prompt=True))

    def stats(self) -> EngineStats:
        return self._stats

    def token_count(self, text: str) -> int:
        return len(self._encode(text, False))

    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        out = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False,
                                lora_request=self._lora())
        self._stats.tokens += sum(len(p) for p in prompts)
        return list(out)

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Progress | None = None) -> list[LLResult]:
        from vllm import SamplingParams

        prefix = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        self._stats = EngineStats()
        params = SamplingParams(**ll_sampling_kwargs())
        results: list[LLResult] = []
        for start in range(0, len(reqs), self.cfg.batch_size):
            chunk = reqs[start:start + self.cfg.batch_size]
            prompts = [ll_prompt(*encode_pair(self._encode, self._context(r), r.continuation, prefix),
                                 self.max_length) for r in chunk]
            outs = self._run([p.prompt for p in prompts], [params] * len(prompts))
            done = [ll_result(o.prompt_logprobs, p) for o, p in zip(outs, prompts, strict=True)]
            results.extend(done)
            if progress:
                progress([(start + i, res) for i, res in enumerate(done)])
        return results

    def generate(self, reqs: Sequence[GenRequest], progress: Progress | None = None) -> list[str]:
        from vllm import SamplingParams

        self._stats = EngineStats()
        texts: list[str] = []
        for start in range(0, len(reqs), self.cfg.batch_size):
            chunk = reqs[start:start + self.cfg.batch_size]
            prompts = [gen_prompt(self._encode(self._context(r), None), self.max_length, r.max_gen_toks)
                       for r in chunk]
            outs = self._run(prompts, [SamplingParams(**sampling_kwargs(r)) for r in chunk])
            done = [gen_text(o, r) for o, r in zip(outs, chunk, strict=True)]
            texts.extend(done)
            if progress:
                progress([(start + i, t) for i, t in enumerate(done)])
        return texts
