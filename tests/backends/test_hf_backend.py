"""hf backend: lm-eval-equal loglikelihoods, adapters, dtypes and clear load errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ModelError
from evalmon.core.lm import LLRequest

REQUESTS = [
    LLRequest("The cat sat on", " the mat"),
    LLRequest("", "Hello world, this starts with no context."),
    LLRequest("Question: 2+2?\nAnswer:", " A"),
    LLRequest("Question: 2+2?\nAnswer:", " B"),
    LLRequest("Question: 2+2?\nAnswer:", " C"),
    LLRequest("Trailing spaces move to the continuation   ", "word"),
    LLRequest("Licence text " * 60, " is long enough to be truncated from the left"),
    LLRequest("The cat sat on", " the mat"),  # duplicate
]


def lmeval_loglikelihood(path: Path, reqs: list[LLRequest], **kwargs) -> list[tuple[float, bool]]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(path), batch_size=kwargs.pop("batch_size", 4), dtype="float32", device="cpu", **kwargs)
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=(r.context, r.continuation), idx=i)
                 for i, r in enumerate(reqs)]
    return lm.loglikelihood(instances, disable_tqdm=True)


@pytest.mark.parametrize("max_length", [None, 64])
def test_loglikelihood_matches_lm_eval(tiny_checkpoint: Path, max_length: int | None) -> None:
    ours = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, max_length=max_length))
    theirs = lmeval_loglikelihood(tiny_checkpoint, REQUESTS, **({"max_length": max_length} if max_length else {}))
    got = ours.loglikelihood(REQUESTS)
    assert len(got) == len(theirs)
    for r, mine, (ll, greedy) in zip(REQUESTS, got, theirs, strict=True):
        assert abs(mine.logprob - ll) <= 1e-4, (r, mine.logprob, ll)
        assert mine.is_greedy == greedy
    # truncation really happened for the long request at max_length=64
    ctx, cont = ours.encode_pair(REQUESTS[6].context, REQUESTS[6].continuation)
    assert len(ctx) + len(cont) > ours.max_length + 1 if max_length == 64 else len(ctx) + len(cont) < ours.max_length


def test_bos_policy_and_empty_context(tiny_checkpoint: Path) -> None:
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint)))
    assert lm.fingerprint.bos_policy == "tokenizer-default"
    ctx, cont = lm.encode_pair("Some context", " more")
    assert ctx[0] == lm.tokenizer.bos_token_id  # this tokenizer adds BOS by default, like Llama's
    assert lm.tokenizer.bos_token_id not in cont
    ctx, cont = lm.encode_pair("", "alone")
    assert ctx == [lm.prefix_token_id] and cont and cont[0] != lm.prefix_token_id
    never = HFCausalLM(HFSettings(path=str(tiny_checkpoint), add_bos_token=False))
    assert never.encode_pair("Some context", " more")[0][0] != lm.tokenizer.bos_token_id
    assert never.fingerprint.bos_policy == "never"
    assert never.fingerprint.cache_key() != lm.fingerprint.cache_key()


def test_lora_adapter_changes_numbers_and_matches_lm_eval(tiny_checkpoint: Path, tiny_lora: Path) -> None:
    base = HFCausalLM(HFSettings(path=str(tiny_checkpoint)))
    tuned = HFCausalLM(HFSettings(path=str(tiny_checkpoint), adapter=str(tiny_lora)))
    reqs = REQUESTS[:5]
    a, b = base.loglikelihood(reqs), tuned.loglikelihood(reqs)
    assert any(abs(x.logprob - y.logprob) > 1e-3 for x, y in zip(a, b, strict=True))
    assert tuned.fingerprint.adapter == str(tiny_lora.resolve())
    assert tuned.fingerprint.adapter_hash and tuned.fingerprint.cache_key() != base.fingerprint.cache_key()
    theirs = lmeval_loglikelihood(tiny_checkpoint, reqs, peft=str(tiny_lora))
    for mine, (ll, _) in zip(b, theirs, strict=True):
        assert abs(mine.logprob - ll) <= 1e-4


def test_mismatched_adapter_is_a_clear_error(tiny_checkpoint: Path, mismatched_lora: Path) -> None:
    with pytest.raises(ModelError, match="does not match the base model"):
        HFCausalLM(HFSettings(path=str(tiny_checkpoint), adapter=str(mismatched_lora)))


def test_adapter_dir_without_config(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"adapter_config\.json"):
        HFCausalLM(HFSettings(path=str(tiny_checkpoint), adapter=str(tmp_path)))


def test_missing_checkpoint_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelError, match=re.escape(str(missing))):
        HFCausalLM(HFSettings(path=str(missing)))


def test_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        HFCausalLM(HFSettings(path=str(tmp_path)))


def test_non_causal_model_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from transformers import T5Config, T5ForConditionalGeneration

    T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2,
                                        d_kv=8)).save_pretrained(tmp_path / "t5")
    with pytest.raises(ModelError, match="not a causal language model"):
        HFCausalLM(HFSettings(path=str(tmp_path / "t5")))


def test_hub_id_offline_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # as a user's HF_HUB_OFFLINE=1 set before start reads: the hub library read the variable when a test before
    # this one imported it, and tried the network (up to 23 s in the unit lane before failing)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="offline"):
        HFCausalLM(HFSettings(path="meta-llama/NotAModel-1B"))


def test_dtype_and_device_validation(tiny_checkpoint: Path) -> None:
    bf16 = HFCausalLM(HFSettings(path=str(tiny_checkpoint), dtype="bfloat16"))
    assert bf16.fingerprint.dtype == "bfloat16"
    r = bf16.loglikelihood(REQUESTS[:2])
    assert all(x.logprob < 0 for x in r)
    with pytest.raises(ModelError, match="dtype"):
        HFCausalLM(HFSettings(path=str(tiny_checkpoint), dtype="int3"))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            HFCausalLM(HFSettings(path=str(tiny_checkpoint), device="cuda"))


def test_fingerprint_is_stable(tiny_checkpoint: Path) -> None:
    a = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=2))
    b = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=8))
    assert a.fingerprint.weights_hash and a.fingerprint.weights_hash.startswith("sha256:")
    assert a.fingerprint.cache_key() == b.fingerprint.cache_key()  # batch size doesn't change numbers' identity
    json.dumps(a.fingerprint.to_dict())
