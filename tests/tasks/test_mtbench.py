"""mtbench task: metrics arithmetic with a scripted judge, cache/resume, bad inputs, and an end-to-end
slice with the tiny checkpoint as both the model under test and the judge."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from evalmon.core.errors import ConfigError, DataError, ModelError
from evalmon.core.lm import EngineStats, GenRequest, ModelFingerprint
from evalmon.core.results import write_samples
from evalmon.harness.cache import ResponseCache
from evalmon.harness.evaluate import Models, evaluate_task
from evalmon.tasks.base import TaskOptions, build_task
from evalmon.tasks.mtbench import MTBenchTask

REPO = Path(__file__).resolve().parents[2]
_SECTION = re.compile(r"The Start of Assistant(?: A)?'s (.*?)The End of Assistant(?: A)?'s", re.DOTALL)
_SECTION_B = re.compile(r"The Start of Assistant B's (.*?)The End of Assistant B's", re.DOTALL)


def _quality(section: str) -> int:
    tags = re.findall(r"Q=(\d+)", section)
    return int(tags[-1]) if tags else 0


def pair_rule(system: str, user: str) -> str:
    a, b = _SECTION.search(user), _SECTION_B.search(user)
    assert a and b
    if "NOVERDICT" in a.group(1) + b.group(1):
        return "Both answers are interesting."
    if "BIAS" in a.group(1):
        return "The first answer is better. [[A]]"
    qa, qb = _quality(a.group(1)), _quality(b.group(1))
    return "Explanation. " + ("[[A]]" if qa > qb else "[[B]]" if qb > qa else "[[C]]")


def single_rule(system: str, user: str) -> str:
    a = _SECTION.search(user)
    assert a
    return "Hmm." if "NOVERDICT" in a.group(1) else f"Fine. Rating: [[{_quality(a.group(1))}]]"


class ScriptedJudge:
    """A deterministic judge LM: implements the LM protocol's generate with fixed verdict rules."""

    capabilities = frozenset({"generate"})

    def __init__(self, rule: Callable[[str, str], str], max_length: int = 0) -> None:
        self.rule = rule
        self.fingerprint = ModelFingerprint(backend="scripted", model="scripted-judge-v1", max_length=max_length)
        self.seen: list[GenRequest] = []

    def stats(self) -> EngineStats:
        return EngineStats()

    def loglikelihood(self, reqs: Sequence[Any], progress: Any = None) -> list[Any]:
        raise NotImplementedError

    def token_count(self, text: str) -> int:
        return len(text.split())

    def generate(self, reqs: Sequence[GenRequest], progress: Any = None) -> list[str]:
        self.seen.extend(reqs)
        outs = []
        for r in reqs:
            msgs = dict(r.messages or ())
            assert r.temperature == 0.0 and set(msgs) == {"system", "user"}
            outs.append(self.rule(msgs["system"], msgs["user"]))
        if progress:
            progress(list(enumerate(outs)))
        return outs


def _answers(path: Path, model: str, turns: dict[int, tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"question_id": q, "model_id": model,
                                        "choices": [{"index": 0, "turns": list(t)}]}) + "\n"
                            for q, t in turns.items()))
    return path


MODEL = {81: ("Q=9", "Q=1 BIAS"), 101: ("Q=2", "Q=5"), 152: ("Q=5", "NOVERDICT")}
BASE = {81: ("Q=5", "Q=5"), 101: ("Q=5", "Q=5"), 152: ("Q=5", "Q=5")}


@pytest.fixture
def answer_files(tmp_path: Path) -> tuple[Path, Path]:
    return _answers(tmp_path / "mine.jsonl", "mine", MODEL), _answers(tmp_path / "base.jsonl", "base", BASE)


def judged(judge: ScriptedJudge | Any, candidate: Any = None) -> Models:
    """The models of a run: ``candidate`` answers, ``judge`` grades (never built from the task's config)."""
    return Models(candidate, roles={"judge": judge})


def _task(benchmarks_dir: Path, **extra: Any) -> MTBenchTask:
    opts = {"judge": {"backend": "hf", "path": "/not/loaded"}, "question_ids": [81, 101, 152], **extra}
    task = build_task("mtbench", TaskOptions(data_dir=benchmarks_dir, extra=opts, seed=11))
    assert isinstance(task, MTBenchTask)
    return task


