"""Statistical correctness of the regression gate (evalmon.metrics.paired, evalmon.gate).

Reference implementations: scipy.stats.binomtest and statsmodels' exact McNemar, statsmodels'
multipletests(method="holm") and proportions_ztest, scipy's Welch t-test. The false-failure rate and
power are simulated with in-memory RunResult/SampleRecord objects (no model), vectorised where the
test function allows it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from evalmon.config.gate import load_policy_text
from evalmon.core import registry
from evalmon.core.results import MetricValue, Provenance, RunResult, SampleRecord, TaskResult
from evalmon.gate.compare import compare
from evalmon.gate.resolve import LoadedRun
from evalmon.gate.verdict import gate
from evalmon.metrics.paired import (
    holm,
    mcnemar_exact,
    mcnemar_test,
    paired_bootstrap_corpus,
    paired_bootstrap_mean,
    register_corpus_metric,
    two_proportion_z,
    welch_from_stderr,
)

ALPHA = 0.05


# --------------------------------------------------------------------------- McNemar
TABLES = [(b, c) for b in range(0, 26, 5) for c in range(0, 26, 3)] + [
    (1, 0), (0, 1), (7, 7), (120, 80), (500, 450), (33, 61), (1000, 1100), (2, 40)]


def test_mcnemar_matches_statsmodels_and_scipy() -> None:
    for b, c in TABLES:
        ours = mcnemar_exact(b, c)
        table = np.array([[40, b], [c, 25]])  # concordant cells do not matter
        ref_sm = sm_mcnemar(table, exact=True).pvalue
        assert ours == pytest.approx(ref_sm, rel=1e-9, abs=1e-15), (b, c)
        if b + c:
            assert ours == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9, abs=1e-15), (b, c)
        else:
            assert ours == 1.0


def test_mcnemar_vectorised_and_from_outcomes() -> None:
    b, c = np.array([0, 3, 10, 40]), np.array([0, 9, 10, 20])
    vec = mcnemar_exact(b, c)
    assert vec == pytest.approx([mcnemar_exact(int(x), int(y)) for x, y in zip(b, c, strict=True)])
    base = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 1])
    cand = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 1])
    t = mcnemar_test(base, cand)
    assert t.detail == {"baseline_only_correct": 3, "candidate_only_correct": 1}
    assert t.delta == pytest.approx(cand.mean() - base.mean())
    assert t.p_value == pytest.approx(sm_mcnemar([[4, 3], [1, 2]], exact=True).pvalue)
    assert t.ci_low is not None and t.ci_low < t.delta < (t.ci_high or 0)


# --------------------------------------------------------------------------- Holm
@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 17, 40):  # multipletests costs ~0.2 s a call: a few vectors, with ties
        p = np.round(rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 3), 3)
        ref = multipletests(p, alpha=ALPHA, method="holm")[1]
        assert holm(p) == pytest.approx(ref, rel=1e-12)


def test_holm_by_hand_and_missing_values() -> None:
    # sorted 0.01, 0.02, 0.04 → 3·0.01, max(2·0.02, ·), max(1·0.04, ·)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    out = holm([0.01, None, float("nan"), 0.03])
    assert out[0] == pytest.approx(0.02) and out[3] == pytest.approx(0.03)
    assert math.isnan(out[1]) and math.isnan(out[2])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


# --------------------------------------------------------------------------- unpaired fallbacks
def test_two_proportion_z_matches_statsmodels() -> None:
    for p1, n1, p2, n2 in [(0.6, 500, 0.55, 400), (0.3, 50, 0.4, 60), (0.9, 1000, 0.9, 1000)]:
        ref = proportions_ztest([round(p2 * n2), round(p1 * n1)], [n2, n1])[1]
        assert two_proportion_z(p1, n1, p2, n2).p_value == pytest.approx(ref, rel=1e-9)


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 0.2, 80), rng.normal(0.45, 0.3, 120)
    se = lambda v: float(np.std(v, ddof=1) / math.sqrt(v.size))  # noqa: E731
    ours = welch_from_stderr(float(x.mean()), se(x), x.size, float(y.mean()), se(y), y.size)
    assert ours.p_value == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
    assert welch_from_stderr(0.5, None, 10, 0.4, 0.1, 10).p_value is None


# --------------------------------------------------------------------------- bootstrap
def test_paired_bootstrap_mean_is_seeded_and_sane() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 300)
    same = paired_bootstrap_mean(a, a, n_boot=500, seed=1)
    assert same.p_value == 1.0 and same.delta == 0.0
    b = a - 0.05 + rng.normal(0, 0.05, 300)
    r1, r2 = paired_bootstrap_mean(a, b, n_boot=2000, seed=5), paired_bootstrap_mean(a, b, n_boot=2000, seed=5)
    assert r1 == r2 and r1.detail == {"n_boot": 2000, "seed": 5}
    assert r1.p_value is not None and r1.p_value < 1e-3 and r1.ci_low is not None and r1.ci_high is not None
    assert r1.ci_low < r1.delta < r1.ci_high < 0
    # same scale as the paired t-test
    t = stats.ttest_rel(b, a)
    noisy = a + rng.normal(0, 0.3, 300)
    assert paired_bootstrap_mean(a, noisy, n_boot=4000, seed=2).p_value == pytest.approx(
        stats.ttest_rel(noisy, a).pvalue, abs=0.03)
    assert t.pvalue < 1e-3


def _ratio(items: list[list[float]]) -> float:
    """A toy corpus statistic: Σ numerators / Σ denominators (like corpus WER or token perplexity)."""
    num, den = np.sum(np.asarray(items, dtype=float), axis=0)
    return float(num / den)


def test_corpus_hook_registers_and_is_used_by_compare() -> None:
    rng = np.random.default_rng(11)
    items = [[float(rng.integers(0, 5)), float(rng.integers(5, 20))] for _ in range(120)]
    worse = [[x[0] + float(rng.integers(0, 3)), x[1]] for x in items]
    direct = paired_bootstrap_corpus(items, worse, _ratio, n_boot=300, seed=4)
    assert direct.delta == pytest.approx(_ratio(worse) - _ratio(items)) and direct.p_value is not None
    register_corpus_metric("toy_ratio", _ratio)
    try:
        a = _loaded("a", {"t": ("toy_ratio", "corpus", items)}, value=_ratio(items), hib=False)
        b = _loaded("b", {"t": ("toy_ratio", "corpus", worse)}, value=_ratio(worse), hib=False)
        (m,) = compare(a, b, n_boot_corpus=300, seed=4).metrics
        assert m.kind == "corpus" and m.test == "paired-bootstrap-corpus" and m.paired
        assert m.delta == pytest.approx(direct.delta) and m.p_value is not None and m.p_value < 0.01
        v = gate(a, b, n_boot_corpus=300)
        assert v.exit_code == 1 and v.metrics[0].worsening > 0  # lower is better: an increase is a drop
    finally:
        registry.metrics.remove("toy_ratio")


# --------------------------------------------------------------------------- in-memory runs
def _loaded(rid: str, tasks: dict[str, tuple[str, str, list]], value: float = 0.5, hib: bool = True
            ) -> LoadedRun:
    results, samples = {}, []
    for name, (metric, kind, values) in tasks.items():
        results[name] = TaskResult(name=name, n=len(values), num_fewshot=0, source="mem", config_hash=f"h-{name}",
                                   metrics={metric: MetricValue.with_ci(value, 0.01, hib)},
                                   metric_kinds={metric: kind})
        for i, v in enumerate(values):
            rec = SampleRecord(task=name, doc_id=str(i), prompt_hash=f"p{i}")
            if kind == "corpus":
                rec.items = {metric: v}
            else:
                rec.scores = {metric: v}
            samples.append(rec)
    run = RunResult(run_id=rid, suite_name="sim", suite_hash="s", started_at="2025-01-01T00:00:00+00:00",
                    status="finished", provenance=Provenance(evalmon_version="0.1.0", python_version="3.11", platform="sim",
                                          hostname="sim"),
                    model={"bos_policy": "tokenizer-default"}, tasks=results)
    return LoadedRun(run, samples, rid, "in memory")


def test_documents_one_run_did_not_score_are_left_out_of_the_pairing_and_said() -> None:
    # MT-Bench: a question whose judge outputs all failed to parse has no per-document score; the rest still pair
    rng = np.random.default_rng(5)
    base = rng.integers(1, 11, size=40).astype(float)
    cand = np.clip(base + rng.integers(-1, 3, size=40), 1, 10)
    a = _loaded("a", {"mtbench": ("score", "continuous", base.tolist())}, value=float(base.mean()))
    b = _loaded("b", {"mtbench": ("score", "continuous", cand.tolist())}, value=float(cand[3:].mean()))
    assert b.samples is not None
    for rec in b.samples[:3]:
        rec.scores = {}
    (m,) = compare(a, b, n_boot=500, seed=3).metrics
    assert m.paired and m.test.startswith("paired") and m.n == 37  # was: the whole metric unpaired (Welch)
    assert m.delta == pytest.approx(float(cand[3:].mean() - base[3:].mean()))
    assert any("3 documents without a per-document score (baseline 0, candidate 3) left out" in n for n in m.notes), m.notes
    assert not any("not in the per-document scores" in n for n in m.notes), m.notes


def _refill(run: LoadedRun, metric_values: dict[str, tuple[str, np.ndarray]]) -> None:
    """Reuse the record objects of a simulated run with new per-document scores (fast)."""
    assert run.samples is not None
    by_task: dict[str, list[SampleRecord]] = {}
    for rec in run.samples:
        by_task.setdefault(rec.task, []).append(rec)
    for task, (metric, values) in metric_values.items():
        for rec, v in zip(by_task[task], values.tolist(), strict=True):
            rec.scores = {metric: v}
        run.result.tasks[task].metrics[metric].value = float(values.mean())


@pytest.mark.accuracy  # Monte-Carlo calibration of the gate (1000 simulated pairs)
def test_false_failure_rate_same_model_different_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    """Baseline and candidate = the same model, different sampling seeds: per-document difficulty
    p_i ~ Beta(1.2, 0.8) (mean accuracy 0.6) for a binary task and per-document means μ_i ~ Beta(2, 2)
    plus N(0, 0.1) noise for a continuous one, outcomes drawn independently per run. The gate (two
    metrics, Holm, alpha 0.05, max_drop 0) must fail at most alpha of the time (+3 binomial sd)."""
    n_pairs, n_bin, n_cont = 1000, 200, 150
    rng = np.random.default_rng(20250101)
    zero = np.zeros(n_bin), np.zeros(n_cont)
    a = _loaded("base", {"mc": ("acc", "binary", list(zero[0])), "cont": ("mc2", "continuous", list(zero[1]))})
    b = _loaded("cand", {"mc": ("acc", "binary", list(zero[0])), "cont": ("mc2", "continuous", list(zero[1]))})
    policy = load_policy_text("alpha: 0.05\ndefaults: {max_drop: 0.0, require_significance: true}\n")
    failed = any_sig = 0
    for _ in range(n_pairs):
        p, mu = rng.beta(1.2, 0.8, n_bin), rng.beta(2, 2, n_cont)
        for run in (a, b):
            _refill(run, {"mc": ("acc", (rng.random(n_bin) < p).astype(float)),
                          "cont": ("mc2", np.clip(mu + rng.normal(0, 0.1, n_cont), 0, 1))})
        v = gate(a, b, policy, n_boot=400)
        failed += v.exit_code == 1
        any_sig += any(m.significant for m in v.metrics)
        assert v.exit_code in (0, 1)
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_pairs)
    rate, fwer = failed / n_pairs, any_sig / n_pairs
    with capsys.disabled():
        print(f"\n[gate] false-failure rate {rate:.4f} (family-wise two-sided rejections {fwer:.4f}) over "
              f"{n_pairs} same-model pairs, alpha {ALPHA}")
    assert rate <= ALPHA + slack
    assert fwer <= ALPHA + slack


@pytest.mark.accuracy  # Monte-Carlo power vs the analytic value
def test_power_on_a_two_point_drop_at_n_1000(capsys: pytest.CaptureFixture[str]) -> None:
    """Accuracy 0.60 → 0.58 (per-document p_i ~ Beta(1.2, 0.8), candidate q_i = p_i · 0.58/0.60), n = 1000,
    one gated metric, alpha 0.05: simulated power of the exact McNemar gate vs the normal approximation
    Φ((|δ|√n − z·√π_d) / √(π_d − δ²)), π_d = P(discordant)."""
    n, sims, a_, b_ = 1000, 4000, 1.2, 0.8
    k = 0.58 / 0.60
    rng = np.random.default_rng(99)
    p = rng.beta(a_, b_, (sims, n))
    base = rng.random((sims, n)) < p
    cand = rng.random((sims, n)) < p * k
    worse, better = np.sum(base & ~cand, axis=1), np.sum(~base & cand, axis=1)
    pvals = mcnemar_exact(worse, better)
    power = float(np.mean((pvals <= ALPHA) & (worse > better)))
    e1 = a_ / (a_ + b_)
    e2 = a_ * (a_ + 1) / ((a_ + b_) * (a_ + b_ + 1))
    disc = (e1 - k * e2) + (k * e1 - k * e2)
    delta = (k - 1) * e1
    z = stats.norm.ppf(1 - ALPHA / 2)
    analytic = float(stats.norm.cdf((abs(delta) * math.sqrt(n) - z * math.sqrt(disc)) / math.sqrt(disc - delta**2)))
    # the same decisions through the full gate for a few simulated pairs
    for i in range(3):
        ga = _loaded("b", {"mc": ("acc", "binary", base[i].astype(float).tolist())}, value=base[i].mean())
        gb = _loaded("c", {"mc": ("acc", "binary", cand[i].astype(float).tolist())}, value=cand[i].mean())
        v = gate(ga, gb)
        assert v.metrics[0].p_holm == pytest.approx(pvals[i])
        assert (v.exit_code == 1) == bool(pvals[i] <= ALPHA and worse[i] > better[i])
    with capsys.disabled():
        print(f"\n[gate] power on a 2-point drop (0.60 → 0.58) at n=1000: {power:.3f} simulated "
              f"({sims} pairs), {analytic:.3f} normal approximation; P(discordant) = {disc:.3f}")
    assert abs(power - analytic) < 0.04
    assert 0.15 < power < 0.5
