"""Alert rules, the webhook (a real local HTTP server) and the per-window MLflow sink (a real server)."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from plugins.mlflow_server import free_port

from evalmon.config.alerts import AlertRule, WebhookConfig
from evalmon.monitor.alerts import evaluate, payload, post_webhook
from evalmon.monitor.windows import window_of
from evalmon.sinks.mlflow.windows import PENDING_FILE, WindowRecord, log_window, sync_windows, write_window

W = window_of(datetime(2024, 3, 1, 9, 0, tzinfo=UTC), timedelta(hours=1))


def test_rules_fire_on_thresholds_and_note_missing_metrics() -> None:
    # on_missing: ignore = a rule that cannot be evaluated is a note (the default, alert: tests/monitor/test_coverage.py)
    rules = [AlertRule(metric="rate/safety.unsafe", op=">", value=0.1, on_missing="ignore"),
             AlertRule(metric="records", op="<", value=10, name="too few records", on_missing="ignore"),
             AlertRule(metric="drift/share", op=">=", value=0.5, on_missing="ignore"),
             AlertRule(metric="rate/typo", op=">", value=0, on_missing="ignore")]
    check = evaluate(rules, {"rate/safety.unsafe": 0.25, "records": 50, "drift/share": math.nan},
                     monitor="m", window=W)
    assert [a.rule for a in check.alerts] == ["rate/safety.unsafe > 0.1"]
    a = check.alerts[0]
    assert (a.value, a.threshold, a.window_start, a.window_index) == (0.25, 0.1, W.start.isoformat(), W.index)
    assert "0.25 > 0.1" in a.message()
    assert any("NaN" in n for n in check.notes) and any("no metric 'rate/typo'" in n for n in check.notes)
    assert [x.rule for x in evaluate(rules, {"records": 3}, monitor="m", window=W).alerts] == ["too few records"]


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict], list[int]]]:
    """A local webhook receiver: answers the next queued status codes (default 200), records bodies."""
    received: list[dict] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            code = statuses.pop(0) if statuses else 200
            if code == 999:  # too slow: the client times out
                time.sleep(1.5)
                code = 200
            received.append({"body": body, "code": code, "ctype": self.headers["Content-Type"]})
            self.send_response(code)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, statuses
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_json_and_retries_server_errors(hook: tuple[str, list[dict], list[int]]) -> None:
    url, received, statuses = hook
    rules = [AlertRule(metric="rate/pii.any", op=">", value=0.05)]
    alerts = evaluate(rules, {"rate/pii.any": 0.2}, monitor="traffic", window=W).alerts
    body = payload("traffic", alerts, experiment="monitor-traffic", ui_urls={W.start.isoformat(): "http://ui/run"})
    sleeps: list[float] = []
    statuses[:] = [503, 500]
    out = post_webhook(WebhookConfig(url=url, retries=2), body, sleep=sleeps.append)
    assert out.ok and out.attempts == 3 and out.status == 200 and sleeps == [0.5, 1.0]
    assert [r["code"] for r in received] == [503, 500, 200]
    got = received[-1]["body"]
    assert received[-1]["ctype"] == "application/json"
    assert got["monitor"] == "traffic" and got["alert_count"] == 1 and got["alerts"][0]["ui_url"] == "http://ui/run"
    assert got["alerts"][0]["metric"] == "rate/pii.any" and got["alerts"][0]["value"] == 0.2
    statuses[:] = [404]
    bad = post_webhook(WebhookConfig(url=url, retries=3), body, sleep=sleeps.append)
    assert not bad.ok and bad.attempts == 1 and bad.status == 404  # a client error is not retried
    statuses[:] = [999]
    slow = post_webhook(WebhookConfig(url=url, retries=0, timeout_s=0.3), body)
    assert not slow.ok and "timed out" in str(slow.error).lower()
    dead = post_webhook(WebhookConfig(url=f"http://127.0.0.1:{free_port()}/x", retries=1), body, sleep=lambda s: None)
    assert not dead.ok and dead.attempts == 2 and "refused" in str(dead.error).lower()
    assert "failed after 2 attempt(s)" in dead.line("u")


def _record(monitor: str, window, records: float, unsafe: float) -> WindowRecord:  # type: ignore[no-untyped-def]
    return WindowRecord(monitor, window, {"records": records, "rate/safety.unsafe": unsafe, "mean/latency_ms": math.nan},
                        params={"drift.method/latency_ms": "K-S p_value"}, tags={"evalmon.notes": "n"})


def test_one_run_per_window_stamped_with_window_time(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    monitor, exp = f"m-{uuid.uuid4().hex[:6]}", f"exp-{uuid.uuid4().hex[:6]}"
    w2 = window_of(W.end, timedelta(hours=1))
    dirs = []
    for w, unsafe in ((W, 0.01), (w2, 0.3)):
        d = tmp_path / w.key
        write_window(d, _record(monitor, w, 100, unsafe))
        (d / "drift.html").write_text("<html>evidently</html>")
        dirs.append(d)
        out = log_window(d, mlflow_server, exp)
        assert out["status"] == "logged", out
    c = MlflowClient(mlflow_server)
    eid = c.get_experiment_by_name(exp).experiment_id
    runs = c.search_runs([eid], filter_string=f"tags.`evalmon.monitor` = '{monitor}'")
    windows = {r.data.tags.get("evalmon.window_start"): r for r in runs if "evalmon.window_id" in r.data.tags}
    assert set(windows) == {W.start.isoformat(), w2.start.isoformat()}
    run = windows[w2.start.isoformat()]
    (hist,) = c.get_metric_history(run.info.run_id, "rate/safety.unsafe")
    assert (hist.value, hist.step, hist.timestamp) == (0.3, int(w2.end.timestamp()), int(w2.end.timestamp() * 1000))
    assert "mean/latency_ms" not in run.data.metrics  # NaN is not logged
    assert run.data.params["drift.method/latency_ms"] == "K-S p_value"
    assert run.data.tags["evalmon.window_end"] == w2.end.isoformat() and run.info.run_name == f"{monitor} {w2.key}"
    assert {a.path for a in c.list_artifacts(run.info.run_id)} == {"window.json", "drift.html"}
    # the timeline parent run holds both windows as one series on the window-time axis
    parent = c.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["evalmon.monitor_timeline"] == monitor
    series = sorted((m.step, m.value) for m in c.get_metric_history(parent.info.run_id, "rate/safety.unsafe"))
    assert series == [(int(W.end.timestamp()), 0.01), (int(w2.end.timestamp()), 0.3)]  # step = epoch seconds
    # same content again (a retry): same run, no extra points; new content (backfill): replaced
    assert log_window(dirs[1], mlflow_server, exp)["run_id"] == run.info.run_id
    assert len(c.get_metric_history(parent.info.run_id, "rate/safety.unsafe")) == 2
    write_window(dirs[1], _record(monitor, w2, 100, 0.05))
    new = log_window(dirs[1], mlflow_server, exp)
    assert new["run_id"] != run.info.run_id and c.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    active = c.search_runs([eid], filter_string=f"tags.`evalmon.window_id` = '{monitor}/{w2.key}'")
    assert [r.info.run_id for r in active] == [new["run_id"]]


def test_unreachable_mlflow_keeps_window_then_syncs(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    monitor, exp = f"m-{uuid.uuid4().hex[:6]}", f"exp-{uuid.uuid4().hex[:6]}"
    run_dir = tmp_path / monitor
    d = run_dir / "windows" / W.key
    write_window(d, _record(monitor, W, 5, 0.0))
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    out = log_window(d, dead, exp)
    assert out["status"] == "pending" and "cannot reach" in out["reason"] and time.monotonic() - t0 < 6
    assert json.loads((d / PENDING_FILE).read_text())["uri"] == dead
    assert [o["status"] for o in sync_windows(run_dir)] == ["pending"]  # still down
    done = sync_windows(run_dir, mlflow_server)
    assert [o["status"] for o in done] == ["logged"] and not (d / PENDING_FILE).exists()
    assert sync_windows(run_dir, mlflow_server) == []
    run = MlflowClient(mlflow_server).get_run(done[0]["run_id"])
    assert run.data.metrics["records"] == 5 and run.data.tags["evalmon.window_id"] == f"{monitor}/{W.key}"