def test_pairwise_metrics_arithmetic(benchmarks_dir: Path, answer_files: tuple[Path, Path], tmp_path: Path) -> None:
    mine, base = answer_files
    task = _task(benchmarks_dir, answers=str(mine), baseline_answers=str(base), bootstrap_iters=500)
    judge = ScriptedJudge(pair_rule)
    assert task.mode == "pairwise" and task.progress_total() == 12
    assert [s.role for s in task.stages()] == ["judge"]  # answers are given: no candidate stage
    result, samples = evaluate_task(task, judged(judge), None, lambda n: None, 11)
    m = {k: v.value for k, v in result.metrics.items()}
    # outcomes: 81 win + tie(inconsistent); 101 loss + tie; 152 tie + error (no verdict in either order)
    assert m["win_rate"] == pytest.approx(2.5 / 5)
    assert (m["wins"], m["losses"], m["ties"], m["inconsistent"], m["errors"], m["parse_failures"]) == (1, 1, 3, 1, 1, 2)
    assert m["win_rate_turn1"] == pytest.approx(0.5) and m["win_rate_turn2"] == pytest.approx(0.5)
    assert (m["win_rate_writing"], m["win_rate_reasoning"], m["win_rate_humanities"]) == (0.75, 0.25, 0.5)
    wr = result.metrics["win_rate"]
    assert wr.ci_low is not None and wr.ci_high is not None and wr.ci_low <= 0.5 <= wr.ci_high
    assert result.config["bootstrap"] == {"iters": 500, "seed": 11, "level": 0.95, "unit": "question"}
    assert result.metric_kinds["win_rate"] == "continuous" and result.metric_kinds["wins"] == "count"
    by_id = {s.doc_id: s for s in samples}
    assert {k: s.scores.get("win_rate") for k, s in by_id.items()} == {"81": 0.75, "101": 0.25, "152": 0.5}
    assert by_id["81"].outputs == ["Q=9", "Q=1 BIAS"] and by_id["81"].extra["baseline_outputs"] == ["Q=5", "Q=5"]
    t2 = by_id["81"].extra["turns"][1]
    assert (t2["outcome"], t2["inconsistent"], t2["prompt"]) == ("tie", True, "pair-v2-multi-turn")
    failed = by_id["152"].extra["turns"][1]
    assert failed["outcome"] == "error" and [f["game"] for f in failed["parse_failures"]] == [1, 2]
    assert failed["parse_failures"][0]["raw"] == "Both answers are interesting."
    # math/reasoning/coding: reference-guided prompts with FastChat's GPT-4 reference answers
    assert [t["prompt"] for t in by_id["101"].extra["turns"]] == ["pair-math-v1", "pair-math-v1-multi-turn"]
    ref = json.loads((benchmarks_dir / "mt_bench/reference_answer/gpt-4.jsonl").read_text().splitlines()[0])
    assert ref["question_id"] == 101
    ref_prompts = [r for r in judge.seen if ref["choices"][0]["turns"][0] in dict(r.messages or ())["user"]]
    assert len(ref_prompts) == 4  # both turns, both orders
    # the run's verdicts feed `evalmon judge agreement --judge-votes <run dir>`
    from evalmon.judge.agreement import votes_from_run

    write_samples(tmp_path / "samples.jsonl.gz", samples)
    votes = votes_from_run(tmp_path)
    assert votes[("81", "base", "mine", 1)] == ["model_b"] and votes[("81", "base", "mine", 2)] == ["tie (inconsistent)"]
    assert ("152", "base", "mine", 2) not in votes


def test_single_metrics_arithmetic(benchmarks_dir: Path, answer_files: tuple[Path, Path]) -> None:
    task = _task(benchmarks_dir, answers=str(answer_files[0]), mode="single")
    result, samples = evaluate_task(task, judged(ScriptedJudge(single_rule)), None, lambda n: None, 11)
    m = result.metrics
    assert m["score"].value == pytest.approx(22 / 5) and m["score"].stderr is not None
    assert m["score_turn1"].value == pytest.approx(16 / 3) and m["score_turn2"].value == pytest.approx(3.0)
    assert (m["score_writing"].value, m["score_reasoning"].value, m["score_humanities"].value) == (5.0, 3.5, 5.0)
    assert (m["parse_failures"].value, m["judged"].value) == (1, 5)
    assert [t["prompt"] for s in samples for t in s.extra["turns"]] == [
        "single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn",
        "single-v1", "single-v1-multi-turn"]
    assert {s.doc_id: s.scores for s in samples}["152"] == {"score": 5.0}


