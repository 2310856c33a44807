"""usage signal: missing token counts filled with the model's own tokenizer where the record's model is known
(``tokenizers: {model: dir}``), chars/4 otherwise; the option leaves existing monitors' hashes unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalmon.core.errors import ConfigError
from evalmon.monitor.signals import UsageConfig
from evalmon.monitor.signals.usage import UsageSignal

PROMPTS = ["What is the capital of France?", "Résumé: naïve café — 3 × 4 = 12", "a" * 40]
RESPONSES = ["The capital of France is Paris.", "Bonjour!", "b" * 8]


@pytest.mark.e2e  # loads the real SmolLM2 tokenizer with transformers (seconds)
def test_missing_counts_use_the_models_tokenizer(smollm2_checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    df = pd.DataFrame({"model": ["smol", "smol", "other"], "prompt": PROMPTS, "response": RESPONSES,
                       "input_tokens": [None, 7, None], "output_tokens": [None, None, None],
                       "latency_ms": [1000.0, 1000.0, 1000.0]})
    out = UsageSignal(tokenizers={"smol": str(smollm2_checkpoint)}).compute(df)
    ref = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    count = lambda t: len(ref(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert out["usage.input_tokens"].tolist() == [count(PROMPTS[0]), 7, 10]  # row 2: unknown model, ceil(40/4)
    assert out["usage.output_tokens"].tolist() == [count(RESPONSES[0]), count(RESPONSES[1]), 2]
    assert count(PROMPTS[1]) != -(-len(PROMPTS[1]) // 4)  # the tokenizer is not the chars/4 estimate here
    assert out["usage.tokens_estimated"].tolist() == [1.0, 1.0, 1.0]
    star = UsageSignal(tokenizers={"*": str(smollm2_checkpoint / "tokenizer.json")}).compute(df)
    assert star["usage.output_tokens"].iloc[2] == count(RESPONSES[2])


def test_tokenizers_option_is_not_in_the_hash_unless_set(tmp_path: Path) -> None:
    assert "tokenizers" not in UsageConfig().model_dump()
    assert UsageConfig(tokenizers={"m": "/x"}).model_dump()["tokenizers"] == {"m": "/x"}
    assert "tokenizers" not in UsageSignal().options()
    df = pd.DataFrame({"model": ["m"], "prompt": ["hi"], "response": ["yo"]})
    with pytest.raises(ConfigError, match=r"signals.usage.tokenizers: cannot load .*tokenizer.json"):
        UsageSignal(tokenizers={"m": str(tmp_path)}).compute(df)
