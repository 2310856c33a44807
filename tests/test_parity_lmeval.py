"""Numbers equal lm-eval's: same tiny checkpoint, same real rows, lm-eval's own task configs.

lm-eval (pinned 0.4.13) runs through its Python API on task YAMLs exported by ``evalmon.parity``
(its built-in configs, only the data source swapped for our rows); evalmon runs its own tasks and
engine. Every request's loglikelihood must agree within 1e-4, acc/acc_norm/mc1 (and their stderrs)
exactly, document by document; mc2 to 1e-6; group aggregates as lm-eval's weight_by_size formula.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.evaluate import evaluate_task
from evalmon.metrics.stats import aggregate_group
from evalmon.models.hf import HFCausalLM, HFSettings
from evalmon.parity import export_lmeval_tasks
from evalmon.tasks.base import TaskOptions, build_task

PINNED_LM_EVAL = "0.4.13"
LIMITS = {"mmlu_anatomy": 25, "mmlu_college_medicine": 15, "hellaswag": 40, "truthfulqa_mc1": 25,
          "truthfulqa_mc2": 25, "medqa": 10, "medmcqa": 20, "pubmedqa": 8}
METRIC_MAP = {"truthfulqa_mc1": {"mc1": "acc"}, "truthfulqa_mc2": {"mc2": "acc"}}


@pytest.fixture(scope="module")
def both(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    assert lm_eval.__version__ == PINNED_LM_EVAL if hasattr(lm_eval, "__version__") else True
    out = tmp_path_factory.mktemp("lmeval_tasks")
    names: dict[str, str] = {}
    for task, limit in LIMITS.items():
        names.update(export_lmeval_tasks([task], benchmarks_dir, out, limit))
    hflm = HFLM(pretrained=str(tiny_checkpoint), batch_size=8, dtype="float32", device="cpu")
    theirs = lm_eval.simple_evaluate(
        model=hflm, tasks=list(names.values()), task_manager=TaskManager(include_path=str(out),
                                                                        include_defaults=False),
        log_samples=True, bootstrap_iters=1000, random_seed=0, numpy_random_seed=1234, torch_random_seed=1234)
    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=8))
    ours = {}
    for task, limit in LIMITS.items():
        t = build_task(task, TaskOptions(data_dir=benchmarks_dir, limit=limit))
        ours[task] = evaluate_task(t, lm, None, lambda n: None)
    return names, theirs, ours


def _their_requests(samples: list[dict]) -> dict[int, list[tuple[str, str, float, bool]]]:
    out = {}
    for s in samples:
        args = s["arguments"]
        pairs = [tuple(a) for a in args] if isinstance(args, list) else [
            (v["arg_0"], v["arg_1"]) for v in args.values()]
        resps = [r[0] for r in s["resps"]]
        out[s["doc_id"]] = [(c, x, float(ll), bool(g)) for (c, x), (ll, g) in zip(pairs, resps, strict=True)]
    return out


@pytest.mark.parametrize("task", list(LIMITS))
def test_every_request_and_metric_matches(both, task: str) -> None:  # type: ignore[no-untyped-def]
    names, theirs, ours = both
    lm_name = names[task]
    their_reqs = _their_requests(theirs["samples"][lm_name])
    result, samples = ours[task]
    assert result.n == LIMITS[task] == len(their_reqs)
    worst = 0.0
    for i, sample in enumerate(samples):
        ref = their_reqs[i]
        assert len(ref) == len(sample.loglikelihoods)
        for (_, _, ll, greedy), mine, my_greedy in zip(ref, sample.loglikelihoods, sample.is_greedy, strict=True):
            worst = max(worst, abs(mine - ll))
            assert my_greedy == greedy
    assert worst <= 1e-4, f"{task}: max |Δ loglikelihood| = {worst}"
    their_metrics = theirs["results"][lm_name]
    for metric, mv in result.metrics.items():
        name = METRIC_MAP.get(task, {}).get(metric, metric)
        # binary metrics must be exactly equal; mc2 is a smooth function of loglikelihoods that may
        # differ in the last bits (batch composition), so it gets 1e-6.
        tol = 1e-12 if metric in {"acc", "acc_norm", "mc1"} else 1e-6
        assert mv.value == pytest.approx(their_metrics[f"{name},none"], abs=tol), metric
        assert mv.stderr == pytest.approx(their_metrics[f"{name}_stderr,none"], abs=tol), metric
        if metric in {"acc", "acc_norm", "mc1"}:  # per-document decisions identical, not just the mean
            their_doc = {s["doc_id"]: s[name] for s in theirs["samples"][lm_name]}
            assert [s.scores[metric] for s in samples] == [their_doc[i] for i in range(len(samples))]


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
