"""``monitor/calibrate.py``: thresholds from a reference for a per-window false-alarm rate (issue #14 item 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalmon.config.alerts import AlertRule
from evalmon.monitor.calibrate import calibrate_frame, centroid_distance, threshold_for


def _reference(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "safety.unsafe": (rng.random(n) < 0.05).astype(float),
        "pii.any": np.zeros(n),  # constant: never flagged in the reference
        "hallucination.flag": np.full(n, np.nan),  # empty: never scored
        "latency_ms": rng.gamma(4.0, 250.0, n),
    })


def test_threshold_leaves_the_target_share_of_windows_on_the_alerting_side() -> None:
    sims = np.arange(1000, dtype=float)
    assert np.mean(sims > threshold_for(sims, ">", 0.01)) <= 0.01
    assert np.mean(sims < threshold_for(sims, "<", 0.01)) <= 0.01
    ties = np.r_[np.zeros(990), np.ones(10)]  # a discrete rate: ">=" must step past the tie
    assert np.mean(ties >= threshold_for(ties, ">=", 0.005)) <= 0.005


def test_false_alarm_rate_holds_on_fresh_windows_of_the_true_distribution() -> None:
    """Calibrated on one reference sample, checked on windows drawn afresh from the generating process."""
    ref = _reference(6000, seed=1)
    rules = [AlertRule(metric="rate/safety.unsafe", op=">", value=0.5, name="unsafe")]
    (res,), _ = calibrate_frame(ref, rules, window_records=200, false_alarm_rate=0.01, draws=4000, seed=3)
    assert res.status == "calibrated" and 0.05 < res.value < 0.15
    rng = np.random.default_rng(99)  # held out: not the reference rows
    sizes = np.maximum(rng.poisson(200, 20000), 1)
    fresh = rng.binomial(sizes, 0.05) / sizes
    assert np.mean(fresh > res.value) < 0.03  # target 0.01; the reference's p is itself an estimate
    assert "≥" in res.smallest_event and "of a window's records" in res.smallest_event
    assert 0 < res.false_alarm <= 0.01


def test_constant_empty_missing_and_equality_rules_are_reported_not_crashed() -> None:
    ref = _reference(500, seed=2)
    rules = [AlertRule(metric="rate/pii.any", op=">", value=0.05, name="pii"),
             AlertRule(metric="rate/hallucination.flag", op=">", value=0.3, name="hallu"),
             AlertRule(metric="rate/jailbreak.flag", op=">", value=0.1, name="jb"),
             AlertRule(metric="drift_detected/embedding.prompt", op=">", value=0, name="topics"),
             AlertRule(metric="records", op="==", value=0, name="eq"),
             AlertRule(metric="records", op="<", value=1, name="traffic drop")]
    res, any_rate = calibrate_frame(ref, rules, window_records=50, false_alarm_rate=0.01, draws=2000)
    why = {r.rule: r.reason for r in res}
    assert why["pii"].startswith("constant") and why["hallu"].startswith("empty")
    assert "no column 'jailbreak.flag'" in why["jb"] and "not computed per record" in why["topics"]
    assert "no tail" in why["eq"]
    assert [r.value for r in res[:5]] == [None] * 5
    drop = res[5]
    assert drop.status == "calibrated" and 25 < drop.value < 50 and "traffic ÷" in drop.smallest_event
    assert 0 < any_rate <= 0.01
    assert calibrate_frame(ref.iloc[:0], rules[:1], window_records=50, draws=200)[0][0].reason.startswith("empty")


def test_embedding_distance_is_calibrated_against_the_reference_the_monitor_holds() -> None:
    """The monitor compares each window's vectors with the embedding signal's sample of the reference. Here that
    sample's mean is off the traffic's (as a cluster sample of repeated prompts was): the distances the monitor
    then measures on fresh clean windows must be what calibrate's threshold is set on — not the noise inside
    the sample (resampling the held vectors against themselves gave a threshold every clean window exceeded)."""
    rng = np.random.default_rng(0)
    dim = 16

    def traffic(n: int) -> np.ndarray:
        return rng.normal(size=(n, dim)) / np.sqrt(dim)

    held = traffic(400) + np.r_[0.3, np.zeros(dim - 1)]  # the reference vectors the monitor holds
    frame = pd.DataFrame({"embedding.prompt": [*held, *[np.nan] * 3600]})  # 10 % of the reference embedded
    rule = AlertRule(metric="drift/embedding.prompt", op=">", value=0.1, name="topics")
    (res,), _ = calibrate_frame(frame, [rule], window_records=200, false_alarm_rate=0.02, draws=1000, seed=1,
                                distance_columns=["embedding.prompt"],
                                populations={"embedding.prompt": traffic(3600)}, sample_size=lambda n: n)
    assert res.status == "calibrated", res.reason
    fresh = np.array([centroid_distance(traffic(n), held) for n in np.maximum(rng.poisson(200, 1000), 1)])
    assert 0.002 < np.mean(fresh > res.value) < 0.06  # target 0.02 on the windows the monitor will see
    # the window's own embedding sample: fewer vectors per window → a wider null, a higher threshold
    (sub,), _ = calibrate_frame(frame, [rule], window_records=200, false_alarm_rate=0.02, draws=1000, seed=1,
                                distance_columns=["embedding.prompt"],
                                populations={"embedding.prompt": traffic(3600)}, sample_size=lambda n: 20)
    assert sub.value > res.value


@pytest.mark.e2e  # imports evidently (seconds)
def test_centroid_distance_is_evidentlys_distance_method() -> None:
    from evidently.metrics.embeddings import DistanceDriftMethod

    rng = np.random.default_rng(2)
    cur, ref = rng.normal(size=(30, 8)), rng.normal(size=(50, 8)) + 0.2
    names = [f"e.{i}" for i in range(8)]
    score, _, name = DistanceDriftMethod()(pd.DataFrame(cur, columns=names), pd.DataFrame(ref, columns=names))
    assert name == "distance" and abs(centroid_distance(cur, ref) - float(score)) < 1e-9
