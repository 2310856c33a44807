"""``alerts.thresholds``: a file of calibrated rule values that a monitor YAML references.

``evalmon monitor calibrate`` writes it (the YAML itself is left as written, comments and all)::

    # written by evalmon monitor calibrate …
    thresholds:
      unsafe traffic: 0.0712              # rule name (or "<metric> <op>" for an unnamed rule) → value
    calibration:                          # how each value was set (read by people, ignored here)
      unsafe traffic: {false_alarm_rate: 0.001, smallest_event: "…"}

At load time each listed rule's ``value`` is replaced by the file's; a name the monitor has no rule for is an
error (the file is stale: re-run calibrate).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from evalmon.config.yamlio import load_yaml, read_config_file
from evalmon.core.errors import ConfigError

if TYPE_CHECKING:
    from evalmon.config.monitor import AlertsConfig

_HINT = "re-run `evalmon monitor calibrate MONITOR.yaml` (it rewrites the file)"


def read_thresholds(path: str | Path) -> dict[str, float]:
    """``{rule key: value}`` from a thresholds file; a malformed file is one ConfigError naming it."""
    text, p = read_config_file(path, "thresholds file", dir_hint="pass the thresholds .yaml file")
    data = load_yaml(text, str(p)).data
    table = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: no `thresholds:` mapping (rule name → value)", hint=_HINT)
    out: dict[str, float] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
            raise ConfigError(f"{p}: thresholds.{key}: {value!r} is not a finite number", hint=_HINT)
        out[str(key)] = float(value)
    return out


def apply_thresholds(alerts: AlertsConfig) -> None:
    """Set each rule's ``value`` from ``alerts.thresholds`` (in place)."""
    assert alerts.thresholds is not None
    values = read_thresholds(alerts.thresholds)
    keys = {r.key for r in alerts.rules}
    stale = sorted(set(values) - keys)
    if stale:
        raise ConfigError(f"{alerts.thresholds}: thresholds for rule(s) {stale} the monitor does not have "
                          f"(its rules: {sorted(keys)})", hint=_HINT)
    for i, rule in enumerate(alerts.rules):  # the models are frozen; the list is the config's own
        if rule.key in values:
            alerts.rules[i] = rule.model_copy(update={"value": values[rule.key]})
