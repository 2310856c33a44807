"""perplexity task type: lm-eval parity at task level, metric arithmetic, sources and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.core.lm import EngineStats, LLResult, ModelFingerprint, RollingRequest
from evalmon.harness.evaluate import evaluate_task
from evalmon.metrics import perplexity as ppl
from evalmon.tasks.base import TaskOptions, build_task


def test_metric_arithmetic_matches_lm_eval() -> None:
    from lm_eval.api import metrics as lm

    items = [[-120.5, 30], [-10.25, 4], [-300.0, 81]]
    assert ppl.weighted_perplexity(items) == lm.weighted_perplexity(items)
    assert ppl.bits_per_byte(items) == lm.bits_per_byte(items)
    assert ppl.count_words(" a  b\tc\n") == len(__import__("re").split(r"\s+", " a  b\tc\n")) == 5
    se = ppl.bootstrap_stderr("word_perplexity", items * 5, 200, 7)
    assert se is not None and se > 0 and se == ppl.bootstrap_stderr("word_perplexity", items * 5, 200, 7)


def test_medical_perplexity_matches_lm_eval(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    """The same PubMedQA abstracts through lm-eval's simple_evaluate (loglikelihood_rolling task YAML)
    and evalmon: per-document loglikelihood within 1e-4, word/byte perplexity and bits/byte equal."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    task = build_task("medical_perplexity", TaskOptions(data_dir=benchmarks_dir, limit=6,
                                                        extra={"bootstrap_iters": 100}))
    name = task.lmeval_export(tmp_path / "lmeval")  # type: ignore[attr-defined]
    hflm = HFLM(pretrained=str(tiny_checkpoint), batch_size=4, dtype="float32", device="cpu", max_length=128)
    theirs = lm_eval.simple_evaluate(model=hflm, tasks=[name], log_samples=True, bootstrap_iters=0,
                                     task_manager=TaskManager(include_path=str(tmp_path / "lmeval"),
                                                              include_defaults=False))
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, max_length=128))
    result, samples = evaluate_task(task, lm, None, lambda n: None, seed=11)
    by_id = {s["doc"]["id"]: s for s in theirs["samples"][name]}
    assert len(by_id) == len(samples) == 6
    for s in samples:
        ref = by_id[s.doc_id]
        assert abs(s.loglikelihoods[0] - float(ref["resps"][0][0])) <= 1e-4
        assert s.items["word_perplexity"][1] == ref["word_perplexity"][1]  # same word / byte counts
        assert s.items["bits_per_byte"][1] == ref["bits_per_byte"][1]
        assert s.extra["tokens"] > 128  # several windows per abstract
    for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert math.isclose(result.metrics[m].value, theirs["results"][name][f"{m},none"], rel_tol=1e-6)
        assert result.metrics[m].stderr is not None and result.metrics[m].stderr > 0
        assert result.metrics[m].higher_is_better is False
    assert result.config["bootstrap"]["seed"] == 11 and result.config["bootstrap"]["iters"]["bits_per_byte"] == 100


class _FakeRolling:
    """Loglikelihood = -1 nat per character, to check the arithmetic end to end without a model."""

    fingerprint = ModelFingerprint(backend="fake", model="fake")
    capabilities = frozenset({"rolling"})

    def loglikelihood(self, reqs: object, progress: object = None) -> list[LLResult]:
        raise NotImplementedError

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return len(text)

    def loglikelihood_rolling(self, reqs: list[RollingRequest], progress: object = None) -> list[LLResult]:
        out = [LLResult(-float(len(r.text)), False, len(r.text)) for r in reqs]
        if progress:
            progress(list(enumerate(out)))
        return out


def test_generic_task_from_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one two three\n\nfour five\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "héllo wörld"}) + "\n\n" + json.dumps({"body": "x"}) + "\n")
    task = build_task("perplexity", TaskOptions(base_dir=tmp_path, extra={
        "path": ["*.txt", "b.jsonl"], "text_field": "body", "txt_split": "paragraph", "bootstrap_iters": 50}))
    texts = [d.text for d in task.docs()]
    assert texts == ["one two three", "four five\n", "héllo wörld", "x"]
    result, samples = evaluate_task(task, _FakeRolling(), None, lambda n: None)
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode()) for t in texts)
    words = sum(ppl.count_words(t) for t in texts)
    assert math.isclose(result.metrics["bits_per_byte"].value, chars / nbytes / math.log(2))
    assert math.isclose(result.metrics["byte_perplexity"].value, math.exp(chars / nbytes))
    assert math.isclose(result.metrics["word_perplexity"].value, math.exp(chars / words))
    assert [s.doc_id for s in samples] == ["a.txt:0", "a.txt:1", "b.jsonl:1", "b.jsonl:3"]


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exactly one of options\.path"):
        build_task("perplexity", TaskOptions())
    with pytest.raises(ConfigError, match="did you mean: text_field"):
        build_task("perplexity", TaskOptions(extra={"path": "x", "textfield": "t"}))
    with pytest.raises(DataError, match="no file matches"):
        build_task("perplexity", TaskOptions(base_dir=tmp_path, extra={"path": "*.txt"}))
    (tmp_path / "bad.jsonl").write_text('{"text": 3}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:line 1"):
        build_task("perplexity", TaskOptions(base_dir=tmp_path, extra={"path": "bad.jsonl"}))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="no non-empty documents"):
        build_task("perplexity", TaskOptions(base_dir=tmp_path, extra={"path": "empty.txt"}))
