"""``evalmon export --format fastchat|inspect|lm-eval``: MT-Bench judgments in FastChat's ``model_judgment``
layout (read back the way FastChat's ``show_result.py`` reads them), inspect_ai eval logs read back with
inspect_ai's own ``read_eval_log`` (the CLI end to end), and the prompt text in lm-eval's ``arguments``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_util import assert_user_error, run_cli, show

from evalmon.core.results import (
    MetricValue,
    Provenance,
    RunResult,
    SampleRecord,
    TaskResult,
    clip_prompt,
    write_samples,
)
from evalmon.harness.evaluate import evaluate_task
from evalmon.sinks.fastchat import write_fastchat
from evalmon.sinks.lmeval import write_lmeval

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from test_mtbench import ScriptedJudge, _answers, _task, judged, pair_rule, single_rule

FASTCHAT_SINGLE = {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}
FASTCHAT_PAIR = {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_user_prompt",
                 "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}
MINE = {81: ("Q=9", "Q=1 BIAS"), 101: ("Q=2", "Q=5"), 152: ("Q=5", "NOVERDICT")}
BASE = {81: ("Q=5", "Q=5"), 101: ("Q=5", "Q=5"), 152: ("Q=5", "Q=5")}


def _run(task: TaskResult, name: str = "mtbench") -> RunResult:
    prov = Provenance(evalmon_version="0", python_version="3.11", platform="linux", hostname="h")
    return RunResult(run_id="r1", suite_name="s", suite_hash="h", started_at="2026-12-06T10:00:00+00:00",
                     finished_at="2026-12-06T10:05:00+00:00", status="finished", provenance=prov,
                     model={"backend": "hf", "model": "mine"}, tasks={name: task})


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_single_grades_in_fastchat_layout(benchmarks_dir: Path, tmp_path: Path) -> None:
    task = _task(benchmarks_dir, answers=str(_answers(tmp_path / "mine.jsonl", "mine", MINE)), mode="single")
    result, samples = evaluate_task(task, judged(ScriptedJudge(single_rule)), None, lambda n: None, 11)
    (path,) = write_fastchat(_run(result), samples, tmp_path / "out")
    assert path == tmp_path / "out/mt_bench/model_judgment/scripted-judge-v1_single.jsonl"
    rows = _read_jsonl(path)
    assert all(set(r) == FASTCHAT_SINGLE for r in rows) and len(rows) == 6
    assert [(r["question_id"], r["turn"], r["score"]) for r in rows] == [
        (81, 1, 9.0), (81, 2, 1.0), (101, 1, 2.0), (101, 2, 5.0), (152, 1, 5.0), (152, 2, -1)]
    assert rows[0]["judge"] == ["scripted-judge-v1", "single-v1"] and rows[0]["model"] == "mine"
    assert "Q=9" in rows[0]["user_prompt"] and rows[5]["judgment"] == "Hmm."
    # FastChat's show_result (single): drop score -1, mean per model == evalmon's MT-Bench score
    scored = [r["score"] for r in rows if r["score"] != -1]
    assert sum(scored) / len(scored) == pytest.approx(result.metrics["score"].value)


def test_pairwise_games_in_fastchat_layout(benchmarks_dir: Path, tmp_path: Path) -> None:
    mine = _answers(tmp_path / "mine.jsonl", "mine", MINE)
    base = _answers(tmp_path / "base.jsonl", "base", BASE)
    task = _task(benchmarks_dir, answers=str(mine), baseline_answers=str(base), bootstrap_iters=50)
    result, samples = evaluate_task(task, judged(ScriptedJudge(pair_rule)), None, lambda n: None, 11)
    (path,) = write_fastchat(_run(result), samples, tmp_path / "out")
    assert path.name == "scripted-judge-v1_pair.jsonl"
    rows = _read_jsonl(path)
    assert all(set(r) == FASTCHAT_PAIR for r in rows) and len(rows) == 6
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("mine", "base")}
    games = {(r["question_id"], r["turn"]): (r["g1_winner"], r["g2_winner"]) for r in rows}
    assert games[(81, 1)] == ("model_1", "model_1")  # Q=9 beats Q=5 in both orders
    assert games[(81, 2)] == ("model_1", "model_2")  # position bias: inconsistent
    assert games[(152, 2)] == ("error", "error")
    # FastChat's show_result (pairwise, consistent games only win; disagreement or tie = tie)
    outcome = {("model_1", "model_1"): 1.0, ("model_2", "model_2"): 0.0}
    values = [outcome.get(g, 0.5) for g in games.values() if "error" not in g]
    assert sum(values) / len(values) == pytest.approx(result.metrics["win_rate"].value)


def test_fastchat_export_of_a_run_without_mtbench_is_a_one_line_error(tmp_path: Path) -> None:
    from evalmon.core.errors import ConfigError

    task = TaskResult(name="t", n=1, num_fewshot=0, source="x", config_hash="c", metrics={"acc": MetricValue(value=1)})
    sample = SampleRecord(task="t", doc_id="0", prompt_hash="p", scores={"acc": 1.0})
    with pytest.raises(ConfigError, match="has no MT-Bench samples"):
        write_fastchat(_run(task, "t"), [sample], tmp_path)


def test_lmeval_export_carries_the_prompt_text_both_ways(tmp_path: Path) -> None:
    from evalmon.sinks.lmeval import read_lmeval

    task = TaskResult(name="mc", n=2, num_fewshot=0, source="local", config_hash="abc",
                      metrics={"acc": MetricValue(value=0.5)}, metric_kinds={"acc": "binary"})
    long = "shot. " * 500 + "Q: last?"
    samples = [SampleRecord(task="mc", doc_id="test/0", prompt_hash="h0", target=1, choices=[" no", " yes"],
                            loglikelihoods=[-2.0, -1.0], scores={"acc": 1.0}, prompt=clip_prompt(long)),
               SampleRecord(task="mc", doc_id="test/1", prompt_hash="h1", target=0, choices=[" no", " yes"],
                            loglikelihoods=[-3.0, -0.5], scores={"acc": 0.0})]
    results, first = write_lmeval(_run(task, "mc"), samples, tmp_path)
    rows = _read_jsonl(first)
    assert rows[0]["arguments"] == {"gen_args_0": {"arg_0": clip_prompt(long), "arg_1": " no"},
                                    "gen_args_1": {"arg_0": clip_prompt(long), "arg_1": " yes"}}
    assert rows[1]["arguments"] == {}  # no text kept: nothing invented
    missing = json.loads(results.read_text())["configs"]["mc"]["metadata"]["evalmon"]["missing"]
    assert any("last 2000 chars" in m for m in missing)
    _, back, _ = read_lmeval(results)
    assert back is not None and [s.prompt for s in back] == [clip_prompt(long), None]
    assert [s.prompt_hash for s in back] == ["h0", "h1"]


@pytest.mark.e2e  # imports inspect_ai (seconds) in two processes
def test_export_inspect_log_reads_back_with_inspect_ai(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    task = TaskResult(name="mc", n=2, num_fewshot=0, source="local", config_hash="abc",
                      metrics={"acc": MetricValue(value=0.5, stderr=0.5, ci_low=0.09, ci_high=0.91)},
                      metric_kinds={"acc": "binary"})
    samples = [SampleRecord(task="mc", doc_id="test/0", prompt_hash="h0", target=1, choices=[" no", " yes"],
                            loglikelihoods=[-2.0, -1.0], scores={"acc": 1.0}, prompt="Q: is it? A:"),
               SampleRecord(task="mc", doc_id="test/1", prompt_hash="h1", target=0, choices=[" no", " yes"],
                            loglikelihoods=[-3.0, -0.5], scores={"acc": 0.0})]
    run_dir = tmp_path / "run"
    _run(task, "mc").save(run_dir)
    write_samples(run_dir / "samples.jsonl.gz", samples)
    proc = run_cli(tmp_path, "export", run_dir, "--format", "inspect", "--out", tmp_path / "logs")
    assert proc.returncode == 0, show(proc)
    (path,) = [Path(line) for line in proc.stdout.splitlines()]
    assert path.suffix == ".eval" and path.parent == tmp_path / "logs"
    log = read_eval_log(str(path))
    assert log.status == "success" and log.eval.task == "mc" and log.eval.model == "hf/mine"
    (score,) = log.results.scores if log.results else []
    assert {k: m.value for k, m in score.metrics.items()} == {"acc": 0.5, "stderr": 0.5, "ci_low": 0.09,
                                                              "ci_high": 0.91}
    first, second = log.samples or []
    assert (first.id, first.input, first.target, first.output.completion) == ("test/0", "Q: is it? A:", "B", " yes")
    assert first.scores and first.scores["acc"].value == 1.0
    assert second.input == "(prompt text not kept; hash h1)" and second.output.completion == " yes"
    bad = run_cli(tmp_path, "export", run_dir, "--format", "fastchat", "--out", tmp_path / "fc")
    assert_user_error(bad, "no MT-Bench samples")


def test_lmeval_export_keeps_two_tasks_that_mirror_the_same_lmeval_task(tmp_path: Path) -> None:
    """Hostile walk (walk-score): ``pubmedqa`` and ``pubmedqa_cls`` both mirror lm-eval's ``pubmedqa``; the
    lm-eval export wrote both under that one name, so the second task's results and samples file silently
    replaced the first's (read back: one task, the other's numbers lost)."""
    from evalmon.sinks.lmeval import read_lmeval

    def task(name: str, acc: float) -> TaskResult:
        return TaskResult(name=name, n=2, num_fewshot=0, source="local", config_hash=name, lm_eval_task="pubmedqa",
                          metrics={"acc": MetricValue(value=acc)}, metric_kinds={"acc": "binary"})

    run = _run(task("pubmedqa", 1.0), "pubmedqa")
    run.tasks["pubmedqa_cls"] = task("pubmedqa_cls", 0.0)
    samples = [SampleRecord(task=t, doc_id=f"test/{i}", prompt_hash=f"{t}{i}", target=0, choices=["yes", "no"],
                            loglikelihoods=[-1.0, -2.0], scores={"acc": acc}) for t, acc in (("pubmedqa", 1.0),
                                                                                             ("pubmedqa_cls", 0.0))
               for i in range(2)]
    written = write_lmeval(run, samples, tmp_path)
    assert len(set(written)) == len(written) == 3, written  # results + one samples file per task
    back, back_samples, _ = read_lmeval(written[0])
    assert {n: t.metrics["acc"].value for n, t in back.tasks.items()} == {"pubmedqa": 1.0, "pubmedqa_cls": 0.0}
    assert sorted((s.task, s.scores["acc"]) for s in back_samples or []) == sorted(
        (s.task, s.scores["acc"]) for s in samples)
