"""classification task type: label probabilities → sklearn metrics, undefined cases, label-set checks,
and the suite path (results.json, report curves, MLflow) on the tiny checkpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evalmon.core.errors import DataError
from evalmon.core.lm import EngineStats, LLRequest, LLResult, ModelFingerprint
from evalmon.core.results import RunResult
from evalmon.harness.evaluate import evaluate_task
from evalmon.tasks.base import TaskOptions, build_task

TEXTS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
LABELS = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0]


class _Scripted:
    """Loglikelihood of each label continuation from a dict keyed by (context, continuation)."""

    fingerprint = ModelFingerprint(backend="scripted", model="scripted")
    capabilities = frozenset({"loglikelihood"})

    def __init__(self, lls: dict[tuple[str, str], float]) -> None:
        self.lls = lls

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: object = None) -> list[LLResult]:
        out = [LLResult(self.lls[(r.context, r.continuation)], False, 1) for r in reqs]
        if callable(progress):
            progress(list(enumerate(out)))
        return out

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return 1


def _jsonl(path: Path, labels: Sequence[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(TEXTS, labels, strict=True)))
    return path


def _lls(labels: Sequence[str], seed: int = 0) -> dict[tuple[str, str], float]:
    rng = np.random.default_rng(seed)
    return {(f"{t}\nAnswer:", " " + lab): float(rng.normal(-2, 1.5)) for t in TEXTS for lab in labels}


def test_binary_metrics_equal_sklearn(tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

    path = _jsonl(tmp_path / "d.jsonl", ["pos" if y else "neg" for y in LABELS])
    task = build_task("classification", TaskOptions(extra={"path": str(path), "labels": ["neg", "pos"],
                                                           "threshold": 0.4, "bootstrap_iters": 200}))
    lls = _lls(["neg", "pos"])
    result, samples = evaluate_task(task, _Scripted(lls), None, lambda n: None, seed=9)
    p = np.array([math.exp(lls[(f"{t}\nAnswer:", " pos")]) /
                  (math.exp(lls[(f"{t}\nAnswer:", " pos")]) + math.exp(lls[(f"{t}\nAnswer:", " neg")])) for t in TEXTS])
    y = np.array(LABELS)
    m = {k: v.value for k, v in result.metrics.items()}
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, (p >= 0.4).astype(int)))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    bins = np.clip(np.digitize(p, np.linspace(0, 1, 11)[1:-1], right=True), 0, 9)
    ece = sum(abs(y[bins == b].mean() - p[bins == b].mean()) * (bins == b).mean() for b in set(bins.tolist()))
    assert m["ece"] == pytest.approx(ece)
    assert all(result.metrics[k].stderr is not None for k in m)
    assert all(n.startswith("stderr from ") for n in result.notes.values())  # n=10: a few one-class replicates
    assert result.metrics["brier"].higher_is_better is False
    assert result.curves["pr"][0]["label"] == "pos" and result.curves["reliability"]
    assert samples[0].items["pr_auc"][0] == 1 and len(samples[0].items["pr_auc"][1]) == 2
    assert result.config["bootstrap"]["seed"] == 9


def test_all_one_class_is_reported_not_raised(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", ["pos"] * len(TEXTS))
    task = build_task("classification", TaskOptions(extra={"path": str(path), "labels": ["neg", "pos"],
                                                           "bootstrap_iters": 50}))
    result, _ = evaluate_task(task, _Scripted(_lls(["neg", "pos"])), None, lambda n: None)
    assert math.isnan(result.metrics["pr_auc"].value) and math.isnan(result.metrics["roc_auc"].value)
    assert result.metrics["pr_auc"].stderr is None
    assert result.notes["pr_auc"] == "undefined: labels contain one class only"
    assert math.isfinite(result.metrics["brier"].value) and math.isfinite(result.metrics["f1"].value)
    again = type(result).model_validate_json(result.model_dump_json())  # NaN → null → NaN
    assert math.isnan(again.metrics["pr_auc"].value) and again.notes == result.notes


def test_label_set_mismatch(tmp_path: Path, benchmarks_dir: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", ["pos", "neg", "maybe"] + ["pos"] * 7)
    with pytest.raises(DataError, match=r"line 3 has label 'maybe', not one of the task's labels \['neg', 'pos'\]"):
        build_task("classification", TaskOptions(extra={"path": str(path), "labels": ["neg", "pos"]}))
    (tmp_path / "enterprise_pii").mkdir()
    (tmp_path / "enterprise_pii/enterprise_pii_classification.jsonl").write_text(
        json.dumps({"query": "q", "choices": ["no", "yes"], "gold": 1}) + "\n"
        + json.dumps({"query": "q", "choices": ["safe", "unsafe"], "gold": 0}) + "\n")
    with pytest.raises(DataError, match=r"line 2 has choices \['safe', 'unsafe'\], not \['no', 'yes'\]"):
        build_task("enterprise_pii", TaskOptions(data_dir=tmp_path))
    halu = build_task("halueval_qa", TaskOptions(data_dir=benchmarks_dir, limit=4))
    assert [d.label for d in halu.docs()] == [0, 1, 0, 1]  # right (No) and hallucinated (Yes) per question
    assert halu.docs()[1].context.endswith("#Answer#: First for Women was started first.\n#Your Judgement#:")


@pytest.mark.e2e  # the whole suite path: run_suite → results, reports, an MLflow store
def test_suite_path_on_tiny_checkpoint(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    """suites/medical.yaml's new components (pubmedqa_cls: OvR multi-class; medical_perplexity) plus
    halueval_qa through run_suite: results.json, samples, report curves and MLflow metrics."""
    from evalmon.config.suite import apply_overrides, load_suite
    from evalmon.harness.run import run_suite

    suite = Path(__file__).resolve().parents[2] / "suites" / "medical.yaml"
    cfg = load_suite(suite)
    assert {"medical_perplexity", "pubmedqa_cls"} <= {t.name for t in cfg.tasks}
    cfg = apply_overrides(cfg, model=f"hf:{tiny_checkpoint},device=cpu", limit=12, output=tmp_path / "reports",
                          tasks=["pubmedqa_cls", "medical_perplexity", "halueval_qa"],
                          tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = cfg.model_dump()
    data["data"]["data_dir"] = benchmarks_dir
    for t in data["tasks"]:
        t["options"] = {**t["options"], "bootstrap_iters": 50}
        t["limit"] = 3 if t["name"] == "medical_perplexity" else 12
    cfg = type(cfg).model_validate(data)
    result = run_suite(cfg)
    run_dir = tmp_path / "reports" / result.run_id
    saved = RunResult.load(run_dir)
    cls = saved.tasks["pubmedqa_cls"]
    assert set(cls.metrics) == {"pr_auc", "roc_auc", "f1_macro", "accuracy", "ece", "brier"}
    assert [c["label"] for c in cls.curves["pr"]] == [lab for lab in ("yes", "no", "maybe")
                                                      if any(c["label"] == lab for c in cls.curves["pr"])]
    assert saved.tasks["halueval_qa"].curves["reliability_of"] == "P(Yes)"
    assert saved.tasks["medical_perplexity"].metrics["bits_per_byte"].value > 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('class="curve-plot curve-pr"') == 2 and html.count('class="curve-plot curve-reliability"') == 2
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(saved.mlflow["run_id"])
    assert run.data.metrics["pubmedqa_cls/roc_auc"] == pytest.approx(cls.metrics["roc_auc"].value)
    assert run.data.metrics["medical_perplexity/word_perplexity"] > 1


def test_curve_geometry() -> None:
    from evalmon.sinks.report_curves import PH, PW, X0, Y0, pr_plot, reliability_plot

    pr = pr_plot("t", [{"label": "pos", "precision": [0.5, 1.0, 1.0], "recall": [1.0, 0.5, 0.0], "ap": 0.75,
                        "prevalence": 0.5}])
    assert pr is not None and pr.series[0].legend == "pos (AP 0.750)"
    pts = [tuple(map(float, p.split(","))) for p in pr.series[0].points.split()]
    assert pts[0] == (X0 + PW, Y0 + PH / 2) and pts[-1] == (X0, Y0)  # (recall 1, precision .5) … (0, 1)
    assert pr.guides[0]["y1"] == Y0 + PH / 2  # the no-skill line at the prevalence
    rel = reliability_plot("t", [{"confidence": 0.2, "accuracy": 0.1, "weight": 0.25},
                                 {"confidence": 0.9, "accuracy": 1.0, "weight": 0.75}], "P(pos)")
    assert rel is not None and [(m["cx"], m["cy"]) for m in rel.markers] == [
        (X0 + 0.2 * PW, Y0 + 0.9 * PH), (X0 + 0.9 * PW, Y0)]
    assert rel.markers[1]["r"] > rel.markers[0]["r"]  # area grows with the share of documents
