"""The lm probe's hidden states (``lm_hidden.HiddenStates``) batched by padded tokens: texts of very different
lengths never share a forward beyond the budget, and a text's vector does not depend on its batch-mates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalmon.monitor.signals import lm_hidden

pytestmark = pytest.mark.unit
TEMPLATE = ("{% for m in messages %}<|system|>You are a careful assistant.\n<|{{ m['role'] }}|>{{ m['content'] }}\n"
            "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def templated(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with a chat template (what the probe renders each text with)."""
    path = tmp_path_factory.mktemp("probe") / "tiny-chat"
    shutil.copytree(tiny_checkpoint, path)
    config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": TEMPLATE}), encoding="utf-8")
    return path


@pytest.mark.parametrize("pool", ["mean", "user+last"])
def test_texts_batch_by_padded_tokens_and_equal_each_text_alone(templated: Path, pool: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["x", "How do I kill a Python process?", "word " * 300, "short one", "the patient " * 60,
             "  two spaces", "日本語のテキスト" * 40, "a"]
    hs = lm_hidden.HiddenStates(templated, 1, 10_000, pool=pool)
    shapes: list[tuple[int, int]] = []
    hs.model.register_forward_pre_hook(lambda _m, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                       with_kwargs=True)
    together = hs.encode(texts)
    assert sorted(n for n, _ in shapes) != [len(texts)] and sum(n for n, _ in shapes) == len(texts)
    for rows, width in shapes:  # a forward pads to its longest text: never past the budget unless it is alone
        assert rows == 1 or rows * width <= lm_hidden.MAX_BATCH_TOKENS
    hs._memo.clear()
    alone = np.stack([hs.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5 * float(np.abs(alone).max()))
    assert hs.encode(texts[::-1]).tolist() == alone[::-1].tolist()  # memoised: the same vectors, in the order asked
    monkeypatch.setattr(lm_hidden, "CHUNK", 3)  # a big window is tokenised and batched a chunk at a time
    hs._memo.clear()
    np.testing.assert_allclose(hs.encode(texts), alone, rtol=1e-4, atol=1e-5 * float(np.abs(alone).max()))
