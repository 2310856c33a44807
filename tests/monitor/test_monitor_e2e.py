"""``evalmon monitor`` end to end: synthesised traffic with injected events → real MLflow server.

Ten hours of traffic ending at the last full hour (every hour is a complete window *now*; ``window.end``
keeps the run at ten windows if the clock passes an hour meanwhile): the
first four hours are the reference; a latency regression is injected in hour 6 and a new model version
in hour 8; hour 9 is removed (an empty window); 1% malformed lines are quarantined. The monitor must
log one MLflow run per window, flag exactly the event windows, exit 1, process nothing the second time,
refuse to run while another process holds the lock, and keep windows locally while MLflow is down.
"""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_util import run_cli, show
from plugins.mlflow_server import free_port

from evalmon.config.monitor import apply_overrides, load_monitor
from evalmon.monitor.runner import run_monitor
from evalmon.monitor.schedule import MonitorLock

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("benchmarks_dir")]  # missing data fails, never skips
HOUR = timedelta(hours=1)
BASE_MODEL, NEW_MODEL = "vicuna-13b-v1.3", "vicuna-33b-v1.3"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from evalmon.traffic.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("e2e")
    now = datetime.now(UTC)
    t0 = now.replace(minute=0, second=0, microsecond=0) - 10 * HOUR
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    res = synthesize(SynthConfig(
        out=root / "traffic.jsonl", start=t0, hours=10, rate_per_hour=120, seed=3, data_dir=BENCH,
        malformed_rate=0.01, mix={"chat": 0.7, "rag": 0.2, "safety": 0.0, "enterprise": 0.1},
        events=[f"latency_regression@{z(t0 + 6 * HOUR)}+1h[factor=4]",
                f"new_model_version@{z(t0 + 8 * HOUR)}+1h[model={NEW_MODEL}]"]))
    gap = (t0 + 9 * HOUR).strftime('"timestamp": "%Y-%m-%dT%H:')
    lines = res.traffic.read_bytes().splitlines(keepends=True)
    res.traffic.write_bytes(b"".join(x for x in lines if gap.encode() not in x))  # hour 9: an empty window
    experiment = f"monitor-e2e-{uuid.uuid4().hex[:6]}"
    (root / "m.yaml").write_text(textwrap.dedent(f"""\
        name: e2e
        source: {{kind: jsonl, path: traffic.jsonl}}
        window: {{size: 1h, end: "{z(t0 + 10 * HOUR)}"}}
        reference: {{kind: fixed, start: "{z(t0)}", end: "{z(t0 + 4 * HOUR)}"}}
        signals: [{{name: text, language: false}}, usage, refusal]
        drift:
          text_drift: false
          methods: {{latency_ms: wasserstein}}
          thresholds: {{latency_ms: 0.5}}
        tracking: {{experiment: {experiment}}}
        alerts:
          on_missing: ignore   # the empty window's rules are notes here (not-evaluated alerts: test_coverage.py)
          rules:
            - {{metric: drift_detected/latency_ms, op: ">", value: 0, name: latency drift}}
            - {{metric: "share/model/{BASE_MODEL}", op: "<", value: 0.5, name: model version changed}}
        output_dir: out
        """))
    return {"root": root, "t0": t0, "experiment": experiment, "malformed": res.malformed}


def _windows(uri: str, experiment: str) -> dict[int, Any]:
    from mlflow import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`evalmon.window_id` LIKE '%'", max_results=200)
    return {int(r.data.tags["evalmon.window_index"]): r for r in runs}


def test_cli_once_flags_event_windows_only(setup: dict[str, Any], mlflow_server: str) -> None:
    root, t0 = setup["root"], setup["t0"]
    proc = run_cli(root, "monitor", "m.yaml", "--tracking-uri", mlflow_server)
    assert proc.returncode == 1, show(proc)  # alerts fired
    assert re.search(r"ALERT e2e window .*T\d\d:00:00\+00:00: drift_detected/latency_ms = 1 > 0", proc.stdout)
    assert "10 window(s)" in proc.stdout and "2 alert(s) — exit code 1" in proc.stderr, show(proc)
    runs = _windows(mlflow_server, setup["experiment"])
    first = int(t0.timestamp()) // 3600
    assert sorted(runs) == list(range(first, first + 10))  # one run per window
    alerts = {i - first: int(r.data.tags["evalmon.alerts"]) for i, r in runs.items()}
    assert alerts == {i: int(i in (6, 8)) for i in range(10)}, alerts  # event windows only
    m6, m8 = runs[first + 6].data.metrics, runs[first + 8].data.metrics
    assert m6["drift_detected/latency_ms"] == 1 and m6["mean/latency_ms"] > 2 * runs[first + 5].data.metrics[
        "mean/latency_ms"]
    assert m8[f"share/model/{BASE_MODEL}"] == 0 and m8["drift_detected/model"] == 1  # one class in the window
    assert runs[first + 8].data.params["drift.method/model"] == "Z-test p_value"  # evidently's pick, recorded
    assert runs[first + 6].data.params["drift.method/latency_ms"] == "Wasserstein distance (normed)"
    for i in (0, 1, 2, 3, 4, 5, 7):
        assert runs[first + i].data.metrics["drift_detected/latency_ms"] == 0, i
    empty = runs[first + 9]
    assert empty.data.metrics["records"] == 0 and "drift/share" not in empty.data.metrics
    assert "drift skipped" in empty.data.tags["evalmon.notes"]
    quarantined = sum(r.data.metrics["quality/quarantined"] for r in runs.values())
    qfiles = list((root / "out" / "e2e" / "quarantine").glob("*.jsonl"))
    assert quarantined > 0 and quarantined == sum(len(f.read_text().splitlines()) for f in qfiles)
    from mlflow import MlflowClient

    arts = {a.path for a in MlflowClient(mlflow_server).list_artifacts(runs[first + 6].info.run_id)}
    assert {"drift.html", "drift.json", "quality.json", "quarantine_summary.json", "window.json"} <= arts
    assert m6["quality/failed"] == 0 and "rate/refusal.refused" in m6 and "p90/usage.latency_ms" in m6

    again = run_cli(root, "monitor", "m.yaml", "--once", "--tracking-uri", mlflow_server)
    assert again.returncode == 0 and "no complete window to process" in again.stdout, show(again)
    assert len(_windows(mlflow_server, setup["experiment"])) == 10

    with MonitorLock(root / "out" / "state.sqlite", "e2e"):
        busy = run_cli(root, "monitor", "m.yaml", "--tracking-uri", mlflow_server)
    assert busy.returncode == 75 and "already being processed by pid" in busy.stderr, show(busy)


