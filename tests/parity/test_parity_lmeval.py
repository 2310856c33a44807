"""Numbers equal lm-eval's: same tiny checkpoint, same real rows, lm-eval's own task configs.

lm-eval (pinned 0.4.13) runs through its Python API on task YAMLs exported by ``evalmon.harness.parity``
(its built-in configs, only the data source swapped for our rows); evalmon runs its own tasks and
engine. Every request's loglikelihood must agree within 1e-4, acc/acc_norm/mc1 (and their stderrs)
exactly, document by document; mc2 to 1e-6; group aggregates as lm-eval's weight_by_size formula.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from parity_util import assert_task_parity, export, run_evalmon, run_lmeval

from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.metrics.stats import aggregate_group

LIMITS = {"mmlu_anatomy": 25, "mmlu_college_medicine": 15, "hellaswag": 40, "truthfulqa_mc1": 25,
          "truthfulqa_mc2": 25, "medqa": 10, "medmcqa": 20, "pubmedqa": 8}


@pytest.fixture(scope="module")
def both(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from lm_eval.models.huggingface import HFLM

    out = tmp_path_factory.mktemp("lmeval_tasks")
    names = export(LIMITS, benchmarks_dir, out)
    hflm = HFLM(pretrained=str(tiny_checkpoint), batch_size=8, dtype="float32", device="cpu")
    theirs = run_lmeval(hflm, names, out)
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=8))
    return names, theirs, run_evalmon(lm, LIMITS, benchmarks_dir)


@pytest.mark.parametrize("task", list(LIMITS))
def test_every_request_and_metric_matches(both, task: str) -> None:  # type: ignore[no-untyped-def]
    names, theirs, ours = both
    assert_task_parity(task, LIMITS[task], names[task], theirs, ours[task])


def test_group_aggregation_matches_lm_eval_formula(both) -> None:  # type: ignore[no-untyped-def]
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr

    names, theirs, ours = both
    members = ["mmlu_anatomy", "mmlu_college_medicine"]
    accs = [theirs["results"][names[m]]["acc,none"] for m in members]
    ses = [theirs["results"][names[m]]["acc_stderr,none"] for m in members]
    sizes = [LIMITS[m] for m in members]
    value, se = aggregate_group([ours[m][0].metrics["acc"].value for m in members],
                                [ours[m][0].metrics["acc"].stderr for m in members], sizes)
    assert value == pytest.approx(aggregate_subtask_metrics(accs, sizes, True), rel=1e-12)
    assert se == pytest.approx(pooled_sample_stderr(ses, sizes), rel=1e-12)
