"""Generation engine: identical to lm-eval's generate_until; greedy outputs cached, sampled ones not."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.backends.hf.generate import cut_at_stops
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ModelError
from evalmon.core.lm import GenRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_generate

PROMPTS = [
    "Q: What does the licence permit?\nA: Let's think step by step.",
    "The GNU General Public License is",
    "Permission is hereby granted, free of charge,",
    "x",
    "Q: Is this a question?\nA:",
]


def test_cut_at_stops_matches_lm_eval() -> None:
    from lm_eval.models.utils import postprocess_generated_text

    for text in ["abc Q: def", "no stop", "a\n\nb Q: c", "</s>tail", ""]:
        stops = ["Q:", "\n\n", "</s>"]
        assert cut_at_stops(text, stops) == postprocess_generated_text(text, stops, None)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_greedy_generation_identical_to_lm_eval(tiny_checkpoint: Path, batch_size: int) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    until = ["Q:", "\n\n"]
    ours = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=batch_size))
    mine = ours.generate([GenRequest(p, until=tuple(until), max_gen_toks=40) for p in PROMPTS])
    lm = HFLM(pretrained=str(tiny_checkpoint), batch_size=batch_size, dtype="float32", device="cpu")
    theirs = lm.generate_until([
        Instance(request_type="generate_until", doc={}, idx=i,
                 arguments=(p, {"until": list(until), "max_gen_toks": 40, "do_sample": False}))
        for i, p in enumerate(PROMPTS)], disable_tqdm=True)
    assert mine == theirs
    assert any(mine)  # the tiny model does produce text


def test_generation_cache_and_sampling(tiny_checkpoint: Path, tmp_path: Path) -> None:
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=2))
    cache = ResponseCache(tmp_path / "c.sqlite")
    greedy = [GenRequest(p, max_gen_toks=16) for p in PROMPTS[:3]]
    first, s1 = run_generate(lm, [*greedy, greedy[0]], cache)
    assert s1.unique == 3 and s1.computed == 3 and first[0] == first[3]
    second, s2 = run_generate(lm, greedy, cache)
    assert s2.computed == 0 and s2.cached == 3 and second == first[:3]
    sampled = [GenRequest(PROMPTS[1], max_gen_toks=16, temperature=1.0, seed=5)] * 2
    _, s3 = run_generate(lm, sampled, cache)
    assert s3.computed == 2 and s3.cached == 0  # never cached, never deduplicated
    again, _ = run_generate(lm, sampled[:1], cache)
    repeat, _ = run_generate(lm, sampled[:1], cache)
    assert again == repeat  # seeded


def test_chat_template_missing_is_clear_or_falls_back(tiny_checkpoint: Path) -> None:
    msgs = (("user", "Hello"),)
    strict = HFCausalLM(HFSettings(path=str(tiny_checkpoint)))
    with pytest.raises(ModelError, match="no chat template"):
        strict.generate([GenRequest("", messages=msgs, max_gen_toks=4)])
    plain = HFCausalLM(HFSettings(path=str(tiny_checkpoint), chat_template_fallback="plain"))
    assert plain.render_chat(msgs) == "User: Hello\n\nAssistant:"
    out = plain.generate([GenRequest("", messages=msgs, max_gen_toks=4)])
    assert isinstance(out[0], str)
    plain.tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    assert plain.render_chat(msgs) == "<user>Hello<assistant>"