def test_unreachable_mlflow_keeps_windows_then_syncs(setup: dict[str, Any], mlflow_server: str) -> None:
    root, t0 = setup["root"], setup["t0"]
    cfg = load_monitor(root / "m.yaml")
    experiment = f"{setup['experiment']}-offline"
    cfg = cfg.model_copy(update={"output_dir": root / "offline",
                                 "tracking": cfg.tracking.model_copy(update={"experiment": experiment})})
    cfg._base_dir = root
    dead = apply_overrides(cfg, tracking_uri=f"http://127.0.0.1:{free_port()}")
    down = run_monitor(dead, backfill=(t0 + 6 * HOUR, t0 + 8 * HOUR))
    assert [o.tracking["status"] for o in down.windows] == ["pending", "pending"] and down.exit_code == 1
    pending = sorted((root / "offline" / "e2e" / "windows").glob("*/monitor_pending.json"))
    assert len(pending) == 2 and json.loads(pending[0].read_text())["reason"].startswith("cannot reach")
    up = run_monitor(apply_overrides(cfg, tracking_uri=mlflow_server), backfill=(t0 + 9 * HOUR, t0 + 10 * HOUR))
    assert [s["status"] for s in up.synced] == ["logged", "logged"] and up.windows[0].records == 0
    runs = _windows(mlflow_server, experiment)
    first = int(t0.timestamp()) // 3600
    assert sorted(runs) == [first + 6, first + 7, first + 9]
    assert runs[first + 6].data.metrics["drift_detected/latency_ms"] == 1
    assert not list((root / "offline" / "e2e" / "windows").glob("*/monitor_pending.json"))


def test_traces_source_gets_per_record_assessments(mlflow_server: str, tmp_path: Path) -> None:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from evalmon.config.monitor import load_monitor_text
    from evalmon.monitor.sources.mlflow_traces import log_traces

    t0 = datetime(2026, 11, 3, tzinfo=UTC)
    n = 6
    frame = pd.DataFrame({
        "request_id": [f"q{i}" for i in range(n)], "timestamp": [t0 + i * timedelta(minutes=20) for i in range(n)],
        "model": "m-1", "prompt": [f"question {i}" for i in range(n)],
        "response": ["I'm sorry, but I can't help with that." if i % 3 == 0 else f"Here is answer {i}."
                     for i in range(n)], "contexts": [[] for _ in range(n)], "latency_ms": 100.0,
        "input_tokens": 5, "output_tokens": 9})
    experiment = f"traces-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(mlflow_server)
    exp_id = client.create_experiment(experiment)
    from evalmon.config.tracking import using_tracking_uri

    with using_tracking_uri(mlflow_server):  # (mlflow.set_tracking_uri alone leaves $MLFLOW_TRACKING_URI set)
        ids = log_traces(frame, experiment_id=exp_id)
        mlflow.flush_trace_async_logging()
    cfg = load_monitor_text(textwrap.dedent(f"""\
        name: traced
        source: {{kind: mlflow_traces, experiment: {experiment}, tracking_uri: "{mlflow_server}"}}
        window: {{size: 1h, end: "2026-11-03T03:00:00Z"}}
        signals: [refusal]
        drift: {{enabled: false}}
        tracking: {{uri: "{mlflow_server}", experiment: {experiment}-monitor}}
        output_dir: out
        """), "m.yaml", base_dir=tmp_path)
    result = run_monitor(cfg)
    assert [o.records for o in result.windows] == [3, 3, 0]
    assert sum(o.metrics.get("assessments/logged", 0) for o in result.windows) == n
    for i, tid in enumerate(ids):
        got = {a.name: a.feedback.value for a in client.get_trace(tid).info.assessments}
        assert got == {"refusal.refused": i % 3 == 0}, (i, got)
    again = run_monitor(cfg, backfill=(t0, t0 + 2 * HOUR))  # nothing is logged twice
    assert sum(o.metrics.get("assessments/logged", 0) for o in again.windows) == 0
    assert len(client.get_trace(ids[0]).info.assessments) == 1
