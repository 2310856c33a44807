"""samples.jsonl.gz keeps each document's prompt text (its tail when long), so a reader sees why a document
failed; a suite opts out with ``samples: {text: false}`` (``--no-sample-text``) and then no prompt text is
written at all. The suite hash does not depend on the option."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalmon.config.suite import SuiteConfig, suite_hash
from evalmon.core.lm import EngineStats, LLRequest, LLResult, ModelFingerprint
from evalmon.core.results import PROMPT_TEXT_CHARS, clip_prompt, read_samples, write_samples
from evalmon.harness.evaluate import Models, evaluate_task
from evalmon.tasks.base import MetricSpec, Task


class LengthLM:
    """Loglikelihood = minus the continuation's length (in-process, no model)."""

    def __init__(self) -> None:
        self.fingerprint = ModelFingerprint(backend="length", model="length", max_length=0)
        self.capabilities = frozenset({"loglikelihood"})

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Any = None) -> list[LLResult]:
        out = [LLResult(-float(len(r.continuation)), False, 1) for r in reqs]
        if progress:
            progress(list(enumerate(out)))
        return out

    def stats(self) -> EngineStats:
        return EngineStats()


class Pick(Task):
    """Two documents: a short prompt and a long few-shot-like one whose question is at the end."""

    def __init__(self) -> None:
        self.name, self.source, self.num_fewshot = "pick", "(test)", 0
        self.metrics = {"acc": MetricSpec("acc", kind="binary")}
        self.prompts = ["Q: 2+2?\nA:", "shot. " * 1000 + "Q: which is shortest?\nA:"]

    def docs(self) -> list[Any]:
        return [type("Doc", (), {"id": str(i), "text": p})() for i, p in enumerate(self.prompts)]

    def requests(self, doc: Any) -> list[LLRequest]:
        return [LLRequest(doc.text, " four"), LLRequest(doc.text, " 5")]

    def score(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]:
        return {"acc": float(results[0].logprob > results[1].logprob)}

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


def test_samples_keep_the_prompt_tail_and_opt_out_writes_none(tmp_path: Path) -> None:
    _, samples = evaluate_task(Pick(), Models(LengthLM()), None, lambda n: None)
    short, long = samples
    assert short.prompt == "Q: 2+2?\nA:"
    assert long.prompt is not None and long.prompt.endswith("Q: which is shortest?\nA:")
    cut = len(Pick().prompts[1]) - PROMPT_TEXT_CHARS
    assert long.prompt.startswith(f"[… {cut} chars cut] ") and len(long.prompt) < PROMPT_TEXT_CHARS + 30
    write_samples(tmp_path / "with.jsonl.gz", samples)
    assert [s.prompt for s in read_samples(tmp_path / "with.jsonl.gz")] == [short.prompt, long.prompt]

    _, private = evaluate_task(Pick(), Models(LengthLM()), None, lambda n: None, sample_text=False)
    assert [s.prompt_hash for s in private] == [s.prompt_hash for s in samples]  # the hash stays
    write_samples(tmp_path / "without.jsonl.gz", private)
    with gzip.open(tmp_path / "without.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert rows and all("prompt" not in r for r in rows)
    assert "shot." not in (tmp_path / "without.jsonl.gz").read_bytes().decode("latin-1")


def test_clip_prompt_keeps_short_text_whole() -> None:
    assert clip_prompt("abc", 3) == "abc"
    assert clip_prompt("abcdef", 2) == "[… 4 chars cut] ef"
    assert clip_prompt(clip_prompt("x" * 5000)) == clip_prompt("x" * 5000)  # clipping twice changes nothing


def test_suite_samples_text_option_is_not_hashed() -> None:
    base = {"name": "s", "model": {"backend": "hf", "path": "/m"}, "tasks": ["mmlu_anatomy"]}
    on, off = SuiteConfig.model_validate(base), SuiteConfig.model_validate({**base, "samples": {"text": False}})
    assert on.samples.text is True and off.samples.text is False
    assert suite_hash(on) == suite_hash(off)
