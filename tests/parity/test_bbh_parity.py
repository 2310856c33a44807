"""BBH chain-of-thought equals lm-eval 0.4.13's ``bbh/cot_fewshot`` on the same rows.

1. Real generations: lm-eval's ``simple_evaluate`` with HFLM over its own BBH configs (exported by
   ``evalmon.harness.parity``, only the rows swapped for ours) vs evalmon's ``evaluate_task`` with
   HFCausalLM: identical prompts, raw generations, filtered answers, exact_match and its stderr.
   a) lm-eval's settings unchanged (``max_gen_toks: 1024``, its stops), trained tiny checkpoint (it
      answers "\n\n" at once, so generations are empty); the tiny model's 1024 positions would make
      both refuse 1024 new tokens (``max_length - max_gen_toks`` must be > 0), so both sides run with
      ``max_length=2048`` (rotary positions extrapolate);
   b) a random-weight twin (varied text), with ``max_gen_toks=16`` passed to both sides.
2. Scripted generations (no model): a fixed answer per prompt — correct, wrong and unparseable —
   through both pipelines, so the filter and exact_match are exercised on hits as well as misses.
3. Units: the answer regex on crafted strings, all 27 files with SOURCE.md's row counts, the
   exemplars parsed from ``cot-prompts/*.txt`` equal lm-eval's YAML, the group rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from gen_parity_util import ScriptedLM, lmeval_context, lmeval_scripted, random_twin, task_manager

from evalmon.harness.evaluate import evaluate_task
from evalmon.harness.parity import export_lmeval_tasks
from evalmon.tasks import bbh
from evalmon.tasks.base import GROUPS, TaskOptions, build_task, expand

SUBTASKS = ["bbh_cot_fewshot_boolean_expressions", "bbh_cot_fewshot_sports_understanding",
            "bbh_cot_fewshot_object_counting"]
N_DOCS = 3
#: the random twin runs 2 subtasks x 2 documents with the same smaller max_gen_toks on both sides
TWIN_TASKS, TWIN_DOCS, TWIN_MAX_GEN_TOKS = SUBTASKS[:2], 2, 16
MAX_LENGTH = 2048
EM = "exact_match,get-answer"
ROWS = {s: 250 for s in bbh.SUBTASKS} | {"causal_judgement": 187, "penguins_in_a_table": 146, "snarks": 178}


def _by_doc(samples: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {s["doc_id"]: s for s in samples}


# ------------------------------------------------------------------------- real generations


def _run_both(checkpoint: Path, data: Path, out: Path, tasks: list[str], n_docs: int,
              max_gen_toks: int | None) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    names = export_lmeval_tasks(tasks, data, out, n_docs)
    hflm = HFLM(pretrained=str(checkpoint), batch_size=4, dtype="float32", device="cpu", max_length=MAX_LENGTH)
    theirs = lm_eval.simple_evaluate(
        model=hflm, tasks=list(names.values()), task_manager=task_manager(out), log_samples=True,
        gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None, bootstrap_iters=1000,
        random_seed=0, numpy_random_seed=1234, torch_random_seed=1234)
    lm = HFCausalLM(HFSettings(path=str(checkpoint), batch_size=4, max_length=MAX_LENGTH))
    extra = {"max_gen_toks": max_gen_toks} if max_gen_toks else {}
    ours = {t: evaluate_task(build_task(t, TaskOptions(data_dir=data, limit=n_docs, extra=extra)), lm, None,
                             lambda n: None) for t in tasks}
    return names, theirs, ours


@pytest.fixture(scope="module")
def real(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """lm-eval's generation settings unchanged (max_gen_toks 1024, its stops)."""
    return _run_both(tiny_checkpoint, benchmarks_dir, tmp_path_factory.mktemp("bbh_lmeval"), SUBTASKS, N_DOCS, None)


