"""``benchmarks/bench_monitor_spark.py``'s monitor admits its whole tiled span, whatever today's date.

Its days start on 2026-11-01; a record more than ``timestamp_max_ahead`` (default 1 day) after *now* is quarantined
as ``timestamp.implausible``. A 100-day run on 2026-12-06 therefore windowed only the records up to 2026-12-07
(3,671,924 of 10,006,800: the "fit pass counted fewer records" finding — both passes read the same records)."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pandas as pd

from evalmon.config.monitor import load_monitor
from evalmon.monitor.timeparse import parse_times

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_monitor_spark.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_monitor_spark", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_monitor_admits_its_whole_span(tmp_path: Path) -> None:
    bench = _bench()
    days = 100
    cfg = load_monitor(bench.monitor_yaml(tmp_path, "spark2", "1d", "2g", days))
    last = pd.Timestamp(bench.T0 + timedelta(days=days) - timedelta(seconds=1))
    parsed = parse_times(pd.Series([bench.T0.isoformat(), last.isoformat()], dtype=object),
                         plausible=cfg.source.plausible())
    assert parsed.reasons.isna().all() and list(parsed.times) == [pd.Timestamp(bench.T0), last]
