"""``lm_eval:<name>`` suite entries: lm-eval's own Task objects on evalmon's engine equal ``simple_evaluate``.

Four diverse lm-eval configs from its catalogue, data swapped for local rows of ``../shared/benchmarks``
(task YAMLs that ``include:`` the installed catalogue YAML, written to a temporary folder):

- a group of two ``multiple_choice`` tasks: HellaSwag (catalogue ``process_docs``) + MMLU anatomy 5-shot
  (exported by ``evalmon.harness.parity``), aggregated by size like lm-eval (``aggregate_metric_list``);
- ``loglikelihood_rolling``: the catalogue ``wikitext`` config (its detokenizer + ``process_results``) over
  WMT22 English source documents;
- ``multiple_input``: the catalogue ``winogrande`` config (one context per option) on four hand-written
  winogrande-format rows (no local WinoGrande copy; this checks the mapping, not a score);
- ``generate_until`` with filters: the catalogue ``gsm8k`` (2-shot, strict-match and flexible-extract
  regex pipelines), greedy, ``max_gen_toks`` 24.

evalmon runs them through a suite (``{lm_eval: name}`` entries + ``lm_eval_include_path``) on the tiny
checkpoint; lm-eval runs the same YAMLs with HFLM. Every metric equals to 1e-6, every stderr too, and the
per-document scores in the samples are lm-eval's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from parity_util import export

pytestmark = pytest.mark.accuracy

N = 6
MAX_LENGTH = 256
GROUP = "evalmon_pt_group"
GSM8K = "evalmon_pt_gsm8k"
WIKI = "evalmon_pt_wikitext"
WINO = "evalmon_pt_winogrande"
#: winogrande-format rows (lm-eval's "multiple_input": one context per option, the same continuation)
WINO_ROWS = [
    ("The trophy does not fit into the suitcase because _ is too large.", "trophy", "suitcase", "1"),
    ("The trophy does not fit into the suitcase because _ is too small.", "trophy", "suitcase", "2"),
    ("Anna thanked Maria for the help because _ had received it.", "Anna", "Maria", "1"),
    ("The bottle would not fit in the bag since _ was too full.", "bottle", "bag", "2"),
]


def _write_yamls(out: Path, benchmarks: Path) -> dict[str, str]:
    from evalmon.data.lmeval import lmeval_tasks_dir

    names = export({"hellaswag": N, "mmlu_anatomy": N}, benchmarks, out)
    catalogue = lmeval_tasks_dir()
    (out / "group.yaml").write_text(yaml.safe_dump({
        "group": GROUP, "task": [names["hellaswag"], names["mmlu_anatomy"]],
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}], "metadata": {"version": 1.0}}))
    (out / "gsm8k.yaml").write_text(yaml.safe_dump({
        "include": str(catalogue / "gsm8k" / "gsm8k.yaml"), "task": GSM8K, "tag": [], "dataset_path": "json",
        "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(benchmarks / "gsm8k" / "test.jsonl")}},
        "training_split": None, "fewshot_split": "test", "num_fewshot": 2,
        "generation_kwargs": {"until": ["Question:", "</s>", "<|im_end|>"], "do_sample": False,
                              "temperature": 0.0, "max_gen_toks": 24}}))
    src = benchmarks / "wmt22" / "txt" / "sources" / "generaltest2022.en-de.src.en"
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()]
    pages = out / "wiki_pages.jsonl"
    with pages.open("w", encoding="utf-8") as fh:
        for i in range(N):
            fh.write(json.dumps({"page": " ".join(lines[i * 4:(i + 1) * 4])}) + "\n")
    (out / "wikitext.yaml").write_text(yaml.safe_dump({
        "include": str(catalogue / "wikitext" / "wikitext.yaml"), "task": WIKI, "dataset_path": "json",
        "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(pages)}},
        "training_split": None, "validation_split": None, "test_split": "test"}))
    wino = out / "wino.jsonl"
    wino.write_text("".join(json.dumps({"sentence": s, "option1": a, "option2": b, "answer": y}) + "\n"
                            for s, a, b, y in WINO_ROWS))
    (out / "winogrande.yaml").write_text(yaml.safe_dump({
        "include": str(catalogue / "winogrande" / "default.yaml"), "task": WINO, "dataset_path": "json",
        "dataset_name": None, "dataset_kwargs": {"data_files": {"validation": str(wino)}},
        "training_split": None, "validation_split": "validation"}))
    return names


@pytest.fixture(scope="module")
def both(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalmon.backends.hf.model import HFCausalLM, HFSettings
    from evalmon.config.suite import load_suite_text
    from evalmon.harness.run import run_suite

    tmp = tmp_path_factory.mktemp("lmeval_passthrough")
    task_dir = tmp / "tasks"
    names = _write_yamls(task_dir, benchmarks_dir)
    hflm = HFLM(pretrained=str(tiny_checkpoint), batch_size=4, dtype="float32", device="cpu", max_length=MAX_LENGTH)
    theirs = lm_eval.simple_evaluate(
        model=hflm, tasks=[GROUP, GSM8K, WIKI, WINO], limit=N, log_samples=True, bootstrap_iters=1000,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False))
    suite = yaml.safe_dump({
        "name": "lmeval-passthrough", "output_dir": str(tmp / "reports"), "limit": N,
        "lm_eval_include_path": str(task_dir),
        "model": {"backend": "hf", "path": str(tiny_checkpoint), "batch_size": 4, "max_length": MAX_LENGTH},
        "tracking": {"enabled": False},
        "tasks": [{"lm_eval": GROUP}, {"lm_eval": GSM8K}, {"lm_eval": WIKI, "options": {"bootstrap_iters": 1000}},
                  {"lm_eval": WINO}]})
    cfg = load_suite_text(suite, "suite.yaml", base_dir=tmp)
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, max_length=MAX_LENGTH))
    result = run_suite(cfg, lm=lm)
    return {"theirs": theirs, "result": result, "names": names, "run_dir": tmp / "reports" / result.run_id}


def _ours(task: str) -> str:
    return "lm_eval:" + task


@pytest.mark.parametrize("task", ["evalmon_parity_hellaswag", "evalmon_parity_mmlu_anatomy", GSM8K, WIKI, WINO])
def test_task_metrics_equal_simple_evaluate(both: dict[str, Any], task: str) -> None:
    theirs = both["theirs"]["results"][task]
    ours = both["result"].tasks[_ours(task)]
    keys = [k for k in theirs if "," in k and "_stderr," not in k]
    assert keys and ours.n == (len(WINO_ROWS) if task == WINO else N)
    for key in keys:
        metric, flt = key.split(",")
        name = metric if flt == "none" else f"{metric}_{flt}"
        mv = ours.metrics[name]
        assert mv.value == pytest.approx(theirs[key], abs=1e-6), key
        se = theirs[f"{metric}_stderr,{flt}"]
        assert (mv.stderr is None) if se == "N/A" else mv.stderr == pytest.approx(se, abs=1e-6), key
    assert set(ours.metrics) == {k.split(",")[0] if k.endswith(",none") else "_".join(k.split(","))
                                 for k in keys}
    assert ours.num_fewshot == both["theirs"]["n-shot"][task]


def test_group_aggregates_like_lm_eval(both: dict[str, Any]) -> None:
    theirs = both["theirs"]["results"][GROUP]
    group = both["result"].groups[_ours(GROUP)]
    assert sorted(group.members) == sorted(_ours(n) for n in both["names"].values())
    assert group.metrics["acc"].value == pytest.approx(theirs["acc,none"], abs=1e-6)
    assert group.metrics["acc"].stderr == pytest.approx(theirs["acc_stderr,none"], abs=1e-6)


def test_per_document_scores_are_lm_evals(both: dict[str, Any]) -> None:
    """samples.jsonl.gz carries lm-eval's per-document scores (what gate pairs), per filter, and the generations."""
    from evalmon.core.results import read_samples

    samples = list(read_samples(both["run_dir"] / "samples.jsonl.gz"))
    for task in ("evalmon_parity_hellaswag", "evalmon_parity_mmlu_anatomy", GSM8K):
        ref = {(s["doc_id"], s["filter"]): s for s in both["theirs"]["samples"][task]}
        filters = {f for _, f in ref}
        mine = [s for s in samples if s.task == _ours(task)]
        assert len(mine) == N and len(ref) == N * len(filters)
        for s in mine:
            assert s.scores
            for name, value in s.scores.items():
                flt = next((f for f in filters if f != "none" and name.endswith("_" + f)), "none")
                metric = name if flt == "none" else name[: -len(flt) - 1]
                assert value == float(ref[(int(s.doc_id), flt)][metric]), (task, name)
                if task == GSM8K:  # the filtered answers (regex pipelines); loglikelihoods differ by ~1e-6
                    assert s.extra["filtered_resps"][flt] == ref[(int(s.doc_id), flt)]["filtered_resps"]
            if task == GSM8K:
                assert s.outputs == [ref[(int(s.doc_id), "strict-match")]["resps"][0][0]]
    wiki = [s for s in samples if s.task == _ours(WIKI)]
    ref = {s["doc_id"]: s for s in both["theirs"]["samples"][WIKI]}
    assert len(wiki) == N
    for s in wiki:
        assert s.items["word_perplexity"][1] == ref[int(s.doc_id)]["word_perplexity"][1]  # same word counts
        assert s.loglikelihoods[0] == pytest.approx(ref[int(s.doc_id)]["resps"][0][0], abs=1e-4)
