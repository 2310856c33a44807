"""Packed scoring on every attention variant: sliding window, mixed sliding/full, chunked, soft-capping.

Each case is a tiny random model of a real transformers architecture whose window/chunk (8 tokens) is far
shorter than the scored contexts, so a packed mask that ignored it (the Gemma-3 bug: one 4-D ancestor
mask for every layer) gives different numbers. Packed must equal the plain path (= lm-eval's) request by
request; layer types that cannot be packed must be refused, and a wrong mask rule must be caught by the
backend's probe, never returned as numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from evalmon.backends.hf import attention
from evalmon.backends.hf.attention import attention_layout
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.lm import LLRequest

pytestmark = pytest.mark.unit

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 8, "max_position_embeddings": 256}


def _configs() -> dict[str, Any]:
    from transformers import Gemma2Config, Gemma3TextConfig, Llama4TextConfig, MistralConfig, Qwen2Config

    return {
        "gemma3-mixed": Gemma3TextConfig(**SMALL, num_hidden_layers=3, sliding_window=8,
                                         layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
        "gemma2-softcap": Gemma2Config(**SMALL, num_hidden_layers=2, sliding_window=8, attn_logit_softcapping=5.0,
                                       final_logit_softcapping=3.0),
        "mistral-sliding": MistralConfig(**SMALL, num_hidden_layers=2, sliding_window=8),
        "qwen2-window-layers": Qwen2Config(**SMALL, num_hidden_layers=2, use_sliding_window=True, sliding_window=8,
                                           max_window_layers=1),
        "llama4-chunked": Llama4TextConfig(**SMALL, num_hidden_layers=2, attention_chunk_size=8,
                                           intermediate_size_mlp=64, num_local_experts=1, no_rope_layer_interval=2,
                                           interleave_moe_layer_step=1, moe_layers=[]),
    }


def _build(kind: str, tiny_checkpoint: Path, root: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out = root / kind
    if (out / "config.json").is_file():
        return out
    cfg = _configs()[kind]
    tok_src = tiny_checkpoint
    cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 2048, 1, 2, 0
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    for p in model.parameters():  # sharper attention than the default init, so masks matter
        p.data.normal_(0, 0.3)
    model.save_pretrained(out)
    for f in tok_src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attn-variants")


def _requests() -> list[LLRequest]:
    long = " ".join(f"w{i}" for i in range(40))  # ~80 tokens: ten windows/chunks of 8
    return [LLRequest(long, " alpha beta"), LLRequest(long, " gamma"), LLRequest(long[:60], " delta"),
            LLRequest("short", " x y z"), LLRequest(long + " and more", " tail")]


@pytest.mark.parametrize("kind", ["gemma3-mixed", "gemma2-softcap", "mistral-sliding", "qwen2-window-layers",
                                  "llama4-chunked"])
def test_packed_equals_plain_on_attention_variant(kind: str, tiny_checkpoint: Path, models_root: Path) -> None:
    path = _build(kind, tiny_checkpoint, models_root)
    packed = HFCausalLM(HFSettings(path=str(path), token_budget=4096))
    plain = HFCausalLM(HFSettings(path=str(path), scoring="plain"))
    assert packed.fingerprint.extra["scoring"] == "packed", packed.fingerprint.extra.get("packed_unsupported")
    assert packed._layout.span == 8
    reqs = _requests()
    a, b = packed.loglikelihood(reqs), plain.loglikelihood(reqs)
    assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)) <= 1e-4
    assert [x.is_greedy for x in a] == [y.is_greedy for y in b]


def test_a_mask_that_ignores_the_window_is_caught_by_the_probe(tiny_checkpoint: Path, models_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The old behaviour (one ancestor mask for all layers) differs on Gemma-3: the probe must refuse it."""
    path = _build("gemma3-mixed", tiny_checkpoint, models_root)
    import dataclasses

    import evalmon.backends.hf.model as hf

    real = hf.attention_layout
    monkeypatch.setattr(hf, "attention_layout", lambda cfg: dataclasses.replace(real(cfg), layer_types=(attention.FULL,)))
    lm = HFCausalLM(HFSettings(path=str(path)))
    assert lm.scoring == "plain"
    assert "differ" in lm.fingerprint.extra["packed_unsupported"]


def test_layer_types_that_cannot_be_packed_are_refused() -> None:
    from transformers import Gemma3TextConfig, LlamaConfig

    hybrid = LlamaConfig(**SMALL, num_hidden_layers=2)
    hybrid.layer_types = ["linear_attention", "full_attention"]
    layout = attention_layout(hybrid)
    assert layout.unsupported and "linear_attention" in layout.unsupported
    assert attention_layout(LlamaConfig(**SMALL, num_hidden_layers=1)).layer_types == (attention.FULL,)
    g = attention_layout(Gemma3TextConfig(**SMALL, num_hidden_layers=2, sliding_window=8,
                                          layer_types=["sliding_attention", "full_attention"]))
    assert g.unsupported is None and set(g.layer_types) == {attention.SLIDING, attention.FULL}


def test_eager_attention_gets_an_additive_mask(tiny_checkpoint: Path, models_root: Path) -> None:
    """Eager attention adds the mask to the scores: a boolean mask would silently be +1/+0."""
    import json

    path = _build("gemma3-mixed", tiny_checkpoint, models_root)
    eager = models_root / "gemma3-eager"
    if not eager.exists():
        shutil.copytree(path, eager)
        cfg = json.loads((eager / "config.json").read_text())
        cfg["_attn_implementation"] = "eager"
        cfg["attn_implementation"] = "eager"
        (eager / "config.json").write_text(json.dumps(cfg))
    packed = HFCausalLM(HFSettings(path=str(eager), token_budget=4096))
    if packed.model.config._attn_implementation != "eager":  # config key not honoured: force it on the instance
        packed.model.config._attn_implementation = "eager"
        packed._layout = attention_layout(packed.model.config)
    assert packed._layout.additive
    assert packed._probe_packed() is None
    plain = HFCausalLM(HFSettings(path=str(path), scoring="plain"))
    reqs = _requests()
    a, b = packed.loglikelihood(reqs), plain.loglikelihood(reqs)
    assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)) <= 1e-4
