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

import contextlib
import math
import os
import shutil
from pathlib import Path
from typing import Any

from evalmon.config.yamlio import load_yaml, read_config_file
from evalmon.core.errors import ConfigError

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


def apply_thresholds(alerts: Any, *, rewriting: bool = False) -> str:
    """Set each rule's ``value`` from ``alerts.thresholds`` (in place; ``alerts``: a monitor's ``AlertsConfig``,
    untyped here: config.monitor imports this module). ``rewriting``: for ``evalmon monitor calibrate``, which
    (re)writes the file — a file not written yet, stale (rules since removed or renamed) or unreadable is not
    an error then (its hint is to re-run calibrate: refusing would loop); only the entries of current rules
    are applied. Returns, when rewriting, the error of a file that is there but cannot be read ("" otherwise):
    calibrate names it and keeps the file aside before writing the new one."""
    assert alerts.thresholds is not None
    if rewriting:
        try:
            values = read_thresholds(alerts.thresholds)
        except ConfigError as exc:  # missing / malformed: calibrate writes it anew
            return str(exc) if Path(alerts.thresholds).is_file() else ""
    else:
        values = read_thresholds(alerts.thresholds)
    keys = {r.key for r in alerts.rules}
    stale = sorted(set(values) - keys)
    if stale and not rewriting:
        raise ConfigError(f"{alerts.thresholds}: thresholds for rule(s) {stale} the monitor does not have "
                          f"(its rules: {sorted(keys)})", hint=_HINT)
    for i, rule in enumerate(alerts.rules):  # the models are frozen; the list is the config's own
        if rule.key in values:
            alerts.rules[i] = rule.model_copy(update={"value": values[rule.key]})
    return ""


def write_thresholds(path: str | Path, values: dict[str, float], *, header: str,
                     calibration: dict[str, dict[str, object]] | None = None) -> Path:
    """Write a thresholds file (``thresholds:`` read back by ``apply_thresholds``; ``calibration:`` says how
    each value was set, for people)."""
    import yaml

    body = {"thresholds": {k: float(v) for k, v in values.items()}}
    if calibration:
        body["calibration"] = calibration  # type: ignore[assignment]
    p = Path(path)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    p.write_text(comment + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=110))
    return p


def reference_thresholds(yaml_path: str | Path, thresholds_path: str | Path) -> bool:
    """Add ``thresholds: <file>`` under the block ``alerts:`` of a monitor YAML, as text (its comments and
    layout stay). False when it cannot (no block ``alerts:`` mapping, or the YAML cannot be rewritten: a
    read-only file; the caller says what to add)."""
    p = Path(yaml_path)
    try:
        lines = p.read_text().splitlines(keepends=True)
    except OSError:
        return False
    at = next((i for i, line in enumerate(lines) if line.rstrip().split("#")[0].rstrip() == "alerts:"), None)
    if at is None:
        return False
    indent = next((len(line) - len(line.lstrip()) for line in lines[at + 1:]
                   if line.strip() and not line.lstrip().startswith("#")), 2) or 2
    rel = Path(thresholds_path)
    with contextlib.suppress(ValueError):
        rel = rel.resolve().relative_to(p.resolve().parent)
    entry = (f"{' ' * indent}thresholds: {rel}   # written by `evalmon monitor calibrate` (overrides the "
             "rules' value:)\n")
    lines.insert(at + 1, entry)
    return _rewrite(p, "".join(lines))


def _rewrite(path: Path, text: str) -> bool:
    """Replace ``path``'s text whole or not at all (a temporary file renamed over it, its mode kept; a disk
    that fills up cannot leave half a monitor YAML); False, the file untouched, when it cannot (read-only)."""
    target = path.resolve()  # a symlinked YAML: its target is rewritten, the link stays
    if not os.access(target, os.W_OK):
        return False
    tmp = target.with_name(f".{target.name}.evalmon-tmp")
    try:
        tmp.write_text(text)
        shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except OSError:  # the thresholds file is written; the caller tells the user the line to add
        tmp.unlink(missing_ok=True)
        return False
    return True
