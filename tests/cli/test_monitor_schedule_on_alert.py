"""``on_alert: {to_suite: …}`` runs after every scheduled tick (``evalmon monitor --schedule``), as after a
one-shot run: the action lives in the CLI (``monitor`` may not import ``traffic``) and both paths use it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from cli_util import Background, show

pytestmark = pytest.mark.e2e

WINDOW = "20261101T020000Z"
MONITOR = """
name: shop
source: {kind: jsonl, path: traffic.jsonl}
window: {size: 1h, delay: 5m, end: 2026-11-01T03:00:00Z}
reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T02:00:00Z}
signals: []
drift: {enabled: false}
quality: {enabled: false}
tracking: {enabled: false}
alerts:
  rules:
    - {metric: p90/latency_ms, op: ">", value: 5000, name: latency p90,
       on_alert: {to_suite: {sample: 2, seed: 1, suite: "suites/replay-{window}.yaml",
                             dataset: "replay-{window}.jsonl"}}}
output_dir: monitor-runs
"""


def _traffic(path: Path) -> None:
    rows = []
    for hour in range(3):  # hour 2: a latency regression (the rule fires on that window only)
        for i in range(6):
            rows.append({"request_id": f"h{hour}-{i}", "timestamp": f"2026-11-01T0{hour}:{5 * i + 1:02d}:00Z",
                         "model": "m", "prompt": f"Question {hour}.{i}?", "response": f"Answer {hour}.{i}.",
                         "latency_ms": 9000.0 if hour == 2 else 400.0 + i})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_scheduled_run_writes_the_replay_suite_of_the_alerting_window(tmp_path: Path) -> None:
    _traffic(tmp_path / "traffic.jsonl")
    (tmp_path / "monitor.yaml").write_text(MONITOR, encoding="utf-8")
    suite = tmp_path / "suites" / f"replay-{WINDOW}.yaml"
    run = Background(tmp_path, "monitor", "monitor.yaml", "--schedule", "0 0 1 1 *")  # first tick now, no other
    deadline = time.monotonic() + 120
    while not suite.exists() and run.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(0.5)  # the action's last line
    if run.proc.poll() is None:
        run.proc.send_signal(signal.SIGTERM)
    done = run.result(timeout=60)
    assert suite.is_file(), show(done)
    assert "on_alert (latency p90)" in done.stdout, show(done)
    assert not list((tmp_path / "suites").glob("replay-20261101T0[01]*")), "only the alerting window"
    rows = [json.loads(x) for x in (tmp_path / f"replay-{WINDOW}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and all(r["provenance"]["alerts"] == ["latency p90"] for r in rows)
