"""Uncertainty signals (hallucination without contexts): token statistics, logged logprobs, the proxy model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.core.errors import ConfigError
from evalmon.core.lm import LLRequest
from evalmon.core.records import TOKEN_LOGPROBS
from evalmon.monitor.schema import normalize_records
from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.uncertainty import (
    STATS,
    LoggedUncertaintySignal,
    ProxyUncertaintySignal,
    build_scorer,
    parse_logged_logprobs,
    token_stats,
)


def test_token_stats_values() -> None:
    lp = [-0.1, -0.2, -6.0, -0.3, -8.0]
    st = token_stats(lp, chars=10)
    assert st["mean_logprob"] == pytest.approx(np.mean(lp)) and st["min_logprob"] == -8.0
    assert st["p10_logprob"] == pytest.approx(np.percentile(lp, 10))
    assert st["tail_share"] == pytest.approx(2 / 5) and st["n_tokens"] == 5
    assert st["surprisal_bits"] == pytest.approx(-np.mean(lp) / math.log(2))
    assert st["surprisal_per_char"] == pytest.approx(-sum(lp) / 10)
    assert token_stats(lp, tail_logprob=-7.0)["tail_share"] == pytest.approx(1 / 5)
    assert all(math.isnan(v) for v in token_stats([]).values()) and set(token_stats([])) == set(STATS)


def test_parse_logged_logprobs_formats() -> None:
    content = [{"token": "Par", "logprob": -0.5, "top_logprobs": []}, {"token": "is", "logprob": -0.25}]
    assert parse_logged_logprobs([-0.5, -0.25]) == [-0.5, -0.25]
    assert parse_logged_logprobs(content) == [-0.5, -0.25]
    assert parse_logged_logprobs({"content": content}) == [-0.5, -0.25]
    assert parse_logged_logprobs(json.dumps(content)) == [-0.5, -0.25]
    assert parse_logged_logprobs(np.array([-1.0])) == [-1.0]
    for bad in (None, float("nan"), "not json", [], [{"token": "x"}], 3.0, {"content": None}):
        assert parse_logged_logprobs(bad) is None, bad


def test_logged_uncertainty_scores_only_records_with_logprobs() -> None:
    raw = [{"timestamp": "2026-11-01T00:00:00Z", "prompt": "Capital of France?", "response": "Paris.",
            "logprobs": {"content": [{"token": "Paris", "logprob": -0.1}, {"token": ".", "logprob": -0.3}]}},
           {"timestamp": "2026-11-01T00:00:01Z", "prompt": "q", "response": "no logprobs logged"}]
    norm = normalize_records(raw, source="t")
    assert TOKEN_LOGPROBS in norm.frame.columns and not norm.quarantined
    out = build_signals(["logged_uncertainty"])[0].compute(norm.frame)
    assert out["logged_uncertainty.mean_logprob"].iloc[0] == pytest.approx(-0.2)
    assert out["logged_uncertainty.n_tokens"].iloc[0] == 2
    assert out.iloc[1].isna().all()  # not scored → NaN (coverage counts it as unscored)
    plain = normalize_records([raw[1]], source="t").frame  # a source without the field: no column, all NaN
    assert TOKEN_LOGPROBS not in plain.columns
    assert LoggedUncertaintySignal().compute(plain).isna().all().all()


def test_proxy_scorer_needs_the_token_logprobs_capability() -> None:
    with pytest.raises(ConfigError, match=r"signals\.uncertainty\.model"):
        build_scorer({"backend": "nope"})
    with pytest.raises(ConfigError, match="cannot return per-token log-probs"):
        build_scorer({"backend": "none"})  # a backend without the token_logprobs capability
    with pytest.raises(ConfigError) as exc:
        build_signals([{"name": "uncertainty", "sample_rate": 2}])
    assert "sample_rate" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.e2e
def test_hf_token_logprobs_sum_to_loglikelihood(tiny_checkpoint: Path) -> None:
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    reqs = [LLRequest("The capital of France is", " Paris, a city on the Seine."),
            LLRequest("The capital of France is", " Lyon."), LLRequest("Q: two plus two?\nA:", " four")]
    for scoring in ("packed", "plain"):
        lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), batch_size=4, scoring=scoring))
        assert "token_logprobs" in lm.capabilities
        per_token, total = lm.token_logprobs(reqs), lm.loglikelihood(reqs)
        for t, r in zip(per_token, total, strict=True):
            assert len(t.logprobs) == r.n_tokens > 0
            assert sum(t.logprobs) == pytest.approx(r.logprob, abs=1e-4)
            assert all(v <= 0 for v in t.logprobs)


@pytest.mark.e2e
def test_proxy_uncertainty_samples_stably_and_marks_unscored(tiny_checkpoint: Path) -> None:
    sig = build_signals([{"name": "uncertainty", "model": {"path": str(tiny_checkpoint)}, "chat": False,
                          "sample_rate": 0.5}])[0]
    assert isinstance(sig, ProxyUncertaintySignal)
    n = 40
    df = pd.DataFrame({"prompt": [f"Question {i}?" for i in range(n)],
                       "response": [f"Answer number {i} is here." for i in range(n - 1)] + [""]})
    out = sig.compute(df)
    scored = out["uncertainty.n_tokens"].notna().to_numpy()
    assert 0.25 < scored.mean() < 0.75 and not scored[-1]  # an empty response is never scored
    assert (out.loc[scored, "uncertainty.mean_logprob"] < 0).all()
    assert out.loc[~scored].isna().all().all()
    again = sig.compute(df)
    assert np.array_equal(again["uncertainty.n_tokens"].notna().to_numpy(), scored)
    np.testing.assert_allclose(again["uncertainty.mean_logprob"], out["uncertainty.mean_logprob"], rtol=1e-6)
