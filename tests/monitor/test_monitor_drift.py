"""Drift through evidently 0.7.23: default test per column type and size, recorded per column."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import DriftColumns, DriftConfig
from evalmon.monitor.drift import DriftPlan, compute_drift, plan_columns

WORDS = [f"w{i}" for i in range(400)]
TOPIC = [f"topic{i}" for i in range(40)]


def records(n: int, seed: int, *, shift: float = 0.0, topic: bool = False, emb_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vocab = TOPIC if topic else WORDS
    return pd.DataFrame({
        "request_id": [f"r{seed}-{i}" for i in range(n)],
        "timestamp": pd.Timestamp("2024-03-01", tz="UTC"),
        "arrival": np.arange(n),
        "model": rng.choice(["m-a", "m-b", "m-c"], n, p=[0.5, 0.3, 0.2]),
        "latency_ms": rng.normal(200 + shift, 20, n),
        "output_tokens": rng.integers(10, 400, n),
        "pii.any": (rng.random(n) < 0.05).astype(float),
        "prompt": [" ".join(rng.choice(vocab, 10)) for _ in range(n)],
        "response": [" ".join(rng.choice(WORDS, 8)) for _ in range(n)],
        "contexts": [[] for _ in range(n)],
        "embedding.prompt": [rng.normal(emb_shift, 1, 8).astype(np.float32) for _ in range(n)],
    })


@pytest.fixture(scope="module")
def big_ref() -> pd.DataFrame:
    return records(1500, 1)


def by_col(result) -> dict:  # type: ignore[no-untyped-def]
    return {c.column: c for c in result.columns}


def test_auto_plan_skips_ids_times_lists(big_ref: pd.DataFrame) -> None:
    plan = plan_columns(big_ref, DriftConfig())
    assert plan.numerical == ("latency_ms", "output_tokens", "pii.any")
    assert plan.categorical == ("model",) and plan.text == ("prompt", "response")
    assert plan.embeddings == ("embedding.prompt",)
    off = plan_columns(big_ref, DriftConfig(text_drift=False, embedding_drift=False))
    assert off.text == () and off.embeddings == ()


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_large_reference_defaults_detect_and_match_data_drift_preset(big_ref: pd.DataFrame, tmp_path: Path) -> None:
    cfg = DriftConfig()
    plan = plan_columns(big_ref, cfg)
    clean_window = big_ref.sample(400, random_state=0)  # same distribution for sure (no sampling luck)
    clean = compute_drift(clean_window, big_ref, plan, cfg, html_path=tmp_path / "clean.html")
    cols = by_col(clean)
    # evidently's defaults for a reference of > 1000 rows, read back from the snapshot
    assert cols["latency_ms"].method == "Wasserstein distance (normed)" and cols["latency_ms"].threshold == 0.1
    assert cols["pii.any"].method == "Jensen-Shannon distance"  # ≤ 5 distinct values
    assert cols["model"].method == "Jensen-Shannon distance"
    assert cols["prompt"].method == "Absolute text content drift"  # the domain classifier
    assert cols["embedding.prompt"].method == "embeddings: model"
    assert clean.n_drifted == 0 and not clean.dataset_drift and clean.share == 0.0
    assert not cols["embedding.prompt"].detected
    assert (tmp_path / "clean.html").stat().st_size > 10_000 and clean.html_path
    shifted = compute_drift(records(400, 3, shift=60, topic=True, emb_shift=0.8), big_ref, plan, cfg)
    cols = by_col(shifted)
    assert cols["latency_ms"].detected and cols["prompt"].detected and cols["embedding.prompt"].detected
    assert not cols["response"].detected and not cols["model"].detected
    m = shifted.metrics()
    assert m["drift/share"] == pytest.approx(2 / 6) and m["drift_detected/latency_ms"] == 1.0
    # the same numbers as a plain evidently DataDriftPreset on the same frames
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    tab = list(plan.numerical + plan.categorical)
    dd = DataDefinition(numerical_columns=list(plan.numerical), categorical_columns=list(plan.categorical))
    cur = records(400, 3, shift=60, topic=True, emb_shift=0.8)
    snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur[tab], data_definition=dd),
                                           Dataset.from_pandas(big_ref[tab], data_definition=dd))
    preset = {m["config"]["column"]: m["value"] for m in snap.dict()["metrics"] if "column" in m["config"]}
    for c in tab:
        assert cols[c].score == pytest.approx(preset[c]), c


def test_small_reference_uses_p_value_tests_and_overrides(big_ref: pd.DataFrame) -> None:
    ref = big_ref.iloc[:600]
    cfg = DriftConfig(columns=DriftColumns(numerical=["latency_ms", "pii.any"], categorical=["model"]),
                      methods={"model": "psi"}, thresholds={"latency_ms": 0.01})
    plan = plan_columns(ref, cfg)
    res = compute_drift(records(300, 4, shift=15), ref, plan, cfg)
    cols = by_col(res)
    assert cols["latency_ms"].method == "K-S p_value" and cols["latency_ms"].threshold == 0.01
    assert cols["latency_ms"].detected and cols["latency_ms"].score < 0.01
    assert cols["pii.any"].method == "Z-test p_value"  # two values, small reference
    assert cols["model"].method == "PSI" and cols["model"].detected is False
    assert res.methods() == {"latency_ms": "K-S p_value", "pii.any": "Z-test p_value", "model": "PSI"}


def test_bad_windows_never_crash(big_ref: pd.DataFrame) -> None:
    cfg = DriftConfig(text_drift=False)
    plan = plan_columns(big_ref, cfg)
    tiny = compute_drift(records(5, 5), big_ref, plan, cfg)
    assert tiny.skipped and "min_rows" in tiny.skipped and tiny.metrics() == {}
    assert compute_drift(records(0, 5), big_ref, plan, cfg).skipped
    one = records(200, 6).assign(model="m-b", **{"pii.any": 1.0})
    cols = by_col(compute_drift(one, big_ref, plan, cfg))
    assert cols["model"].detected and cols["pii.any"].detected  # one class: drift, not an error
    nan = records(200, 7).assign(latency_ms=np.nan)
    res = compute_drift(nan, big_ref, plan, cfg)
    assert by_col(res)["latency_ms"].skipped == "no values in this window"
    assert "drift/latency_ms" not in res.metrics() and by_col(res)["model"].detected is False


def test_one_failing_column_is_isolated(big_ref: pd.DataFrame) -> None:
    # identical prompts everywhere: evidently's text classifier finds no terms and raises
    same = big_ref.assign(prompt="same")
    cfg = DriftConfig(embedding_drift=False)
    plan = DriftPlan(numerical=("latency_ms",), text=("prompt",))
    res = compute_drift(records(300, 8, shift=60).assign(prompt="same"), same, plan, cfg)
    cols = by_col(res)
    assert cols["prompt"].skipped and "evidently failed" in cols["prompt"].skipped
    assert cols["latency_ms"].detected and res.errors and not math.isnan(res.share)


@pytest.mark.accuracy  # two evidently reports: seconds
def test_no_html_skips_evidentlys_widgets_with_the_same_results(big_ref: pd.DataFrame, tmp_path: Path) -> None:
    """Without an HTML report evidently's per-column plotly widgets are not rendered (most of a report's
    time); every score, method, threshold and decision equals the rendering run's, and the patch is undone."""
    from evidently.metrics.column_statistics import ValueDriftCalculation

    render = ValueDriftCalculation.__dict__["_render"]
    cfg = DriftConfig(embedding_drift=False)
    plan = plan_columns(big_ref, cfg)
    window = records(400, 9, shift=25, topic=True)
    rendered = compute_drift(window, big_ref, plan, cfg, html_path=tmp_path / "d.html", report="full")
    bare = compute_drift(window, big_ref, plan, cfg)
    assert rendered.html_path and bare.html_path is None
    assert [vars(c) for c in bare.columns] == [vars(c) for c in rendered.columns]
    assert any(c.detected for c in bare.columns) and bare.metrics() == rendered.metrics()
    assert ValueDriftCalculation.__dict__["_render"] is render
