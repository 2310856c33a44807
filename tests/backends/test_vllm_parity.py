"""The vLLM mapping's numerics against the hf backend without vLLM: on the tiny checkpoint, the prompt that
``encode_pair`` + ``ll_prompt`` build, scored position by position and handed to ``ll_result`` in vLLM's
``prompt_logprobs`` shape (``{token: Logprob(logprob, rank)}``, None first), gives the hf backend's
loglikelihoods and greediness (fp32, ≤ 1e-4 per request: batch composition only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from evalmon.backends.vllm.mapping import encode_pair, ll_prompt, ll_result
from evalmon.core.lm import LLRequest

pytestmark = pytest.mark.accuracy


@dataclass
class Logprob:
    logprob: float
    rank: int


def test_prompt_logprobs_mapping_equals_hf(tiny_checkpoint: Path) -> None:
    import torch

    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, scoring="plain"))
    reqs = [LLRequest("The cat sat on the", " mat"), LLRequest("The cat sat on the ", "warm mat today"),
            LLRequest("", "hello world"), LLRequest("Question: two plus two?\nAnswer:", " four")]
    expected = lm.loglikelihood(reqs)

    def encode(text: str, special: bool | None) -> list[int]:
        return lm.tok_encode(text, add_special_tokens=special)

    for r, want in zip(reqs, expected, strict=True):
        prompt = ll_prompt(*encode_pair(encode, r.context, r.continuation, lm.prefix_token_id), lm.max_length)
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(torch.tensor([prompt.prompt])).logits[0].float(), dim=-1)
        shaped: list[dict[int, Logprob] | None] = [None]
        for pos in range(1, len(prompt.prompt)):
            row, tok = logp[pos - 1], prompt.prompt[pos]
            shaped.append({tok: Logprob(float(row[tok]), int((row > row[tok]).sum()) + 1)})
        got = ll_result(shaped, prompt)
        assert got.logprob == pytest.approx(want.logprob, abs=1e-4), r
        assert got.is_greedy == want.is_greedy and got.n_tokens == want.n_tokens
