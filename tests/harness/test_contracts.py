"""The LM and Task contracts: capabilities checked before anything runs, stages run on the model of their
role (a two-stage task on two different models), and the one judge factory over any backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evalmon.core.errors import ConfigError, ModelError, UnknownNameError
from evalmon.core.lm import CAPABILITIES, EngineStats, GenRequest, LLRequest, LLResult, ModelFingerprint
from evalmon.harness.cache import ResponseCache
from evalmon.harness.evaluate import Models, evaluate_task
from evalmon.tasks.base import CANDIDATE, MetricSpec, Stage, StageOutputs, Task


class Recorder:
    """A backend with the given capabilities that records every request it is sent."""

    def __init__(self, name: str, capabilities: set[str]) -> None:
        self.fingerprint = ModelFingerprint(backend="recorder", model=name, max_length=0)
        self.capabilities = frozenset(capabilities)
        self.sent: list[Any] = []

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Any = None) -> list[LLResult]:
        self.sent.extend(reqs)
        out = [LLResult(-float(len(r.context + r.continuation)), True, 1) for r in reqs]
        if progress:
            progress(list(enumerate(out)))
        return out

    def generate(self, reqs: Sequence[GenRequest], progress: Any = None) -> list[str]:
        self.sent.extend(reqs)
        out = [f"{self.fingerprint.model} says {r.context[::-1]}" for r in reqs]
        if progress:
            progress(list(enumerate(out)))
        return out

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return len(text.split())


class AnswerThenGrade(Task):
    """Stage 1: the candidate answers each prompt; stage 2: the ``grader`` scores the answer it was given."""

    def __init__(self, grader: Any = None, max_gen_toks: int = 4) -> None:
        self.name, self.source, self.num_fewshot = "answer_then_grade", "(built in)", 0
        self.metrics = {"ll": MetricSpec("ll", kind="continuous")}
        self.grader, self.max_gen_toks = grader, max_gen_toks
        self.prompts = ["The licence", "Permission is", "The licence"]  # a duplicate: computed once per stage

    def docs(self) -> list[Any]:
        return [type("Doc", (), {"id": str(i), "text": p})() for i, p in enumerate(self.prompts)]

    def stages(self) -> list[Stage]:
        return [
            Stage(CANDIDATE, lambda doc, prior: [GenRequest(doc.text, max_gen_toks=self.max_gen_toks)],
                  needs=frozenset({"generate"}), max_new_tokens=self.max_gen_toks),
            Stage("grader", lambda doc, prior: [LLRequest(doc.text + prior[0][0], " Yes")],
                  needs=frozenset({"loglikelihood"}), model=self.grader),
        ]

    def progress_total(self) -> int:
        return 2 * len(self.prompts)

    def score(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]:
        return {"ll": results[0].logprob}

    def sample_fields(self, doc: Any, results: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(results, StageOutputs) and len(results.stages) == 2
        return {"outputs": list(results.stages[0]),
                "extra": {"answered_by": [fp.model if fp else None for fp in results.answered_by]}}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "grader": repr(self.grader)}


# --------------------------------------------------------------------------- capabilities


def test_capability_gap_is_one_line_before_any_request() -> None:
    scorer = Recorder("scorer", {"loglikelihood"})
    with pytest.raises(ModelError) as info:
        evaluate_task(AnswerThenGrade(), Models(scorer, roles={"grader": scorer}), None, lambda n: None)
    msg = str(info.value)
    assert "task answer_then_grade needs a model that generates text (generate)" in msg
    assert "the suite's model (backend 'recorder') cannot (its capabilities: loglikelihood)" in msg
    assert "\n" not in msg and scorer.sent == []
    grader = Recorder("grader", {"generate"})  # the grader role lacks loglikelihood: its stage never runs
    with pytest.raises(ModelError, match=r"the grader model .* cannot"):
        evaluate_task(AnswerThenGrade(), Models(Recorder("c", {"generate"}), roles={"grader": grader}), None,
                      lambda n: None)
    assert grader.sent == [] and {"loglikelihood", "rolling", "generate", "transcribe", "adapters"} <= CAPABILITIES


def test_suite_that_its_model_cannot_run_fails_before_any_task(tmp_path: Path, benchmarks_dir: Path) -> None:
    """backend none has no capabilities: the loglikelihood task is refused before asr_text (which needs no
    model) runs, and no run directory is left."""
    from evalmon.config.suite import load_suite_text
    from evalmon.harness.run import run_suite

    (tmp_path / "hyp.txt").write_text("the cat sat\n")
    (tmp_path / "ref.txt").write_text("the cat sat\n")
    suite = f"""
name: mismatch
output_dir: {tmp_path / "reports"}
model: {{backend: none}}
data: {{data_dir: {benchmarks_dir}}}
tracking: {{enabled: false}}
limit: 2
tasks:
  - name: asr_text
    options: {{hypotheses: {tmp_path / "hyp.txt"}, references: {tmp_path / "ref.txt"}}}
  - hellaswag
