"""The synthesiser's ``pii_leak`` event is caught (issue #14, PII): ``evalmon traffic synth`` writes 10 hours of
traffic with the default ``pii_leak`` (enterprise-document share 10 % → 20 %, sensitive passages among them
10 % → 80 %) in hours 8–9; ``evalmon monitor calibrate`` sets the rule's threshold on ``rate/pii.sensitive``
from the clean reference hours 0–5 only; ``evalmon monitor`` then alerts in both event hours and in neither
clean hour 6–7."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from cli_util import run_cli, show

pytestmark = pytest.mark.e2e

HOURS, REF_HOURS, EVENT_AT = 10, 6, 8

YAML = textwrap.dedent("""\
    name: leak
    source: {kind: jsonl, path: t.jsonl}
    window: {size: 1h, start: "2026-11-01T06:00:00Z", end: "2026-11-01T10:00:00Z"}
    reference: {kind: fixed, start: "2026-11-01T00:00:00Z", end: "2026-11-01T06:00:00Z"}
    signals: [{name: pii, nlp: none}]
    drift: {enabled: false}
    quality: {enabled: false}
    tracking: {enabled: false}
    alerts:
      rules:
        - {metric: rate/pii.sensitive, op: ">", value: 1.0, name: sensitive leak}
    output_dir: out
    """)


def _windows(root: Path) -> dict[int, dict]:
    out = {}
    for f in sorted((root / "out" / "leak" / "windows").glob("*/window.json")):
        w = json.loads(f.read_text(encoding="utf-8"))
        out[int(f.parent.name.split("T")[1][:2])] = w
    return out


def test_pii_leak_event_alerts_in_event_hours_only(tmp_path: Path, benchmarks_dir: Path) -> None:
    synth = run_cli(tmp_path, "traffic", "synth", "--out", "t.jsonl", "--start", "2026-11-01T00:00Z",
                    "--hours", str(HOURS), "--rate", "100/h", "--seed", "11", "--data-dir", benchmarks_dir,
                    "--event", f"pii_leak@2026-11-01T{EVENT_AT:02d}:00Z+2h")
    assert synth.returncode == 0, show(synth)
    (tmp_path / "m.yaml").write_text(YAML)
    cal = run_cli(tmp_path, "monitor", "calibrate", "m.yaml", "--false-alarm-rate", "0.001", "--draws", "5000")
    assert cal.returncode == 0, show(cal)
    thr = yaml.safe_load((tmp_path / "m.thresholds.yaml").read_text())["thresholds"]["sensitive leak"]
    assert 0 < thr < 0.2, show(cal)
    mon = run_cli(tmp_path, "monitor", "m.yaml")
    assert mon.returncode == 1, show(mon)  # an alert fired
    wins = _windows(tmp_path)
    fired = {h: [a["rule"] for a in w["alerts"]] for h, w in wins.items()}
    rates = {h: w["metrics"]["rate/pii.sensitive"] for h, w in wins.items()}
    assert fired == {h: (["sensitive leak"] if h >= EVENT_AT else []) for h in range(REF_HOURS, HOURS)}, (
        fired, rates, thr)
    assert all(w["metrics"]["coverage/pii.sensitive"] > 0.95 for w in wins.values())
