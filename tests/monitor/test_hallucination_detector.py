"""The trained context-free hallucination detector (signal ``halludetect``): the shipped artifact, its
mechanics, and its quality on held-out HaluEval QA (never trained on) under the real proxy model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.core.errors import ConfigError
from evalmon.monitor.signals import build_signals
from evalmon.monitor.signals.halludetect import (
    PMI_FEATURES,
    STAT_FEATURES,
    TEXT_FEATURES,
    feature_matrix,
    load_artifact,
    pmi_features,
    predict,
    text_features,
)

PERMISSIVE = {"Apache-2.0", "MIT", "CC-BY-4.0", "CC-BY-SA-4.0"}


@pytest.mark.parametrize("ref", [None, "builtin:halludetect-v1.json", "builtin:halludetect-v2.json"])
def test_shipped_artifacts_are_portable_and_trained_on_permissive_data_only(ref: str | None) -> None:
    art = load_artifact(ref)
    d = len(art["features"])
    assert d == len(art["mean"]) == len(art["scale"]) == len(art["coef"]) == len(art["impute"])
    assert 0 < art["threshold"] < 1
    assert set(art["features"]) <= {*STAT_FEATURES, *PMI_FEATURES, *TEXT_FEATURES}
    assert set(art["training"]["datasets"].values()) <= PERMISSIVE
    trained = {name.split("/")[0] for name in art["training"]["datasets"]}
    assert not trained & {"halueval", "halueval2_human", "felm", "phd_hallucination"}
    for name, entry in art["validation"].items():  # figures recorded with the artifact, on held-out rows
        assert entry["rows"] > 0 and 0 < entry["base_rate"] < 1, name
    p = predict(art, np.asarray([art["mean"]], dtype=float))
    assert 0 < p[0] < 1


def test_default_artifact_is_v1_and_v2_is_opt_in(tmp_path) -> None:
    """v1 is the default: v2 (+ the PMI features, a second proxy-model pass) ranks better within each held-out
    set but worse pooled over them, at 1.6× the cost (docs/detectors/hallucination.md)."""
    art, v2 = load_artifact(), load_artifact("builtin:halludetect-v2.json")
    assert art["version"] == "1" and art["features"] == list(STAT_FEATURES)
    assert v2["version"] == "2" and v2["features"] == [*STAT_FEATURES, *PMI_FEATURES]
    # a proxy model named (never loaded here): without one, building needs the embedded checkpoint on disk,
    # which a fresh clone fetches only when a real-model test runs first
    sig = build_signals([{"name": "halludetect", "uncertainty": {"model": {"path": str(tmp_path)}}}])[0]
    assert sig.features == list(STAT_FEATURES) and sig.options()["artifact"] == "builtin:halludetect-v1.json"


class _OneTokenLM:
    """Stand-in proxy LM: every request gets one token of log-prob -1 (what the HF backend returns for an empty
    response too: the chat template's trailing newline, lm-eval's tokenisation)."""

    class fingerprint:
        @staticmethod
        def cache_key() -> str:
            return "one-token"

    def token_logprobs(self, reqs: list) -> list:
        from evalmon.core.lm import TokenLogprobs

        return [TokenLogprobs((-1.0,), (7,)) for _ in reqs]


def test_training_leaves_empty_responses_unscored(tmp_path: Path) -> None:
    """benchmarks/train_hallucination.py scores rows as the signal does: an empty response gets no log-probs
    (NaN statistics, imputed) — v1 was trained so; v2's first artifact got one near-zero "token" for the 6
    empty training answers (a cache filled outside proxy_logprobs), which moved its HaluEval QA PR-AUC."""
    import importlib.util

    from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "train_hallucination.py"
    spec = importlib.util.spec_from_file_location("train_hallucination", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = [{"prompt": "q1", "response": ""}, {"prompt": "q2", "response": "Paris."}, {"prompt": "q3", "response": " "}]
    cache = tmp_path / "c.pkl"
    cache.write_bytes(__import__("pickle").dumps({}))
    lps, _ = mod.proxy_logprobs(rows, ProxyUncertaintySignal(lm=_OneTokenLM()), cache, "t")
    assert [len(c) for c, _ in lps] == [0, 1, 0] and [len(u) for _, u in lps] == [0, 1, 0]
    x = mod.featurise(rows, lps, lambda texts: np.ones((len(texts), 3)), list(STAT_FEATURES))
    assert np.isnan(x[[0, 2], :5]).all() and np.isfinite(x[1]).all()


def test_pmi_features_compare_the_answer_with_and_without_its_question() -> None:
    f = pmi_features([-1.0, -2.0, -4.0], [-3.0, -2.0, -1.0])
    assert f["pmi_mean"] == pytest.approx(-7 / 3 + 2)  # mean with (−7/3) minus mean without (−2)
    assert f["pmi_min"] == -3.0 and f["pmi_positive_share"] == pytest.approx(1 / 3)
    assert f["pmi_first"] == pytest.approx(f["pmi_mean"]) and f["uncond_mean_logprob"] == -2.0
    g = pmi_features([-1.0, -1.0], [-2.0, -2.0, -2.0])  # tokenised differently: the means only
    assert g["pmi_mean"] == g["pmi_min"] == g["pmi_first"] == pytest.approx(1.0)
    assert all(np.isnan(v) for v in pmi_features([], [-1.0]).values())


def test_text_features_and_feature_matrix_order() -> None:
    assert text_features("Paris has 2 million people") == {"digit_words": 0.2, "capital_words": 0.0}
    assert text_features("") == {"digit_words": 0.0, "capital_words": 0.0}
    names = ["pmi_mean", "digit_words", "log_words", "mean_logprob"]
    stats = pd.DataFrame({f"uncertainty.{k}": [-1.5, -0.5] for k in
                          ("mean_logprob", "min_logprob", "p10_logprob", "tail_share", "surprisal_per_char",
                           "n_tokens")}).assign(**{"uncertainty.n_tokens": [2.0, 3.0]})
    x = feature_matrix(names, ["q1", "q2"], ["a 1", "b c d"], stats, [[-2.0], [-1.0]], [[-1.0], [-1.0]],
                       encode=lambda texts: np.ones((len(texts), 4)) / 2)
    assert x.shape == (2, 4)
    np.testing.assert_allclose(x[:, 0], [1.0, 0.0])  # pmi_mean
    np.testing.assert_allclose(x[:, 1], [0.5, 0.0])  # digit_words
    np.testing.assert_allclose(x[:, 2], np.log1p([2, 3]))  # log_words
    with pytest.raises(ValueError, match="PMI"):
        feature_matrix(names, ["q"], ["a"], stats.iloc[:1], None, None, encode=lambda t: np.ones((len(t), 4)))


def test_predict_imputes_missing_statistics() -> None:
    art = load_artifact()
    x = np.asarray([art["mean"], art["impute"]], dtype=float)
    x_nan = x.copy()
    x_nan[:, :] = np.nan  # the proxy model did not score them
    p, p_nan = predict(art, x), predict(art, x_nan)
    assert np.all((p > 0) & (p < 1)) and np.isfinite(p_nan).all()
    assert p_nan[1] == pytest.approx(p[1])  # NaN → the training means, i.e. the impute row itself


def test_bad_artifact_is_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_artifact(str(tmp_path / "missing.json"))
    assert "missing.json" in str(exc.value) and "\n" not in str(exc.value)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mean": [], "coef": []}))
    with pytest.raises(ConfigError, match="lacks"):
        load_artifact(str(bad))


@pytest.mark.e2e
def test_detector_scores_sampled_records_and_leaves_others_nan(tiny_checkpoint: Path) -> None:
    sig = build_signals([{"name": "halludetect", "uncertainty": {"model": {"path": str(tiny_checkpoint)},
                                                                  "chat": False, "sample_rate": 0.5}}])[0]
    n = 30
    df = pd.DataFrame({"prompt": [f"What is {i} plus {i}?" for i in range(n)],
                       "response": [f"It is {2 * i}." for i in range(n)]})
    out = sig.compute(df)
    score, flag = out["halludetect.score"].to_numpy(), out["halludetect.flag"].to_numpy()
    scored = ~np.isnan(score)
    assert 0.2 < scored.mean() < 0.8 and np.isnan(flag[~scored]).all()
    assert ((score[scored] > 0) & (score[scored] < 1)).all()
    assert (flag[scored] == (score[scored] >= sig.threshold)).all()


@pytest.mark.accuracy
def test_detector_beats_base_rate_on_held_out_halueval_qa(smollm2_checkpoint: Path, benchmarks_dir: Path) -> None:
    """HaluEval QA (MIT) without its knowledge passages — a data set the detector never saw (it is trained on
    TruthfulQA + FacTool): the right answers of 60 questions and the hallucinated answers of 15 of them (a 20%
    hallucination share)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    lines = (benchmarks_dir / "halueval" / "generation" / "qa" / "qa_one-turn_data.json").read_text().splitlines()
    rows = [json.loads(x) for x in lines[-60:]]
    pairs = [(r["question"], r["right_answer"], 0) for r in rows] + \
        [(r["question"], r["hallucinated_answer"], 1) for r in rows[::4]]
    df = pd.DataFrame({"prompt": [p[0] for p in pairs], "response": [p[1] for p in pairs]})
    y = np.array([p[2] for p in pairs])
    sig = build_signals([{"name": "halludetect", "uncertainty": {"model": {"path": str(smollm2_checkpoint)}}}])[0]
    score = sig.compute(df)["halludetect.score"].to_numpy()
    assert np.isfinite(score).all()
    pr_auc, roc = average_precision_score(y, score), roc_auc_score(y, score)
    # the target (2× base rate) is not met (model card: the default v1 reaches PR-AUC 0.345 at a 20%
    # share on the validation rows); this guards what it does reach — clearly better than chance (a random score:
    # 1.0× base rate, ROC 0.5; a detector scoring every record alike: ROC 0.5)
    assert pr_auc >= 1.25 * y.mean() and roc >= 0.6, (pr_auc, roc)