"""
    with pytest.raises(ModelError) as info:
        run_suite(load_suite_text(suite, base_dir=tmp_path))
    assert "task hellaswag needs a model that scores loglikelihoods" in str(info.value)
    assert "backend 'none'" in str(info.value)
    assert not [p for p in (tmp_path / "reports").glob("*") if p.name != ".cache"]


# --------------------------------------------------------------------------- stages and roles


def test_stages_route_each_role_and_pass_prior_outputs() -> None:
    candidate, grader = Recorder("cand", {"generate"}), Recorder("grad", {"loglikelihood"})
    done: list[int] = []
    result, samples = evaluate_task(AnswerThenGrade(), Models(candidate, roles={"grader": grader}), None,
                                    done.append)
    assert all(isinstance(r, GenRequest) for r in candidate.sent) and len(candidate.sent) == 2  # dupe once
    assert [r.context for r in grader.sent] == ["The licencecand says ecnecil ehT",
                                                "Permission iscand says si noissimreP"]
    assert samples[1].outputs == ["cand says si noissimreP"] and sum(done) == 6
    assert samples[0].extra["answered_by"] == ["cand", "grad"]
    assert samples[0].scores["ll"] == -float(len("The licencecand says ecnecil ehT Yes"))
    assert result.config["grader_fingerprint"]["model"] == "grad"  # who graded is recorded, not hashed
    assert (result.timing.requests, result.timing.computed) == (6, 4)
    with pytest.raises(ConfigError, match="its 'grader' stage names no model config"):
        evaluate_task(AnswerThenGrade(), Models(candidate), None, lambda n: None)


def test_two_stage_task_on_two_different_models(tiny_checkpoint: Path, tiny_lora: Path, tmp_path: Path) -> None:
    """The candidate (tiny checkpoint) answers; the grader, built by the harness from its config through the
    judge factory (tiny checkpoint + LoRA adapter: another model), scores the answers."""
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    candidate = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=2))
    grader_cfg = {"backend": "hf", "path": str(tiny_checkpoint), "adapter": str(tiny_lora), "batch_size": 2}
    task = AnswerThenGrade(grader=grader_cfg)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    models = Models(candidate)
    result, samples = evaluate_task(task, models, cache, lambda n: None)
    (grader,) = models.built()
    assert grader.fingerprint.adapter and grader.fingerprint.cache_key() != candidate.fingerprint.cache_key()
    assert result.config["grader_fingerprint"]["adapter"] == grader.fingerprint.adapter
    answers = [s.outputs[0] for s in samples]
    assert answers == candidate.generate([GenRequest(p, max_gen_toks=4) for p in task.prompts])
    graded = [LLRequest(p + a, " Yes") for p, a in zip(task.prompts, answers, strict=True)]
    by_grader = [r.logprob for r in grader.loglikelihood(graded)]  # type: ignore[attr-defined]
    by_candidate = [r.logprob for r in candidate.loglikelihood(graded)]
    assert [s.scores["ll"] for s in samples] == pytest.approx(by_grader, abs=1e-4)
    assert all(abs(a - b) > 1e-3 for a, b in zip(by_grader, by_candidate, strict=True))  # another model
    # rerun: both stages come from the cache, each under its own model's key
    again, _ = evaluate_task(AnswerThenGrade(grader=grader_cfg), Models(candidate), cache, lambda n: None)
    assert (again.timing.computed, again.timing.cached) == (0, 4) and again.metrics == result.metrics
    cache.close()


# --------------------------------------------------------------------------- the judge factory


def test_judge_factory_validates_any_backend_and_refuses_non_generating_ones(tmp_path: Path) -> None:
    from evalmon.judge.factory import build_judge, judge_config, judge_fn

    served = judge_config({"backend": "openai", "base_url": "http://127.0.0.1:9/v1/", "mode": "completions"},
                          where="x.judge")
    assert (served.backend, served.base_url) == ("openai", "http://127.0.0.1:9/v1")  # type: ignore[attr-defined]
    local = judge_config({"path": "./judge-dir"}, base_dir=tmp_path, where="x.judge")  # no backend: hf
    assert local.path == str(tmp_path / "judge-dir")  # type: ignore[attr-defined]
    with pytest.raises(UnknownNameError, match=r"^x\.judge\.backend: unknown backend 'opena1' \(did you mean: openai"):
        judge_config({"backend": "opena1", "base_url": "http://h/v1"}, where="x.judge")
    with pytest.raises(ConfigError, match=r"^x\.judge\.base_url: .*not an http"):
        judge_config({"backend": "openai", "base_url": "ftp://h"}, where="x.judge")
    with pytest.raises(ConfigError, match="backend 'none' cannot generate text, so it cannot judge"):
        build_judge({"backend": "none"}, where="x.judge")
    lazy = judge_fn({"backend": "openai", "base_url": "http://127.0.0.1:9/v1"})  # validated now, built on use
    assert lazy.max_gen_toks == 8
