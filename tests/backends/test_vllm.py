"""``backend: vllm`` without vLLM: the pure request ↔ vLLM mapping (prompt token ids, prompt_logprobs read from
vLLM-shaped outputs built here, SamplingParams arguments), the config (parallel settings and LoRA passed
through, one-line errors) and the one-line error where vllm or a GPU is absent."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from evalmon.backends.vllm.config import VLLMModelConfig
from evalmon.backends.vllm.mapping import (
    LLPrompt,
    encode_pair,
    gen_prompt,
    gen_text,
    ll_prompt,
    ll_result,
    ll_sampling_kwargs,
    sampling_kwargs,
)
from evalmon.config.suite import load_suite_text
from evalmon.core.errors import EvalmonError, ModelError
from evalmon.core.lm import GenRequest

YAML = "name: s\nmodel:\n  backend: vllm\n  path: /ckpt\n{extra}tasks: [hellaswag]\n"


@dataclass
class Logprob:  # vllm.sequence.Logprob's fields
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class Completion:
    text: str


@dataclass
class RequestOutput:  # the fields of vllm.RequestOutput this backend reads
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None]
    outputs: list[Completion]


def _encode(text: str, special: bool | None) -> list[int]:
    """A word-level toy tokenizer with a BOS (1) added by default, like SmolLM2's chat models do not and Gemma does."""
    ids = [100 + sum(map(ord, w)) % 50 for w in text.replace(" ", " _").split()]
    return ids if special is False else [1, *ids]


def test_encode_pair_moves_trailing_spaces_and_uses_the_prefix_for_an_empty_context() -> None:
    ctx, cont = encode_pair(_encode, "the cat ", "sat", prefix_token=1)
    whole = _encode("the cat sat", None)
    assert ctx == _encode("the cat", None) and ctx + cont == whole
    assert encode_pair(_encode, "", "sat down", prefix_token=1) == ([1], _encode("sat down", False))


def test_ll_prompt_truncates_left_and_scores_the_continuation() -> None:
    assert ll_prompt([1, 2, 3], [4, 5], max_length=16) == LLPrompt([1, 2, 3, 4, 5], 2)
    assert ll_prompt([1, 2, 3, 4, 5, 6], [7, 8], max_length=4) == LLPrompt([5, 6, 7, 8], 2)
    assert ll_prompt([1], [2, 3, 4, 5, 6], max_length=4) == LLPrompt([3, 4, 5, 6], 3)  # first kept token unscored
    with pytest.raises(ValueError, match="empty continuation"):
        ll_prompt([1], [], 8)


def test_ll_result_reads_vllm_prompt_logprobs() -> None:
    prompt = LLPrompt([1, 7, 8, 9], 2)
    out = RequestOutput(prompt.prompt, [None, {7: Logprob(-0.5, 1)},
                                        {8: Logprob(-1.25, 1, "x")},
                                        {9: Logprob(-2.0, 3), 4: Logprob(-0.1, 1)}], [Completion("")])
    res = ll_result(out.prompt_logprobs, prompt)
    assert res.logprob == pytest.approx(-3.25) and res.is_greedy is False and res.n_tokens == 2
    greedy = ll_result([None, None, {8: Logprob(-1.0, 1)}, {9: Logprob(-0.5, 1)}], prompt)
    assert greedy.logprob == pytest.approx(-1.5) and greedy.is_greedy is True
    no_rank = ll_result([None, None, {8: Logprob(-1.0)}, {9: Logprob(-0.5), 3: Logprob(-0.2)}], prompt)
    assert no_rank.is_greedy is False  # without ranks: the highest log-prob of the position decides
    with pytest.raises(ValueError, match="no logprob for prompt token 9"):
        ll_result([None, None, {8: Logprob(-1.0, 1)}, {3: Logprob(-0.5, 1)}], prompt)
    with pytest.raises(ValueError, match="3 prompt logprobs for 4 tokens"):
        ll_result([None, None, None], prompt)
    assert ll_sampling_kwargs() == {"max_tokens": 1, "prompt_logprobs": 1, "temperature": 0.0}


def test_generation_mapping() -> None:
    greedy = GenRequest("q", until=("\n\n", "Q:"), max_gen_toks=5)
    assert sampling_kwargs(greedy) == {"max_tokens": 5, "stop": ["\n\n", "Q:"], "temperature": 0.0}
    sampled = GenRequest("q", max_gen_toks=3, temperature=0.7, top_p=0.9, seed=11)
    assert sampling_kwargs(sampled) == {"max_tokens": 3, "stop": None, "temperature": 0.7, "top_p": 0.9, "seed": 11}
    assert gen_prompt(list(range(10)), max_length=8, max_gen_toks=5) == [7, 8, 9]
    with pytest.raises(ValueError, match="no room"):
        gen_prompt([1], max_length=8, max_gen_toks=8)
    out = RequestOutput([1], [None], [Completion(" yes Q: more")])
    assert gen_text(out, greedy) == " yes "


def test_config_passes_parallel_and_lora_settings_through(tmp_path: object) -> None:
    cfg = VLLMModelConfig.model_validate({
        "path": "/ckpt", "dtype": "bfloat16", "tensor_parallel_size": 2, "data_parallel_size": 2,
        "max_length": 4096, "adapters": {"a": "/loras/a", "b": "/loras/b"},
        "engine_args": {"enable_prefix_caching": True}})
    kwargs = cfg.llm_kwargs()
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["data_parallel_size"] == 2
    assert kwargs["max_model_len"] == 4096 and kwargs["dtype"] == "bfloat16" and kwargs["enable_prefix_caching"]
    assert kwargs["enable_lora"] is True and kwargs["max_loras"] == 2 and kwargs["model"] == "/ckpt"
    assert "pipeline_parallel_size" not in VLLMModelConfig(path="/ckpt").llm_kwargs()


@pytest.mark.parametrize(("extra", "needle"), [
    ("  engine_args: {tensor_parallel_size: 2}\n", "engine_args repeats tensor_parallel_size"),
    ("  tensor_parallel_size: 0\n", "model.tensor_parallel_size"),
    ("  adapters: {base: /x}\n", "adapter name 'base' is not allowed"),
    ("  gpu_memory_utilization: 1.5\n", "gpu_memory_utilization"),
])
def test_config_errors_are_one_line(extra: str, needle: str) -> None:
    with pytest.raises(EvalmonError) as exc:
        load_suite_text(YAML.format(extra=extra), "suite.yaml")
    line = exc.value.one_line()
    assert needle in line and "suite.yaml:" in line and "\n" not in line, line


def test_no_vllm_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.backends.registry import load_lm

    cfg = load_suite_text(YAML.format(extra=""), "suite.yaml")
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm → ImportError (as on this CPU machine)
    with pytest.raises(ModelError) as exc:
        load_lm(cfg.model)
    line = exc.value.one_line()
    assert "model.backend: vllm needs the vllm package" in line and "CUDA GPU" in line and "\n" not in line


def test_no_gpu_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.backends.registry import load_lm

    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # importable, but the machine has no GPU
    no_gpu = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", no_gpu)  # this machine's CPU torch says the same (not imported: 4 s)
    with pytest.raises(ModelError) as exc:
        load_lm(load_suite_text(YAML.format(extra=""), "suite.yaml").model)
    assert exc.value.one_line().startswith("model.backend: vllm needs a CUDA GPU and none is visible — ")
