"""The config layer reads monitor YAML and gate policies without the monitor (issue #12).

``evalmon.config.monitor`` validates ``source:`` and ``signals:`` through the classes registered in
``evalmon.core.registry`` (loaded from entry points on first lookup), parses durations and times with
``evalmon.core.timewindows`` and names record columns from ``evalmon.core.records``; the monitor's modules
re-export those same objects. A ``signals:`` item that is neither a name nor a mapping is a one-line error.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import ConfigError

FRESH = """
import sys
import evalmon.config.gate, evalmon.config.monitor as m
loaded = sorted(n for n in sys.modules if n.startswith("evalmon.monitor") or n.split(".")[0] in ("pandas", "numpy"))
assert not loaded, f"importing the config layer loaded {loaded}"
cfg = m.load_monitor_text("name: m\\nsource: {kind: csv, path: t.csv}\\nsignals: [text, {name: pii, nlp: none}]\\n"
                          "window: {size: 2h30m}\\n", "m.yaml")
print(type(cfg.source).__module__, type(cfg.source).__name__, [type(s).__name__ for s in cfg.signals])
"""


def test_config_layer_validates_through_the_registry_in_a_fresh_process() -> None:
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["evalmon.monitor.sources", "CsvSourceConfig", "['TextConfig',", "'PiiConfig']"]


@pytest.mark.parametrize(("item", "shown"), [("3", "3"), ("null", "null"), ("[text]", "a list"), ("true", "true")])
def test_signal_item_neither_name_nor_mapping(item: str, shown: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_monitor_text(f"name: m\nsource: {{kind: jsonl, path: t.jsonl}}\nsignals:\n  - text\n  - {item}\n", "m.yaml")
    assert exc.value.one_line() == (f"m.yaml:5: signals.1: expected a signal name or a mapping, got {shown} — write a "
                                    "name such as `text`, or a mapping such as {name: pii, nlp: none}")


def test_monitor_modules_re_export_the_lower_layers_objects() -> None:
    from evalmon.config import quality, signals, sources
    from evalmon.core import records, timewindows
    from evalmon.monitor import contracts, schema, windows
    from evalmon.monitor import quality as monitor_quality
    from evalmon.monitor import signals as monitor_signals
    from evalmon.monitor import sources as monitor_sources

    assert windows.Window is timewindows.Window and windows.parse_duration is timewindows.parse_duration
    assert windows.as_utc is timewindows.as_utc and windows.window_of is timewindows.window_of
    assert contracts.CANONICAL_COLUMNS is records.CANONICAL_COLUMNS and schema.ALIASES is records.ALIASES
    assert monitor_quality.QualityConfig is quality.QualityConfig
    assert monitor_signals.BaseSignalConfig is signals.BaseSignalConfig
    assert monitor_signals.parse_signal_configs is signals.parse_signal_configs
    assert monitor_sources.SourceConfig is sources.SourceConfig
    assert issubclass(monitor_signals.TextConfig, signals.BaseSignalConfig)
