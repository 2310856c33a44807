"""The dashboard payload without a server (unit lane): run names, scale groups, saved views, URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from evalmon.core.timewindows import window_of
from evalmon.sinks.mlflow import dashboard
from evalmon.sinks.mlflow.windows import chart_url, window_step


def test_run_name_names_suite_model_adapter_and_date() -> None:
    model = {"backend": "hf", "model": "/ckpt/smollm2-135m-instruct/", "adapter": None}
    assert dashboard.run_name("medical", model, "2026-12-06T09:05:59+00:00") == \
        "medical·smollm2-135m-instruct·2026-12-06 09:05"
    gguf = {"model": "/m/gemma-3-270m-q4_k_m.gguf", "adapter": "/adapters/lora-med"}
    assert dashboard.run_name("general", gguf, "2026-01-02T03:04:00") == \
        "general·gemma-3-270m-q4_k_m·lora-med·2026-01-02 03:04"
    assert dashboard.run_name("s", {"model": "org/name"}, None) == "s·name"  # no date recorded: left out


def test_scale_groups_keep_milliseconds_apart_from_rates() -> None:
    g = dashboard.scale_group
    assert g("rate/safety.unsafe") == g("drift/share") == g("drift_detected/latency_ms") == g("coverage/pii") == "rate"
    assert g("p90/latency_ms") == g("mean/latency_ms") == "ms"
    assert g("records") == "count" and g("quality/quarantined") == "quality"


def test_runs_view_puts_new_headline_first_and_keeps_earlier_ones() -> None:
    first = dashboard.runs_view(["a/acc", "b/f1"])
    assert first["selectedColumns"] == ["metrics.`a/acc`", "metrics.`b/f1`"]
    assert [c["type"] for c in first["compareRunCharts"]] == ["BAR", "BAR"]
    assert {c["metricSectionId"] for c in first["compareRunCharts"]} == {s["uuid"] for s in first["compareRunSections"]}
    second = dashboard.runs_view(["c/acc", "a/acc"], first)
    assert [c["metricKey"] for c in second["compareRunCharts"]] == ["c/acc", "a/acc", "b/f1"]
    many = dashboard.runs_view([f"t{i}/acc" for i in range(40)])
    assert len(many["compareRunCharts"]) == dashboard.MAX_HEADLINE


def test_timeline_view_plots_time_and_sections_by_scale() -> None:
    view = dashboard.timeline_view(["p90/latency_ms", "rate/x", "records"], dashboard.timeline_view(["drift/share"]))
    assert view["globalLineChartConfig"]["xAxisKey"] == "time"
    assert [c["metricKey"] for c in view["compareRunCharts"]] == ["drift/share", "rate/x", "records", "p90/latency_ms"]
    assert {c["xAxisKey"] for c in view["compareRunCharts"]} == {"time"}
    assert [s["name"] for s in view["compareRunSections"]] == ["rates (0–1)", "counts", "milliseconds"]
    assert "monitor_timeline" in view["searchFilter"]


def test_saved_view_fits_mlflows_tag_limit() -> None:
    text = dashboard._fit(dashboard.timeline_view([f"rate/signal_{i:03d}.{'x' * 60}" for i in range(200)]))
    state = json.loads(text)
    assert len(text) <= dashboard.MAX_VIEW_CHARS and 10 < len(state["compareRunCharts"]) < 200


def test_urls_open_model_training_mode_on_the_saved_view() -> None:
    url = dashboard.view_url("http://h:5000/", "7", dashboard.TIMELINE_VIEW, charts=True)
    assert url == ("http://h:5000/#/experiments/7/runs?workflowType=machine_learning"
                   "&viewStateShareKey=evalmon-timeline&compareRunsMode=CHART")
    chart = chart_url("http://h:5000", "7", "r1", ["drift/share", "p90/latency_ms", "rate/x"])
    assert "x_axis=wall" in chart and "latency" not in chart and "rate%2Fx" in chart


def test_window_step_is_epoch_seconds_of_the_window_end() -> None:
    w = window_of(datetime(2026, 11, 1, 4, 30, tzinfo=UTC), timedelta(hours=1))
    assert window_step(w) == int(datetime(2026, 11, 1, 5, tzinfo=UTC).timestamp())
