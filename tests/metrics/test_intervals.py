"""95% intervals that stay in range (issue #13 item 5): Wilson for 0/1 metrics, bootstrap percentile for
corpus metrics, BCa for other means; lm-eval's stderr unchanged alongside; the method is recorded."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from evalmon.core.results import GroupResult, MetricValue, RunResult, TaskResult
from evalmon.harness.evaluate import aggregate, bootstrap_stderr
from evalmon.harness.run import aggregate_groups
from evalmon.metrics import perplexity as ppl
from evalmon.metrics.intervals import BCA, PERCENTILE, WILSON, estimate_of, mean_interval, wilson
from evalmon.metrics.text import corpus_score
from evalmon.sinks.report import fmt_ci, fmt_ci_method
from evalmon.tasks.base import MetricSpec


def lm_eval_stderr(values: list[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def test_wilson_one_in_twenty_matches_statsmodels_and_stays_in_range() -> None:
    values = [1.0] + [0.0] * 19  # medqa acc 0.05: value ± 1.96·stderr was [-0.0480, 0.1480]
    mv = aggregate(MetricSpec("acc"), values, seed=1234)
    lo, hi = proportion_confint(1, 20, alpha=0.05, method="wilson")
    assert mv.value == 0.05 and mv.ci_method == WILSON
    assert mv.ci_low == pytest.approx(lo, abs=1e-12) and mv.ci_high == pytest.approx(hi, abs=1e-12)
    assert 0 < mv.ci_low < mv.value < mv.ci_high < 1
    assert mv.value - 1.96 * (mv.stderr or 0) < 0  # the normal approximation this replaces left [0, 1]
    assert mv.stderr == pytest.approx(lm_eval_stderr(values), rel=1e-12)  # lm-eval's stderr, unchanged


@pytest.mark.parametrize("k", [0, 20])
def test_wilson_all_wrong_and_all_right_are_informative(k: int) -> None:
    values = [1.0] * k + [0.0] * (20 - k)
    mv = aggregate(MetricSpec("exact_match"), values, seed=1)
    lo, hi = proportion_confint(k, 20, alpha=0.05, method="wilson")
    assert mv.stderr == 0.0 and mv.ci_method == WILSON
    assert (mv.ci_low, mv.ci_high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert 0.0 <= mv.ci_low <= mv.value <= mv.ci_high <= 1.0
    assert mv.ci_high - mv.ci_low > 0.1  # not the degenerate [v, v] of value ± 1.96·0
    assert (mv.ci_low == 0.0) if k == 0 else (mv.ci_high == 1.0)


def test_perplexity_interval_is_positive_and_contains_the_value() -> None:
    # a small corpus with one badly predicted document: huge spread, value - 1.96·se < 0
    items = [[-12.0, 10], [-15.0, 12], [-9.0, 8], [-60.0, 6], [-11.0, 9], [-14.0, 11]]
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        spec = MetricSpec(metric, higher_is_better=False, aggregation="corpus", kind="corpus",
                          corpus=ppl.AGGREGATIONS[metric], bootstrap_iters=500, stderr_fn=ppl.stderr_fn(metric))
        mv = aggregate(spec, items, seed=1234)
        assert mv.ci_method == PERCENTILE and mv.ci_low is not None and mv.ci_high is not None
        assert 0 < mv.ci_low <= mv.value <= mv.ci_high
        assert mv.stderr == ppl.bootstrap_stderr(metric, items, 500, 1234)  # stderr unchanged
    assert mv.value - 1.96 * (mv.stderr or 0) > 0  # bits_per_byte is tame; word perplexity is not:
    word = aggregate(MetricSpec("word_perplexity", aggregation="corpus", corpus=ppl.weighted_perplexity,
                                bootstrap_iters=500, stderr_fn=ppl.stderr_fn("word_perplexity")), items, 1234)
    assert word.value - 1.96 * (word.stderr or 0) < 0 < (word.ci_low or 0)


def test_generic_corpus_bootstrap_reports_percentiles_and_the_same_stderr() -> None:
    items = [[3, 4], [1, 4], [4, 4], [0, 4], [2, 4], [4, 4]]
    ratio = lambda xs: sum(a for a, _ in xs) / sum(b for _, b in xs)  # noqa: E731
    mv = aggregate(MetricSpec("ratio", aggregation="corpus", corpus=ratio, bootstrap_iters=300), items, 7)
    assert mv.stderr == bootstrap_stderr(ratio, items, 300, 7)
    assert mv.ci_method == PERCENTILE and 0 <= mv.ci_low <= mv.value <= mv.ci_high <= 1  # type: ignore[operator]


def test_sacrebleu_bootstrap_interval_is_reported() -> None:
    hyps = ["the cat sat on the mat", "a dog barked", "it is raining today", "hello world", "good night"]
    refs = [["the cat sat on a mat", "a dog barks", "it rains today", "hello world", "good evening"]]
    cs = corpus_score("bleu", hyps, refs, n_bootstrap=200, seed=3)
    est = estimate_of(cs)
    assert est.stderr == cs.stderr and est.interval is not None and est.interval.method == PERCENTILE
    assert (est.interval.low, est.interval.high) == (cs.ci_low, cs.ci_high)


def test_continuous_mean_uses_seeded_bca_within_the_data_range() -> None:
    values = [0.1, 0.9, 0.35, 0.6, 0.72, 0.05, 0.5, 0.44, 0.81, 0.3]  # e.g. mc2
    mv = aggregate(MetricSpec("mc2", kind="continuous"), values, seed=5)
    assert mv.ci_method == BCA and min(values) <= mv.ci_low < mv.value < mv.ci_high <= max(values)  # type: ignore[operator]
    assert mv == aggregate(MetricSpec("mc2", kind="continuous"), values, seed=5)  # seeded
    assert mv.stderr == pytest.approx(lm_eval_stderr(values), rel=1e-12)
    same = mean_interval([0.5] * 8)
    assert same is not None and (same.low, same.high) == (0.5, 0.5)
    assert mean_interval([0.5, float("nan")]) is None and mean_interval([0.3]) is None


def test_big_continuous_mean_uses_percentile_bootstrap() -> None:
    values = list(np.random.default_rng(0).random(6_000))
    iv = mean_interval(values, iters=1000, seed=1)
    assert iv is not None and iv.method == PERCENTILE and iv.low < float(np.mean(values)) < iv.high
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * lm_eval_stderr(values), rel=0.15)


def test_group_of_proportions_is_one_wilson_interval() -> None:
    def task(name: str, k: int, n: int) -> TaskResult:
        mv = aggregate(MetricSpec("acc"), [1.0] * k + [0.0] * (n - k), seed=1)
        return TaskResult(name=name, n=n, num_fewshot=0, source="x", config_hash="h", metrics={"acc": mv})

    result = RunResult(run_id="r", suite_name="s", suite_hash="h", started_at="t",
                       provenance={"evalmon_version": "0", "python_version": "3", "platform": "p",
                                   "hostname": "h"}, model={},
                       tasks={"a": task("a", 0, 10), "b": task("b", 3, 30)})
    aggregate_groups(result, {"mmlu": ["a", "b"]})  # a registered group whose metric is acc
    g: GroupResult = result.groups["mmlu"]
    lo, hi = proportion_confint(3, 40, alpha=0.05, method="wilson")
    acc = g.metrics["acc"]
    assert acc.value == pytest.approx(3 / 40) and acc.ci_method == WILSON
    assert (acc.ci_low, acc.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert acc.stderr is not None  # lm-eval's pooled stderr, still reported


def test_method_is_recorded_rendered_and_old_results_still_load() -> None:
    mv = MetricValue.with_ci(0.05, 0.05, ci=wilson(1, 20).bounds, ci_method=WILSON)
    back = MetricValue.model_validate_json(mv.model_dump_json())
    assert back == mv and back.ci_method == WILSON
    assert fmt_ci_method(mv) == "wilson" and fmt_ci(mv) == f"[{mv.ci_low:.4f}, {mv.ci_high:.4f}]"
    normal = MetricValue.with_ci(0.5, 0.1)  # a bare stderr (third-party stderr_fn): the normal approximation
    assert normal.ci_method == "normal" and normal.ci_low == pytest.approx(0.304)
    old = MetricValue.model_validate({"value": 0.5, "stderr": 0.1, "ci_low": 0.304, "ci_high": 0.696})
    assert old.ci_method is None and fmt_ci_method(old) == "normal"
    assert fmt_ci_method(MetricValue(value=0.5)) == "—"
