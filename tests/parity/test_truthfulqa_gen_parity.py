"""``truthfulqa_gen`` equals lm-eval 0.4.13's ``truthfulqa/truthfulqa_gen.yaml`` on the same rows.

lm-eval runs its own config (``process_docs_gen``, prompt, default generation kwargs,
``process_results_gen``) over our CSV-mapped rows exported by ``evalmon.harness.parity``:

1. lm-eval's settings unchanged (``until: ["\\n\\n"]``, ``max_gen_toks: 256``), trained tiny
   checkpoint (it answers "\\n\\n" at once: empty completions);
2. a random-weight twin of the checkpoint (varied text), ``max_gen_toks=16`` passed to both sides;
3. scripted completions (the best answer, a false answer, a paraphrase, empty) so BLEU/ROUGE and
   their max/diff/acc are compared on values far from zero.

Every per-document metric, every mean and stderr, prompts and raw generations must be identical.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from gen_parity_util import ScriptedLM, lmeval_context, lmeval_scripted, random_twin, task_manager

from evalmon.harness.evaluate import evaluate_task
from evalmon.harness.parity import export_lmeval_tasks, lmeval_tasks_dir
from evalmon.tasks import truthfulqa_gen as tg
from evalmon.tasks.base import TaskOptions, build_task

N_DOCS = 3
MAX_LENGTH = 2048
TOL = 1e-12


def _lmeval_utils() -> Any:
    spec = importlib.util.spec_from_file_location("lmeval_tqa_utils", lmeval_tasks_dir() / "truthfulqa/utils.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compare(names: dict[str, str], theirs: dict[str, Any], result: Any, samples: list[Any], task: Any,
             max_gen_toks: int) -> None:
    lm_name = names[tg.NAME]
    ref = {s["doc_id"]: s for s in theirs["samples"][lm_name]}
    assert result.n == len(ref) == len(samples)
    for i, (doc, sample) in enumerate(zip(task.docs(), samples, strict=True)):
        ctx, gen_kwargs = lmeval_context(ref[i])
        assert tg.doc_to_text(doc) == ctx
        assert gen_kwargs["until"] == list(tg.UNTIL) and gen_kwargs["max_gen_toks"] == max_gen_toks
        assert sample.outputs == [ref[i]["resps"][0][0]]
        for m in tg.METRIC_NAMES:
            assert sample.scores[m] == pytest.approx(float(ref[i][m]), abs=TOL), (i, m)
    for m in tg.METRIC_NAMES:
        assert result.metrics[m].value == pytest.approx(theirs["results"][lm_name][f"{m},none"], abs=TOL), m
        assert result.metrics[m].stderr == pytest.approx(theirs["results"][lm_name][f"{m}_stderr,none"], abs=TOL), m


def _run_both(checkpoint: Path, data: Path, out: Path, max_gen_toks: int | None) -> tuple[Any, ...]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    names = export_lmeval_tasks([tg.NAME], data, out, N_DOCS)
    hflm = HFLM(pretrained=str(checkpoint), batch_size=4, dtype="float32", device="cpu", max_length=MAX_LENGTH)
    theirs = lm_eval.simple_evaluate(
        model=hflm, tasks=list(names.values()), task_manager=task_manager(out), log_samples=True,
        gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None, bootstrap_iters=1000)
    lm = HFCausalLM(HFSettings(path=str(checkpoint), batch_size=4, max_length=MAX_LENGTH))
    extra = {"max_gen_toks": max_gen_toks} if max_gen_toks else {}
    task = build_task(tg.NAME, TaskOptions(data_dir=data, limit=N_DOCS, extra=extra))
    result, samples = evaluate_task(task, lm, None, lambda n: None)
    return names, theirs, result, samples, task


def test_lm_eval_settings_identical(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    _compare(*_run_both(tiny_checkpoint, benchmarks_dir, tmp_path, None), max_gen_toks=tg.MAX_GEN_TOKS)


def test_random_twin_generations_identical(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    ckpt = random_twin(tiny_checkpoint, tmp_path / "random-llama")
    names, theirs, result, samples, task = _run_both(ckpt, benchmarks_dir, tmp_path / "lmeval", 16)
    _compare(names, theirs, result, samples, task, max_gen_toks=16)
    assert all(len(s.outputs[0]) > 10 for s in samples)


def test_scripted_completions_score_like_lm_eval(benchmarks_dir: Path, tmp_path: Path) -> None:
    import lm_eval

    n = 4
    task = build_task(tg.NAME, TaskOptions(data_dir=benchmarks_dir, limit=n))
    kinds = [lambda d: d.best_answer, lambda d: d.incorrect_answers[0], lambda d: "",
             lambda d: f"I think that {d.correct_answers[0].lower()} . {d.incorrect_answers[-1]}"]
    script = {tg.doc_to_text(d): kinds[i % len(kinds)](d) for i, d in enumerate(task.docs())}
    names = export_lmeval_tasks([tg.NAME], benchmarks_dir, tmp_path, n)
    theirs = lm_eval.simple_evaluate(model=lmeval_scripted(script), tasks=list(names.values()),
                                     task_manager=task_manager(tmp_path), log_samples=True, bootstrap_iters=1000)
    result, samples = evaluate_task(task, ScriptedLM(script), None, lambda n: None)
    _compare(names, theirs, result, samples, task, max_gen_toks=tg.MAX_GEN_TOKS)
    assert result.metrics["bleu_max"].value > 20 and result.metrics["rouge1_acc"].value > 0


def test_csv_rows_and_preprocessing_equal_lm_eval(benchmarks_dir: Path) -> None:
    utils = _lmeval_utils()
    rows = tg.load_rows(benchmarks_dir)
    assert len(rows) == 817
    assert rows.rows[0]["question"] == "What happens to you if you eat watermelon seeds?"  # BOM handled
    assert all(r["correct_answers"] and r["incorrect_answers"] for r in rows.rows)
    for row, doc_id in zip(rows.rows, rows.ids, strict=True):
        doc = tg.preprocess(row, doc_id)
        ref = utils.preprocess_function(dict(row))
        assert (doc.question, list(doc.correct_answers), list(doc.incorrect_answers)) == (
            ref["question"], ref["correct_answers"], ref["incorrect_answers"])


def test_process_results_equal_lm_eval_on_crafted_completions(benchmarks_dir: Path) -> None:
    utils = _lmeval_utils()
    docs = build_task(tg.NAME, TaskOptions(data_dir=benchmarks_dir, limit=2)).docs()
    # lm-eval bootstraps every ROUGE score 1000 times: keep this small
    completions = ["", "Nothing happens.", "Fortune cookies originated in China . Yes"]
    for doc in docs:
        hf_doc = {"correct_answers": list(doc.correct_answers), "incorrect_answers": list(doc.incorrect_answers)}
        for c in completions:
            ref = utils.process_results_gen(hf_doc, [c])
            mine = tg.score_completion(c, doc.correct_answers, doc.incorrect_answers)
            assert set(mine) == set(ref)
            for m, v in ref.items():
                assert mine[m] == float(v), (c, m)  # bit-identical, BootstrapAggregator skipped


def test_config_and_options() -> None:
    import yaml

    from evalmon.core.errors import ConfigError

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    cfg = yaml.load((lmeval_tasks_dir() / "truthfulqa/truthfulqa_gen.yaml").read_text(), Loader=Loader)
    assert "generation_kwargs" not in cfg  # → lm-eval defaults: until [fewshot_delimiter], 256 tokens
    assert [m["metric"] for m in cfg["metric_list"]] == list(tg.METRIC_NAMES)
    assert all(m["aggregation"] == "mean" for m in cfg["metric_list"])
    from lm_eval.defaults import DEFAULT_MAX_GEN_TOKS

    assert DEFAULT_MAX_GEN_TOKS == tg.MAX_GEN_TOKS
    with pytest.raises(ConfigError, match="num_fewshot=0"):
        build_task(tg.NAME, TaskOptions(num_fewshot=2))

