"""Hostile-input walk (session 10): each case was a misleading error or a dead end before its fix.

- ``evalmon monitor calibrate`` on a YAML whose ``alerts.thresholds`` file does not exist yet (a copied
  example, a first calibration) or is stale (a rule since removed) refused with "thresholds file not found" /
  "re-run `evalmon monitor calibrate`" — the very command that writes the file: a loop with no way out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.config.monitor import load_monitor
from evalmon.core.errors import ConfigError

MONITOR = """\
name: m
source: {kind: jsonl, path: t.jsonl}
window: {size: 1h}
reference: {kind: fixed, start: 2026-11-01T00:00:00Z, end: 2026-11-01T12:00:00Z}
signals: [usage]
alerts:
  thresholds: m.thresholds.yaml
  rules:
    - {metric: p90/latency_ms, op: ">", value: 20000, name: slow}
    - {metric: records, op: "<", name: traffic drop}   # its value comes from the thresholds file
"""


@pytest.mark.parametrize("thresholds", [
    None,  # not written yet
    "thresholds: {slow: 900.0, gone: 0.5}\n",  # stale: rule 'gone' was removed from the YAML
    "thresholds: [1, 2\n",  # cut short
])
def test_calibrate_loads_a_monitor_whose_thresholds_file_it_is_about_to_rewrite(tmp_path: Path,
                                                                                 thresholds: str | None) -> None:
    (tmp_path / "m.yaml").write_text(MONITOR)
    if thresholds is not None:
        (tmp_path / "m.thresholds.yaml").write_text(thresholds)
    with pytest.raises(ConfigError):  # the monitor itself still refuses it
        load_monitor(tmp_path / "m.yaml")
    cfg = load_monitor(tmp_path / "m.yaml", calibrating=True)
    values = {r.key: r.value for r in cfg.alerts.rules}
    assert values == {"slow": 900.0 if thresholds and "gone" in thresholds else 20000, "traffic drop": None}


def test_calibrate_cli_gets_past_a_missing_thresholds_file(tmp_path: Path) -> None:
    """The CLI loads the monitor for calibration: the next check (--reference-rows) is the one that fails."""
    from evalmon.cli.monitor import calibrate

    (tmp_path / "m.yaml").write_text(MONITOR)
    with pytest.raises(ConfigError) as exc:
        calibrate(config=tmp_path / "m.yaml", false_alarm_rate=0.001, draws=None, out=None,
                  reference_rows=5, dry_run=True)
    assert exc.value.one_line().startswith("--reference-rows: 5 is too few")
