"""LoRA adapters for adapter tests and benchmarks (peft, random non-zero B so they change the numbers)."""

from __future__ import annotations

from pathlib import Path


def make_lora(base: Path, out: Path, seed: int, alpha: int = 8) -> Path:
    """A LoRA adapter of ``base`` with random non-zero B (it changes the numbers), saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=alpha, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out)
    return out