@pytest.mark.e2e
def test_probe_hidden_states_are_the_response_positions_of_an_unpadded_forward(tiny_checkpoint: Path,
                                                                                tmp_path: Path) -> None:
    """``hallucination_probe.hidden_states`` (train_hallucination.py's probe screen, model card "Hidden-state
    probes"): right-padded batches give each row the hidden states of its own unpadded forward, averaged over the
    positions that predict its response tokens (last context token … second-to-last response token) and the last
    of them; the cache answers a rerun without the model; empty responses are skipped."""
    import pickle
    import sys

    import torch

    from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import hallucination_probe as mod

    rows = [{"prompt": "What is two plus two?", "response": "It is four, as every child knows."},
            {"prompt": "Name a colour.", "response": "Blue."}, {"prompt": "q", "response": ""},
            {"prompt": "Where is Paris?", "response": "In France, on the Seine river, north of Lyon."}]
    proxy = ProxyUncertaintySignal(model={"path": str(tiny_checkpoint)}, chat=False)
    cache = tmp_path / "hidden.pkl"
    got = mod.hidden_states(rows, proxy, cache, batch=2, layers=(1, 2))
    assert set(got) == {mod.row_key(r) for r in rows if r["response"]}
    lm = proxy.lm
    for r in (rows[0], rows[1], rows[3]):
        t = lm.tokenize_requests(proxy.requests([r["prompt"]], [r["response"]]))[0]
        c, n = len(t.context), len(t.continuation)
        with torch.no_grad():
            hs = lm.model(torch.tensor([[*t.context, *t.continuation[:-1]]]), output_hidden_states=True).hidden_states
        for layer in (1, 2):
            mean, last = got[mod.row_key(r)][layer]
            np.testing.assert_allclose(mean, hs[layer][0, c - 1:c - 1 + n].mean(0).numpy(), atol=1e-4)
            np.testing.assert_allclose(last, hs[layer][0, c + n - 2].numpy(), atol=1e-4)
    assert pickle.loads(cache.read_bytes()).keys() == got.keys()
    again = mod.hidden_states(rows, ProxyUncertaintySignal(lm=_OneTokenLM()), cache, layers=(1, 2))  # no model call
    assert again.keys() == got.keys()


def test_probe_paired_bootstrap_skips_a_set_it_is_not_defined_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/hallucination_probe.py: a set with one class, no rows or no scores (tiny fake PHD/FELM samples)
    raised a TypeError (None − float); now no figure (None) and the reason (printed and in the result as
    ``paired_bootstrap_skipped``), the other sets still bootstrapped."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import hallucination_probe as mod

    rng = np.random.default_rng(0)
    y = np.array([0] * 16 + [1] * 8)
    a, b = rng.random(24), rng.random(24)
    cases = {"one class": (np.zeros(6, int), a[:6], b[:6]), "no rows": (np.zeros(0, int), a[:0], b[:0]),
             "no scores": (y, None, b)}
    for why, (yy, aa, bb) in cases.items():  # (a defined set's figures: the e2e probe run; sklearn is slow to import)
        assert mod.paired_bootstrap(yy, aa, bb, seed=0, reps=5) is None
        assert mod.bootstrap_undefined(yy, aa, bb).startswith(why)