def test_single_rating_intervals_stay_on_the_rating_scale() -> None:
    """1–10 ratings: the CI is a seeded BCa bootstrap inside the observed range, where value ± 1.96·se (the old
    interval) runs past 10; lm-eval-style stderr stays the sample std/√n."""
    from evalmon.judge.single import single_metrics

    per_q = {"q1": [{"turn": 1, "score": 10.0}], "q2": [{"turn": 1, "score": 10.0}],
             "q3": [{"turn": 1, "score": 10.0}], "q4": [{"turn": 1, "score": 2.0}]}
    metrics, _ = single_metrics(per_q, dict.fromkeys(per_q, "writing"))
    score = metrics["score"]
    assert score.value == pytest.approx(8.0) and score.stderr == pytest.approx(2.0)
    assert score.value + 1.96 * score.stderr > 10  # what the normal interval would have said
    assert score.ci_method == "bootstrap BCa"
    assert score.ci_low is not None and score.ci_high is not None
    assert 2.0 <= score.ci_low <= score.value <= score.ci_high <= 10.0
    again, _ = single_metrics(per_q, dict.fromkeys(per_q, "writing"))
    assert (again["score"].ci_low, again["score"].ci_high) == (score.ci_low, score.ci_high)  # seeded


def test_judge_calls_are_cached_and_a_rerun_computes_none(benchmarks_dir: Path, answer_files: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    mine, base = answer_files
    cache = ResponseCache(tmp_path / "cache.sqlite")
    first = _task(benchmarks_dir, answers=str(mine), baseline_answers=str(base))
    r1, _ = evaluate_task(first, judged(ScriptedJudge(pair_rule)), cache, lambda n: None, 11)
    # the judge stage is the only one: q152 turn 1 has equal answers, so both orders are one prompt
    assert (r1.timing.requests, r1.timing.unique_requests, r1.timing.computed) == (12, 11, 11)
    again = _task(benchmarks_dir, answers=str(mine), baseline_answers=str(base))
    judge = ScriptedJudge(pair_rule)
    done: list[int] = []
    r2, _ = evaluate_task(again, judged(judge), cache, done.append, 11)
    assert (r2.timing.computed, r2.timing.cached) == (0, 11)
    assert judge.seen == [] and sum(done) == 12  # progress still reaches the total
    assert r2.metrics == r1.metrics and r2.config_hash == r1.config_hash


def test_empty_answer_is_judged_and_counted(benchmarks_dir: Path, tmp_path: Path) -> None:
    mine = _answers(tmp_path / "m.jsonl", "m", {81: ("", "Q=6"), 101: ("Q=5", "Q=5"), 152: ("Q=5", "Q=5")})
    task = _task(benchmarks_dir, answers=str(mine), mode="single")
    result, samples = evaluate_task(task, judged(ScriptedJudge(single_rule)), None, lambda n: None, 11)
    assert result.metrics["empty_answers"].value == 1 and samples[0].extra["empty_answer"] == [True, False]
    assert samples[0].extra["turns"][0]["verdicts"][0]["error"] == "rating 0 outside 1–10"


def test_bad_options_and_answer_files(benchmarks_dir: Path, tmp_path: Path) -> None:
    def build(**extra: Any) -> Any:
        return build_task("mtbench", TaskOptions(data_dir=benchmarks_dir, extra=extra))

    judge = {"backend": "hf", "path": "/x"}
    with pytest.raises(ConfigError, match=r"options\.judge is required"):
        build(mode="single")
    with pytest.raises(ConfigError, match=r"unknown option 'baseline'.*did you mean: baseline_answers"):
        build(judge=judge, baseline="gpt-4")
    with pytest.raises(ConfigError, match=r"pairwise needs options\.baseline_answers"):
        build(judge=judge, mode="pairwise")
    with pytest.raises(ConfigError, match=r"options.judge.backend: unknown backend 'gpt'"):
        build(judge={"backend": "gpt", "path": "/x"})
    with pytest.raises(ConfigError, match=r"options.judge.*extra|options.judge.*not permitted"):
        build(judge={"backend": "hf", "path": "/x", "temperature": 0.3})
    partial = _answers(tmp_path / "partial.jsonl", "p", {81: ("a", "b"), 82: ("a", "b")})
    with pytest.raises(DataError, match=r"partial\.jsonl has no answer for question id\(s\) 83, 84, 85"):
        build(judge=judge, answers=str(partial), question_ids=[81, 82, 83, 84, 85])
    with pytest.raises(DataError, match=r"baseline answer file not found: .*/nobody\.jsonl"):
        build(judge=judge, baseline_answers="nobody")
    task = build(judge=judge, answers="gpt-4", baseline_answers="gpt-3.5-turbo", judge_max_tokens=4096,
                 question_ids=[81])
    with pytest.raises(ConfigError, match=r"judge_max_tokens \(4096\) must be below the judge's max_length"):
        evaluate_task(task, judged(ScriptedJudge(pair_rule, max_length=2048)), None, lambda n: None, 1)


def test_suite_file_validates_and_builds() -> None:
    from evalmon.config.suite import check_task_names, load_suite
    from evalmon.harness.run import plan_tasks

    cfg = load_suite(REPO / "suites" / "mtbench.yaml")
    check_task_names(cfg)
    planned, _ = plan_tasks(cfg)
    task = build_task(planned[0].name, planned[0].options)
    assert isinstance(task, MTBenchTask) and task.mode == "pairwise" and len(task.questions) == 4
    assert task.judge_cfg.chat_template_fallback == "plain" and Path(task.judge_cfg.path).is_absolute()
    assert task.config()["files"]["baseline_answers"].startswith("gpt-3.5-turbo.jsonl@")


# --------------------------------------------------------------------------- tiny checkpoint, end to end


def test_chat_template_missing_on_a_base_model(tiny_checkpoint: Path, benchmarks_dir: Path) -> None:
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    strict = HFCausalLM(HFSettings(path=str(tiny_checkpoint)))  # no chat template, fallback "error"
    gen = _task(benchmarks_dir, question_ids=[81], max_new_tokens=4)
    with pytest.raises(ModelError, match="no chat template"):
        evaluate_task(gen, strict, None, lambda n: None, 1)
    graded = _task(benchmarks_dir, question_ids=[81], answers="gpt-4", mode="single", judge_max_tokens=8)
    with pytest.raises(ModelError, match=r"mtbench: judge .* no chat template.*chat_template_fallback: plain"):
        evaluate_task(graded, judged(strict, strict), None, lambda n: None, 1)


def test_tiny_model_answers_and_judges_end_to_end(tiny_checkpoint: Path, benchmarks_dir: Path,
                                                   tmp_path: Path) -> None:
    from evalmon.config.suite import load_suite_text
    from evalmon.core.results import RunResult
    from evalmon.harness.run import run_suite

    base = _answers(tmp_path / "base.jsonl", "short-baseline", {104: ("Three.", "Two."), 152: ("Yes.", "No.")})
    suite = f"""
name: mtbench-tiny
output_dir: {tmp_path / "reports"}
model: {{backend: hf, path: {tiny_checkpoint}, chat_template_fallback: plain, batch_size: 4}}
data: {{data_dir: {benchmarks_dir}}}
tracking: {{enabled: false}}
cache: {{path: {tmp_path / "cache.sqlite"}}}
tasks:
  - name: mtbench
    options:
      question_ids: [104, 152]   # reasoning (greedy, reference-guided) + humanities (sampled at 0.1, seeded)
      baseline_answers: {base}
      max_new_tokens: 8
      judge_max_tokens: 8
      judge: {{backend: hf, path: {tiny_checkpoint}, chat_template_fallback: plain, batch_size: 4}}
"""
    cfg = load_suite_text(suite, base_dir=tmp_path)
    result = run_suite(cfg)
    run_dir = tmp_path / "reports" / result.run_id
    saved = RunResult.load(run_dir)
    task = saved.tasks["mtbench"]
    m = {k: v.value for k, v in task.metrics.items()}
    assert m["wins"] + m["losses"] + m["ties"] + m["errors"] == 4  # 2 questions x 2 turns
    assert 0 <= m["parse_failures"] <= 8 and m["errors"] >= (m["parse_failures"] > 0)
    assert task.timing.requests == 4 + 8 and task.config["judge_fingerprint"]["backend"] == "hf"
    with gzip.open(run_dir / "samples.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert [r["doc_id"] for r in rows] == ["104", "152"] and all(len(r["outputs"]) == 2 for r in rows)
    turns = [t for r in rows for t in r["extra"]["turns"]]
    assert all(len(t["judge_outputs"]) == 2 for t in turns)
    assert sum(len(t["parse_failures"]) for t in turns) == m["parse_failures"]
    assert all(f["raw"] == t["judge_outputs"][f["game"] - 1] for t in turns for f in t["parse_failures"])
    assert f"mtbench/{'win_rate' if 'win_rate' in m else 'parse_failures'}" in saved.flat_metrics()
    # rerun: answers at temperature 0 and every judge call come from the cache; only the sampled
    # (humanities) answers are generated again — seeded, so the judge prompts are identical
    again = run_suite(cfg).tasks["mtbench"]
    assert (again.timing.computed, again.timing.cached) == (2, 10)
    assert {k: v.value for k, v in again.metrics.items()} == m
