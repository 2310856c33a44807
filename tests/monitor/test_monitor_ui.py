"""The dashboard users look at: the monitor's experiment in the real MLflow UI, in headless Chromium.

Windows are logged through the monitor sink (no evidently here: the UI is the subject), then the DOM
of a window run (metric names and values) and MLflow's metric chart page for the timeline run (window
metrics drawn over time — the window ends —, with latest/min/max and their steps) are checked; a
screenshot of the chart is kept under ``$EVALMON_UI_SHOTS`` (or the test's tmp dir) and must show the
lines. (The run's "Model metrics" tab draws the same charts but loads them lazily — a headless capture
catches its spinners about half the time, so the test uses the metric page, which the UI's "Plot
chart" links open.)
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chromium
import pytest

from evalmon.monitor.windows import window_of
from evalmon.sinks.mlflow.windows import WindowRecord, log_window, write_window

pytestmark = pytest.mark.slow


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def logged(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Six hourly windows of monitor ``traffic-<id>``; window 4 has the incident."""
    try:
        chromium.find_chromium()
    except chromium.ChromiumMissing as exc:
        pytest.fail(str(exc))
    root = tmp_path_factory.mktemp("ui")
    monitor, experiment = f"traffic-{uuid.uuid4().hex[:6]}", f"monitor-ui-{uuid.uuid4().hex[:6]}"
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out: dict[str, str] = {}
    for i in range(6):
        w = window_of(t0 + timedelta(hours=i), timedelta(hours=1))
        incident = i == 4
        rec = WindowRecord(monitor, w, {"records": 150.0 + i, "rate/safety.unsafe": 0.3125 if incident else 0.02,
                                        "drift/share": 0.5 if incident else 0.0, "p90/latency_ms": 900.0 + 10 * i},
                           params={"drift.method/latency_ms": "Wasserstein distance (normed)"})
        d = root / "windows" / w.key
        write_window(d, rec)
        (d / "drift.html").write_text("<html><body><h1>evidently drift report</h1></body></html>")
        res = log_window(d, mlflow_server, experiment)
        assert res["status"] == "logged", res
        if incident:
            out.update(run_id=res["run_id"], experiment_id=res["experiment_id"], window=w.key, index=str(w.index),
                       step=str(int(w.end.timestamp())))  # a window's step: its end in epoch seconds
    from mlflow import MlflowClient

    run = MlflowClient(mlflow_server).get_run(out["run_id"])
    out.update(parent=run.data.tags["mlflow.parentRunId"], monitor=monitor, root=str(root))
    return out


def test_window_run_page_shows_metric_names_and_values(mlflow_server: str, logged: dict[str, str]) -> None:
    url = f"{mlflow_server}/#/experiments/{logged['experiment_id']}/runs/{logged['run_id']}"
    text = _text(chromium.dump_dom(url, timeout=120))
    assert f"{logged['monitor']} {logged['window']}" in text  # run name = monitor + window
    for name, value in (("rate/safety.unsafe", "0.3125"), ("drift/share", "0.5"), ("records", "154"),
                        ("p90/latency_ms", "940")):
        assert re.search(rf"{re.escape(name)} {re.escape(value)}\b", text), (name, text[:2000])
    assert "evalmon.window_start" in text and "Parent run" in text


def coloured_pixels_in_chart(png: Path) -> int:
    """Line and point pixels inside the plot area (right of the tick labels, below the toolbar, above the x
    axis): saturated or dark ones. The run colour varies with the run id and may be a grey-blue with little
    saturation, so darkness counts too; the grid lines are light grey and do not."""
    from PIL import Image  # comes with mlflow's matplotlib

    with Image.open(png) as im:
        rgb = im.convert("RGB")
        w, h = rgb.size
        box = rgb.crop((int(w * 0.345), int(h * 0.22), int(w * 0.72), int(h * 0.385)))
        return sum(n for n, (r, g, b) in box.getcolors(maxcolors=box.width * box.height)
                   if max(r, g, b) - min(r, g, b) > 60 or max(r, g, b) < 200)


def test_timeline_chart_draws_window_metrics_over_time(mlflow_server: str, logged: dict[str, str]) -> None:
    from evalmon.sinks.mlflow.windows import chart_url

    url = chart_url(mlflow_server, logged["experiment_id"], logged["parent"], ["rate/safety.unsafe", "drift/share"])
    text = _text(chromium.dump_dom(url, timeout=120))
    assert f"{logged['monitor']} (timeline)" in text and "rate/safety.unsafe vs drift/share" in text, text[:2000]
    assert "Step" in text
    incident, first, hour = int(logged["step"]), int(logged["step"]) - 4 * 3600, 3600
    # the table under the chart: latest / min / max of each line, with the window step they come from
    assert re.search(rf"rate/safety\.unsafe 0\.02 \(step={first + 5 * hour}\) 0\.02 \(step={first}\) "
                     rf"0\.3125 \(step={incident}\)", text), text[:3000]
    assert re.search(rf"drift/share 0 \(step={first + 5 * hour}\) 0 \(step={first}\) 0\.5 \(step={incident}\)", text)
    assert re.search(r"\d\d:00 [A-Z][a-z]{2} \d{1,2}, 2026\b", text), text[:3000]  # x axis: time (window ends)
    shots = Path(os.environ.get("EVALMON_UI_SHOTS") or logged["root"])
    for _attempt in range(3):  # the UI draws the chart asynchronously; a capture can beat the first paint
        png = chromium.screenshot(url, shots / "monitor-timeline.png", window_size=(1400, 900), timeout=120)
        if coloured_pixels_in_chart(png) > 300:
            break
    stats = chromium.png_stats(png)
    assert stats["nonwhite"] > 0.1 and coloured_pixels_in_chart(png) > 300, stats  # the lines are drawn
