"""``evalmon monitor calibrate`` end to end: thresholds file written, referenced from the YAML, loaded back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cli_util import run_cli, show

from evalmon.config.monitor import load_monitor
from evalmon.traffic.synth import SynthConfig, synthesize

pytestmark = pytest.mark.e2e

YAML = """\
name: cal
source: {kind: jsonl, path: t.jsonl}
window: {size: 1h}
reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T12:00:00Z}
signals: [usage, refusal, {name: pii, nlp: none}]
drift: {enabled: false}
tracking: {enabled: false}
alerts:   # a comment that must survive
  rules:
    - {metric: p90/latency_ms, op: ">", value: 99999, name: slow}
    - {metric: rate/refusal.refused, op: ">", value: 0.5, name: refusals}
    - {metric: rate/pii.any, op: ">", value: 0.05, name: pii}
    - {metric: records, op: "<", value: 1, name: traffic drop}
output_dir: out
"""


def test_calibrate_writes_thresholds_the_monitor_loads(tmp_path: Path, benchmarks_dir: Path) -> None:
    synthesize(SynthConfig(out=tmp_path / "t.jsonl", start=datetime(2026, 11, 1, tzinfo=UTC), hours=12,
                           rate_per_hour=60, seed=8, data_dir=benchmarks_dir))
    (tmp_path / "m.yaml").write_text(YAML)
    proc = run_cli(tmp_path, "monitor", "calibrate", "m.yaml", "--false-alarm-rate", "0.01", "--draws", "2000")
    assert proc.returncode == 0, show(proc)
    assert "pii: cannot calibrate: constant" in proc.stdout and "catches" in proc.stdout, show(proc)
    assert "added `alerts.thresholds: m.thresholds.yaml`" in proc.stdout, show(proc)
    text = (tmp_path / "m.yaml").read_text()
    assert "# a comment that must survive" in text and "thresholds: m.thresholds.yaml" in text
    written = yaml.safe_load((tmp_path / "m.thresholds.yaml").read_text())
    assert set(written["thresholds"]) == {"slow", "refusals", "traffic drop"}
    cfg = load_monitor(tmp_path / "m.yaml")
    rules = {r.key: r.value for r in cfg.alerts.rules}
    assert rules["slow"] == written["thresholds"]["slow"] < 99999 and rules["pii"] == 0.05
    assert 0 < rules["refusals"] < 0.5 and 0 < rules["traffic drop"] < 60
    bad = run_cli(tmp_path, "monitor", "calibrate", "m.yaml", "--false-alarm-rate", "2")
    assert bad.returncode == 2 and "error: --false-alarm-rate" in bad.stderr and "Traceback" not in bad.stderr
