"""Shared parts of the lm-eval parity tests (toy checkpoint: test_parity_lmeval.py; real: test_parity_real.py).

lm-eval runs through its Python API on task YAMLs exported by ``evalmon.harness.parity`` (its built-in configs,
only the data source swapped for our rows); evalmon runs its own tasks and engine on the same rows.
:func:`assert_task_parity` compares them document by document: every request's loglikelihood within
``ll_tol``, ``is_greedy`` identical, acc/acc_norm/mc1 (values, stderrs and per-document decisions)
exactly, mc2 to 1e-6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalmon.harness.evaluate import evaluate_task
from evalmon.harness.parity import export_lmeval_tasks
from evalmon.tasks.base import TaskOptions, build_task

PINNED_LM_EVAL = "0.4.13"
#: evalmon metric → lm-eval metric name, where they differ
METRIC_MAP = {"truthfulqa_mc1": {"mc1": "acc"}, "truthfulqa_mc2": {"mc2": "acc"}}
BINARY = {"acc", "acc_norm", "mc1"}


def export(limits: dict[str, int], data_dir: Path, out: Path) -> dict[str, str]:
    """lm-eval task folders for ``limits`` (task → first N documents) under ``out``; our → lm-eval name."""
    names: dict[str, str] = {}
    for task, limit in limits.items():
        names.update(export_lmeval_tasks([task], data_dir, out, limit))
    return names


def run_lmeval(hflm: Any, names: dict[str, str], task_dir: Path, bootstrap_iters: int = 1000,
               **options: Any) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on the exported tasks (samples logged, seeds fixed, no built-in index);
    ``options`` go to it as well (e.g. ``apply_chat_template=True, fewshot_as_multiturn=False``)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    assert getattr(lm_eval, "__version__", PINNED_LM_EVAL) == PINNED_LM_EVAL
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    out: dict[str, Any] = lm_eval.simple_evaluate(
        model=hflm, tasks=list(names.values()), task_manager=manager, log_samples=True,
        bootstrap_iters=bootstrap_iters, random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, **options)
    return out


def run_evalmon(lm: Any, limits: dict[str, int], data_dir: Path) -> dict[str, Any]:
    """evalmon's tasks + engine on the same rows: task → (TaskResult, [SampleRecord])."""
    ours = {}
    for task, limit in limits.items():
        t = build_task(task, TaskOptions(data_dir=data_dir, limit=limit))
        ours[task] = evaluate_task(t, lm, None, lambda n: None)
    return ours


def their_requests(samples: list[dict[str, Any]]) -> dict[int, list[tuple[str, str, float, bool]]]:
    """lm-eval's logged samples → doc_id → [(context, continuation, loglikelihood, is_greedy)] in request order."""
    out = {}
    for s in samples:
        args = s["arguments"]
        pairs = [tuple(a) for a in args] if isinstance(args, list) else [
            (v["arg_0"], v["arg_1"]) for v in args.values()]
        resps = [r[0] for r in s["resps"]]
        out[s["doc_id"]] = [(c, x, float(ll), bool(g)) for (c, x), (ll, g) in zip(pairs, resps, strict=True)]
    return out


def assert_task_parity(task: str, n: int, lm_name: str, theirs: dict[str, Any], ours: tuple[Any, Any],
                       ll_tol: float = 1e-4) -> float:
    """Every request and metric of ``task`` equal lm-eval's, document by document; returns max |Δ ll|."""
    their_samples = theirs["samples"][lm_name]
    their_reqs = their_requests(their_samples)
    result, samples = ours
    assert result.n == n == len(their_reqs)
    worst, where, greedy_diff, doc_delta = 0.0, "", [], []
    for i, sample in enumerate(samples):
        ref = their_reqs[i]
        assert len(ref) == len(sample.loglikelihoods), f"{task} doc {i}: number of requests"
        doc_delta.append(max(abs(mine - r[2]) for mine, r in zip(sample.loglikelihoods, ref, strict=True)))
        for j, ((_, _, ll, greedy), mine, my_greedy) in enumerate(
                zip(ref, sample.loglikelihoods, sample.is_greedy, strict=True)):
            if abs(mine - ll) > worst:
                worst, where = abs(mine - ll), f"doc {i} request {j} (evalmon {mine:.6f}, lm-eval {ll:.6f})"
            if my_greedy != greedy:
                greedy_diff.append((i, j))
    assert worst <= ll_tol, f"{task}: max |Δ loglikelihood| = {worst:.3g} at {where}"
    assert not greedy_diff, f"{task}: is_greedy differs at (doc, request) {greedy_diff}"
    their_metrics = theirs["results"][lm_name]
    for metric, mv in result.metrics.items():
        name = METRIC_MAP.get(task, {}).get(metric, metric)
        # binary metrics must be exactly equal; mc2 is a smooth function of loglikelihoods that may
        # differ in the last bits (batch composition), so it gets 1e-6.
        tol = 1e-12 if metric in BINARY else 1e-6
        assert mv.value == pytest.approx(their_metrics[f"{name},none"], abs=tol), metric
        assert mv.stderr == pytest.approx(their_metrics[f"{name}_stderr,none"], abs=tol), metric
        their_doc = {s["doc_id"]: s[name] for s in their_samples}
        if metric in BINARY:  # per-document decisions identical, not just the mean
            assert [s.scores[metric] for s in samples] == [their_doc[i] for i in range(len(samples))], metric
        else:  # mc2 = Σtrue p / Σ p moves by at most ~δ/2 when every loglikelihood moves by ≤ δ
            for i, s in enumerate(samples):
                delta = abs(s.scores[metric] - their_doc[i])
                assert delta <= doc_delta[i] + 1e-12, f"{task} doc {i}: {metric} differs by {delta:.3g}"
    return worst
