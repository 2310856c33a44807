"""MLflow as the dashboard, in the real UI: a real ``mlflow server`` (fixture) and headless Chromium.

Two suite runs (one with a LoRA adapter) and six hourly monitor windows are logged through evalmon's sinks;
then the pages a user opens are rendered (the SPA's DOM after a virtual-time budget) and screenshotted:

* the experiment page on evalmon's saved view opens on the runs table — model-training mode, not the empty
  GenAI overview — with run names ``<suite>·<model>[·adapter]·<date>`` and the headline numbers as columns;
* an eval run's page lists the headline metrics with their values, and no ``_stderr`` metric;
* the monitor experiment's saved view shows the timeline run only, its charts in sections by scale.

PNGs go to the test's tmp dir, with copies in ``reports/screenshots/`` (for the docs; not committed).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import chromium
import pytest

from evalmon.core.results import GroupResult, MetricValue, Provenance, RunResult, TaskResult, TaskTiming
from evalmon.core.timewindows import window_of
from evalmon.sinks.mlflow import dashboard, log_run
from evalmon.sinks.mlflow.windows import WindowRecord, log_window, timeline_url, write_window

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
WIDE = (1920, 1000)
CHARTS_MS = 40_000  # virtual time for the lazily drawn charts (15 s catches their spinners)


def _result(run_id: str, acc: float, adapter: str | None, started: str) -> RunResult:
    def task(name: str, value: float, n: int) -> TaskResult:
        metrics = {"acc": MetricValue.with_ci(value, 0.031),
                   "acc_norm": MetricValue.with_ci(round(value + 0.0441, 4), 0.03)}
        return TaskResult(name=name, n=n, num_fewshot=0, source="local", config_hash=f"h-{name}", metrics=metrics,
                          timing=TaskTiming(seconds=12.5, requests=400, computed=400, tokens=9000,
                                            requests_per_s=32.0, tokens_per_s=720.0))

    return RunResult(
        run_id=run_id, suite_name="medical", suite_hash="s" * 12, suite_path="suites/medical.yaml",
        suite_config={"name": "medical", "tasks": [{"name": "hellaswag"}, {"name": "mmlu_anatomy"}]},
        started_at=started, finished_at=started, status="finished",
        provenance=Provenance(evalmon_version="0.1.0", python_version="3.11", platform="linux", hostname="ci",
                              git_commit="abc", git_dirty=False, command="evalmon run suites/medical.yaml"),
        model={"backend": "hf", "model": "/ckpt/smollm2-135m-instruct", "adapter": adapter, "dtype": "float32"},
        tasks={"hellaswag": task("hellaswag", acc, 100),
               "mmlu_anatomy": task("mmlu_anatomy", round(acc - 0.1234, 4), 20)},
        groups={"medical": GroupResult(name="medical", n=120, members=["hellaswag", "mmlu_anatomy"],
                                       metrics={"acc": MetricValue.with_ci(round(acc - 0.0111, 4), 0.02)})},
    )


@pytest.fixture(scope="module")
def board(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        chromium.find_chromium()
    except chromium.ChromiumMissing as exc:
        pytest.fail(str(exc))
    root = tmp_path_factory.mktemp("dashboard")
    uid = uuid.uuid4().hex[:6]
    exp, mexp, monitor = f"dash-{uid}", f"dash-monitor-{uid}", f"traffic-{uid}"
    runs = []
    for i, (acc, adapter) in enumerate(((0.4573, None), (0.5186, "/adapters/lora-med"))):
        result = _result(f"r{i}-{uid}", acc, adapter, f"2026-12-0{i + 1}T09:3{i}:00+00:00")
        run_dir = root / result.run_id
        result.save(run_dir)
        out = log_run(result, run_dir, mlflow_server, exp)
        assert out["status"] == "logged", out
        runs.append(out)
    for i in range(6):
        w = window_of(T0 + timedelta(hours=i), timedelta(hours=1))
        incident = i == 4
        metrics = {"records": 150.0 + i, "rate/safety.unsafe": 0.3125 if incident else 0.02,
                   "drift/share": 0.5 if incident else 0.0, "p90/latency_ms": 31_250.0 if incident else 900.0 + i}
        d = root / "windows" / w.key
        write_window(d, WindowRecord(monitor, w, metrics))
        logged = log_window(d, mlflow_server, mexp)
        assert logged["status"] == "logged", logged
    return {"uri": mlflow_server, "runs": runs, "eid": runs[0]["experiment_id"], "monitor": monitor,
            "meid": logged["experiment_id"], "timeline": logged["timeline_run_id"], "root": root}


def _shot(url: str, name: str, root: Path, good: Callable[[Path], bool], size: tuple[int, int]) -> Path:
    """A screenshot (up to three tries: the SPA paints asynchronously), copied to reports/screenshots/."""
    for _attempt in range(3):
        png = chromium.screenshot(url, root / name, window_size=size, timeout=120, budget_ms=CHARTS_MS)
        if good(png):
            break
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, SHOTS / name)
    return png


def test_experiment_page_opens_on_headline_table(board: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    tags = MlflowClient(board["uri"]).get_experiment(board["eid"]).tags
    assert tags[dashboard.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert tags[dashboard.NOTE_TAG] == dashboard.RUNS_NOTE
    view = json.loads(tags[dashboard.VIEW_TAG_PREFIX + dashboard.RUNS_VIEW])
    headline = ["hellaswag/acc", "hellaswag/acc_norm", "mmlu_anatomy/acc", "mmlu_anatomy/acc_norm", "medical/acc"]
    assert sorted(c["metricKey"] for c in view["compareRunCharts"]) == sorted(headline)

    url = dashboard.view_url(board["uri"], board["eid"], dashboard.RUNS_VIEW)
    text = chromium.page_text(chromium.dump_dom(url, timeout=120, window_size=WIDE))  # grid renders what fits
    assert "Tool calls" not in text and "Token Usage" not in text, text[:1500]  # not the GenAI overview
    assert "medical·smollm2-135m-instruct·2026-12-01 09:30" in text, text[:2000]
    assert "medical·smollm2-135m-instruct·lora-med·2026-12-02 09:31" in text
    for key in headline:  # headline columns, with both runs' numbers, on first paint
        assert key in text, (key, text[:2000])
    for value in ("0.4573", "0.5186", "0.5014", "0.5627", "0.3339", "0.3952", "0.378", "0.4393", "0.4462", "0.5075"):
        assert re.search(rf"\b{value}\b", text), (value, text[:2500])
    assert "_stderr" not in text
    charts = dashboard.view_url(board["uri"], board["eid"], dashboard.RUNS_VIEW, charts=True)
    png = _shot(charts, "experiment-charts.png", board["root"], lambda p: chromium.png_stats(p)["colors"] > 60, WIDE)
    assert chromium.png_stats(png)["nonwhite"] > 0.05


def test_eval_run_page_lists_headline_metrics(board: dict[str, Any]) -> None:
    out = board["runs"][1]
    text = chromium.page_text(chromium.dump_dom(out["ui_url"], timeout=120))
    assert "medical·smollm2-135m-instruct·lora-med·2026-12-02 09:31" in text, text[:2000]
    for key, value in (("hellaswag/acc", "0.5186"), ("medical/acc", "0.5075"), ("mmlu_anatomy/acc_norm", "0.4393")):
        assert re.search(rf"{re.escape(key)} {value}\b", text), (key, text[:3000])
    assert "_stderr" not in text and "timing/hellaswag/requests_per_s 32" in text
    _shot(out["ui_url"], "eval-run.png", board["root"], lambda p: chromium.png_stats(p)["colors"] > 40, (1920, 1200))


def test_monitor_timeline_view_groups_charts_by_scale(board: dict[str, Any]) -> None:
    url = timeline_url(board["uri"], board["meid"])
    text = chromium.page_text(chromium.dump_dom(url, timeout=120, window_size=(1600, 1000), budget_ms=CHARTS_MS))
    assert f"{board['monitor']} (timeline)" in text and "1 matching run" in text, text[:2000]  # windows filtered out
    sections = re.findall(r"(rates \(0–1\)|milliseconds|counts) \((\d+)\)", text)
    assert sorted(sections) == [("counts", "1"), ("milliseconds", "1"), ("rates (0–1)", "2")], text[:2000]
    # the first chart on first paint: a 0–1 rate over time (window ends), never on the 31,250 ms scale
    drift = re.search(r"drift/share (\d\d:00 [A-Z][a-z]{2} \d{1,2}, 2026 .*?) Time ", text)
    assert drift and re.search(r"\b0 0\.2 0\.4$", drift.group(1)), text[:3000]
    png = _shot(url, "monitor-timeline.png", board["root"], lambda p: chromium.png_stats(p)["colors"] > 60,
                (1600, 1000))
    assert chromium.png_stats(png)["nonwhite"] > 0.05