@pytest.fixture(scope="module")
def twin(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Random-weight twin (varied text), max_gen_toks=16 passed to both sides."""
    ckpt = random_twin(tiny_checkpoint, tmp_path_factory.mktemp("twin") / "random-llama")
    return _run_both(ckpt, benchmarks_dir, tmp_path_factory.mktemp("bbh_lmeval_twin"), TWIN_TASKS, TWIN_DOCS,
                     TWIN_MAX_GEN_TOKS)


def _assert_identical(run: Any, task: str, data: Path, n_docs: int, max_gen_toks: int) -> list[str]:
    names, theirs, ours = run
    lm_name = names[task]
    ref = _by_doc(theirs["samples"][lm_name])
    result, samples = ours[task]
    t = build_task(task, TaskOptions(data_dir=data, limit=n_docs))
    assert result.n == n_docs == len(ref)
    for i, (doc, sample) in enumerate(zip(t.docs(), samples, strict=True)):
        their = ref[i]
        ctx, gen_kwargs = lmeval_context(their)
        assert t.context(doc) == ctx  # prompt: description, 3 CoT exemplars, query
        assert gen_kwargs["until"] == list(bbh.UNTIL) and gen_kwargs["max_gen_toks"] == max_gen_toks
        assert sample.outputs == [their["resps"][0][0]]  # raw generation
        assert sample.extra["filtered"] == their["filtered_resps"][0]  # get-answer filter
        assert sample.target == their["target"]
        assert sample.scores["exact_match"] == their["exact_match"]
    mv = result.metrics["exact_match"]
    assert mv.value == theirs["results"][lm_name][EM]
    assert mv.stderr == pytest.approx(theirs["results"][lm_name]["exact_match_stderr,get-answer"], abs=1e-12)
    return [s.outputs[0] for s in samples]


@pytest.mark.parametrize("task", SUBTASKS)
def test_lm_eval_settings_identical(real, task: str, benchmarks_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _assert_identical(real, task, benchmarks_dir, N_DOCS, bbh.MAX_GEN_TOKS)


@pytest.mark.parametrize("task", TWIN_TASKS)
def test_random_twin_generations_identical(twin, task: str, benchmarks_dir: Path) -> None:  # type: ignore[no-untyped-def]
    outputs = _assert_identical(twin, task, benchmarks_dir, TWIN_DOCS, TWIN_MAX_GEN_TOKS)
    assert all(len(o) > 10 for o in outputs)  # real text, not empty strings


# --------------------------------------------------------------------- scripted generations


def _script(contexts: Sequence[str], targets: Sequence[str]) -> dict[str, str]:
    """Per prompt: a right answer, a wrong one, no parseable answer, a right one with trailing text."""
    kinds = [lambda t: f"Let's see. So the answer is {t}.", lambda t: "So the answer is (Z).",
             lambda t: "I do not know", lambda t: f"the answer is {t}!\nMore. the answer is nope."]
    return {c: kinds[i % len(kinds)](t) for i, (c, t) in enumerate(zip(contexts, targets, strict=True))}


def test_scripted_answers_filter_and_score_like_lm_eval(benchmarks_dir: Path, tmp_path: Path) -> None:
    import lm_eval

    tasks = ["bbh_cot_fewshot_date_understanding", "bbh_cot_fewshot_multistep_arithmetic_two"]
    script: dict[str, str] = {}
    built = {}
    for name in tasks:
        t = build_task(name, TaskOptions(data_dir=benchmarks_dir, limit=8))
        built[name] = t
        script.update(_script([t.context(d) for d in t.docs()], [d.target for d in t.docs()]))
    names = export_lmeval_tasks(tasks, benchmarks_dir, tmp_path, 8)
    theirs = lm_eval.simple_evaluate(model=lmeval_scripted(script), tasks=list(names.values()),
                                     task_manager=task_manager(tmp_path), log_samples=True, bootstrap_iters=1000)
    lm = ScriptedLM(script)
    for name in tasks:
        result, samples = evaluate_task(built[name], lm, None, lambda n: None)
        ref = _by_doc(theirs["samples"][names[name]])
        assert [s.extra["filtered"] for s in samples] == [ref[i]["filtered_resps"][0] for i in range(8)]
        assert [s.scores["exact_match"] for s in samples] == [ref[i]["exact_match"] for i in range(8)]
        assert result.metrics["exact_match"].value == theirs["results"][names[name]][EM] == 0.5
        assert result.metrics["exact_match"].stderr == pytest.approx(
            theirs["results"][names[name]]["exact_match_stderr,get-answer"], abs=1e-12)


# ---------------------------------------------------------------------------------------- units


@pytest.mark.parametrize(("text", "answer"), [
    ("Step one. So the answer is (B).", "(B)"),
    ("So the answer is 42.", "42"),
    ("the answer is yes.\nSo the answer is no.", "yes"),  # first match wins (take_first of findall)
    ("So the answer is valid", "vali"),  # (?=.) needs one more character: the last one is dropped
    ("So the answer is  (A) .", "(A)"),  # stripped
    ("The answer is True.", "[invalid]"),  # case-sensitive
    ("no answer at all", "[invalid]"),
    ("So the answer is .", ""),  # an empty capture is a match: "" (not the fallback)
    ("", "[invalid]"),
])
def test_answer_regex(text: str, answer: str) -> None:
    from lm_eval.filters.extraction import RegexFilter

    theirs = RegexFilter(regex_pattern=bbh.ANSWER_REGEX).apply([[text]], [{}])[0][0]
    assert bbh.extract_answer(text) == theirs == answer


def test_exact_match_equals_lm_eval_metric() -> None:
    from lm_eval.api.metrics import exact_match_hf_evaluate

    from evalmon.tasks._generative import exact_match

    pairs = [("(A)", "(A)"), ("(a)", "(A)"), ("True", "True "), ("7\x00", "7"), ("[invalid]", "no"), ("", "")]
    for pred, ref in pairs:
        assert exact_match(pred, ref) == exact_match_hf_evaluate([pred], [ref])["exact_match"]


def test_all_27_files_load_with_source_row_counts(benchmarks_dir: Path) -> None:
    assert len(bbh.SUBTASKS) == 27
    total = 0
    for sub in bbh.SUBTASKS:
        rows = bbh.load_rows(sub, benchmarks_dir)
        assert len(rows) == ROWS[sub], sub
        assert all(isinstance(r["target"], str) and r["input"] for r in rows.rows)
        total += len(rows)
    assert total == 6511


def test_cot_prompts_equal_lm_eval_yaml(benchmarks_dir: Path) -> None:
    for sub in bbh.SUBTASKS:
        mine = bbh.load_prompt(sub, benchmarks_dir)
        assert len(mine.shots) == 3
        assert mine == bbh.load_prompt(sub, None), sub  # data_dir None reads lm-eval's YAML


def test_group_is_lm_eval_bbh_cot_fewshot_weighted_by_size() -> None:
    import yaml

    from evalmon.harness.parity import lmeval_tasks_dir

    cfg = yaml.safe_load((lmeval_tasks_dir() / "bbh/cot_fewshot/_bbh_cot_fewshot.yaml").read_text())
    members = [t.removeprefix("bbh_cot_fewshot_") for t in cfg["task"]]
    assert expand("bbh") == expand("bbh_cot_fewshot") == [bbh.task_name(s) for s in members]
    assert cfg["aggregate_metric_list"] == [{"metric": "exact_match", "aggregation": "mean",
                                             "weight_by_size": True, "filter_list": "get-answer"}]
    assert GROUPS["bbh"].metrics == ("exact_match",)
    template = yaml.safe_load((lmeval_tasks_dir() / "bbh/cot_fewshot/_cot_fewshot_template_yaml").read_text())
    assert template["generation_kwargs"]["until"] == list(bbh.UNTIL)
    assert template["generation_kwargs"]["max_gen_toks"] == bbh.MAX_GEN_TOKS
    assert template["filter_list"][0]["filter"][0]["regex_pattern"] == bbh.ANSWER_REGEX
    assert template["metric_list"] == [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]


def test_group_aggregation_matches_lm_eval_formula() -> None:
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr

    from evalmon.metrics.stats import aggregate_group

    values, ses, sizes = [0.25, 0.5, 0.1], [0.05, 0.04, 0.02], [250, 187, 146]
    value, se = aggregate_group(values, ses, sizes)
    assert value == pytest.approx(aggregate_subtask_metrics(values, sizes, True), rel=1e-12)
    assert se == pytest.approx(pooled_sample_stderr(ses, sizes), rel=1e-12)


def test_options_are_checked(benchmarks_dir: Path) -> None:
    from evalmon.core.errors import ConfigError

    name = SUBTASKS[0]
    t = build_task(name, TaskOptions(data_dir=benchmarks_dir, limit=1, extra={"max_gen_toks": 32}))
    assert t.requests(t.docs()[0])[0].max_gen_toks == 32 and t.config()["generation_kwargs"]["max_gen_toks"] == 32
    with pytest.raises(ConfigError, match="did you mean"):
        build_task(name, TaskOptions(data_dir=benchmarks_dir, extra={"max_gen_tok": 32}))
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        build_task(name, TaskOptions(data_dir=benchmarks_dir, num_fewshot=5))


def test_suite_plans_all_subtasks_and_the_group() -> None:
    from evalmon.config.suite import check_task_names, load_suite
    from evalmon.harness.run import plan_tasks

    cfg = load_suite(Path(__file__).resolve().parents[2] / "suites" / "bbh.yaml")
    check_task_names(cfg)
    planned, groups = plan_tasks(cfg)
    assert [p.name for p in planned] == [*expand("bbh"), "truthfulqa_gen"]
    assert set(groups) == {"bbh"} and len(groups["bbh"]) == 27
    assert all(p.options.limit == 10 for p in planned)


def test_hub_source_offline_is_a_clear_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.core.errors import DataError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="SaylorTwift/bbh"):
        build_task(SUBTASKS[0], TaskOptions(limit=1))
