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
    bad = run_cli(tmp_path, "monitor", "calibrate", "m.yaml", "--out", "t.json")  # YAML in a .json (QA walk)
    assert bad.returncode == 2 and "error: --out t.json: a thresholds file is YAML" in bad.stderr, show(bad)


def test_a_reference_named_longer_than_the_data_and_a_run_that_sets_nothing_say_so(tmp_path: Path,
                                                                                   benchmarks_dir: Path) -> None:
    """QA walk (session 16): a fixed reference starting a week before the log counted 170 empty hours, so 363 records
    made "2.1 per 1h window" and thresholds no real window could meet — exit 0, no word. And a calibration that set no
    threshold exited 0 and rewrote the thresholds file."""
    synthesize(SynthConfig(out=tmp_path / "t.jsonl", start=datetime(2026, 11, 1, tzinfo=UTC), hours=3,
                           rate_per_hour=60, seed=8, data_dir=benchmarks_dir))
    wide = YAML.replace("start: 2026-11-01T00:00:00Z, end: 2026-11-01T12:00:00Z",
                        "start: 2026-10-25T00:00:00Z, end: 2026-11-01T03:00:00Z")
    wide = wide.replace("signals: [usage, refusal, {name: pii, nlp: none}]", "signals: [usage]")
    rules = wide[wide.index("  rules:"):wide.index("output_dir")]
    (tmp_path / "w.yaml").write_text(wide.replace(rules, '  rules:\n    - {metric: p90/latency_ms, op: ">", value: 9, '
                                                          'name: slow}\n'))
    proc = run_cli(tmp_path, "monitor", "calibrate", "w.yaml", "--draws", "500", "--dry-run")
    assert proc.returncode == 0, show(proc)
    per_window = float(proc.stdout.split(" per 1h window")[0].rsplit(", ", 1)[1])
    assert 40 < per_window < 80, show(proc)  # ~60 records an hour; the 171 h period gave ~1
    assert "holds records only from 2026-11-01T00:" in proc.stderr and "over the 3 h of windows" in proc.stderr
    (tmp_path / "n.yaml").write_text(wide.replace(rules, '  rules:\n    - {metric: mean/no_such_column, op: ">", '
                                                          'value: 1, name: ghost}\n'))
    none = run_cli(tmp_path, "monitor", "calibrate", "n.yaml", "--draws", "500")
    assert none.returncode == 1 and "error: no rule of 1 could be calibrated" in none.stderr, show(none)
    assert not (tmp_path / "n.thresholds.yaml").exists() and "thresholds:" not in (tmp_path / "n.yaml").read_text()
    # an unreadable thresholds file (a hand edit gone wrong) was ignored without a word, then overwritten
    (tmp_path / "w.thr.yaml").write_text("thresholds:\n  slow: [15000\n")
    (tmp_path / "c.yaml").write_text((tmp_path / "w.yaml").read_text().replace("alerts:", "alerts:\n  thresholds: w.thr.yaml"))
    kept = run_cli(tmp_path, "monitor", "calibrate", "c.yaml", "--draws", "500")
    assert kept.returncode == 0 and "w.thr.yaml:3:1: invalid YAML" in kept.stderr, show(kept)
    assert "its values were not used" in kept.stderr and "[15000" in (tmp_path / "w.thr.yaml.unreadable").read_text()
    assert "slow" in yaml.safe_load((tmp_path / "w.thr.yaml").read_text())["thresholds"]
    # reference records quarantined (malformed lines) were left out without a word
    synthesize(SynthConfig(out=tmp_path / "bad.jsonl", start=datetime(2026, 11, 1, tzinfo=UTC), hours=3,
                           rate_per_hour=60, seed=8, data_dir=benchmarks_dir, malformed_rate=0.1))
    (tmp_path / "b.yaml").write_text((tmp_path / "w.yaml").read_text().replace("path: t.jsonl", "path: bad.jsonl"))
    bad = run_cli(tmp_path, "monitor", "calibrate", "b.yaml", "--draws", "500", "--dry-run")
    assert bad.returncode == 0 and "reference record(s) quarantined and left out of the calibration" in bad.stderr, \
        show(bad)
