"""Tiny offline checkpoints for the test session: a random Llama, a LoRA adapter, a bad adapter.

Built once per session with evalmon's own builder (BPE tokenizer trained with ``tokenizers`` on local
text, random-init ``LlamaForCausalLM`` trained a few steps so its distributions are not flat).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[3] / "shared"
BENCHMARKS = SHARED / "benchmarks"


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    assert BENCHMARKS.is_dir(), f"shared benchmark data not found at {BENCHMARKS}"
    return BENCHMARKS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evalmon.checkpoints import TinySpec, build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llama", TinySpec(train_steps=30))


@pytest.fixture(scope="session")
def tiny_lora(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for the tiny checkpoint with non-zero B so it changes the numbers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mismatched_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter trained for a different (wider) base: loading it on tiny_checkpoint must fail."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=2048, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                             init_lora_weights=False))
    out = tmp_path_factory.mktemp("badlora") / "adapter"
    model.save_pretrained(out)
    return out
