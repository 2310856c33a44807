"""Watermark (exactly once), backfill, the per-monitor lock across processes, and the cron loop."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import MonitorConfig, load_monitor_text
from evalmon.core.errors import ConfigError
from evalmon.monitor.contracts import SourceBatch
from evalmon.monitor.runner import run_monitor
from evalmon.monitor.schedule import MonitorBusyError, MonitorLock, WatermarkStore, run_schedule
from evalmon.monitor.windows import window_of

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class MemorySource:
    """Logged traffic in memory (canonical frame); counts reads so tests can see what was asked."""

    name = "memory"

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reads: list[tuple[datetime | None, datetime | None]] = []

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        self.reads.append((start, end))
        f = self.frame
        if start is not None:
            f = f[f.timestamp >= pd.Timestamp(start)]
        if end is not None:
            f = f[f.timestamp < pd.Timestamp(end)]
        return SourceBatch(f.reset_index(drop=True))


def traffic(hours: int, per_hour: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = hours * per_hour
    secs = np.sort(rng.uniform(0, hours * 3600, n))
    return pd.DataFrame({"timestamp": pd.to_datetime([T0 + timedelta(seconds=float(s)) for s in secs], utc=True),
                         "request_id": [f"r{i}" for i in range(n)], "prompt": "p", "response": "r",
                         "latency_ms": rng.normal(100, 10, n)})


def config(tmp_path: Path, extra: str = "") -> MonitorConfig:
    return load_monitor_text(textwrap.dedent(f"""\
        name: sched
        source: {{kind: jsonl, path: unused.jsonl}}
        window: {{size: 1h}}
        drift: {{enabled: false}}
        quality: {{enabled: false}}
        tracking: {{enabled: false}}
        output_dir: {tmp_path / "out"}
        """) + extra, "m.yaml", base_dir=tmp_path)


def test_watermark_only_moves_forward(tmp_path: Path) -> None:
    with WatermarkStore(tmp_path / "s.sqlite") as store:
        assert store.get("m") is None
        assert store.advance("m", T0 + 2 * HOUR) == T0 + 2 * HOUR
        assert store.advance("m", T0 + HOUR) == T0 + 2 * HOUR  # never backwards
        assert store.get("other") is None


def test_once_processes_each_complete_window_exactly_once(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    src = MemorySource(traffic(6))
    first = run_monitor(cfg, now=T0 + 3 * HOUR + timedelta(minutes=20), source=src)
    assert [o.window.start for o in first.windows] == [T0, T0 + HOUR, T0 + 2 * HOUR]  # 03:00 is not complete
    assert first.watermark == T0 + 3 * HOUR and first.exit_code == 0
    assert sum(o.records for o in first.windows) == len(src.frame[src.frame.timestamp < pd.Timestamp(T0 + 3 * HOUR)])
    again = run_monitor(cfg, now=T0 + 3 * HOUR + timedelta(minutes=50), source=src)
    assert again.windows == [] and "no complete window" in again.notes[0]
    before = len(src.reads)
    later = run_monitor(cfg, now=T0 + 6 * HOUR, source=src)
    assert [o.window.start for o in later.windows] == [T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
    new = [T0 + h * HOUR for h in (3, 4, 5, 6)]
    late_check = (T0 + 2 * HOUR, T0 + 3 * HOUR)  # the window behind the watermark, re-counted (monitor/late.py)
    assert src.reads[before:] == [late_check, *itertools.pairwise(new)]  # then the new span, window by window, once
    with WatermarkStore(cfg.state_path) as store:
        done = [h["start"] for h in store.history("sched")]
    assert done == [T0 + i * HOUR for i in range(6)]  # each window once, in order
    w = window_of(T0 + 4 * HOUR, HOUR)
    assert (cfg.run_dir / "windows" / w.key / "window.json").is_file()


def test_backfill_reprocesses_without_moving_the_watermark(tmp_path: Path) -> None:
    cfg = config(tmp_path, "alerts: {rules: [{metric: records, op: '>', value: 0}]}\n")
    src = MemorySource(traffic(4))
    run_monitor(cfg, now=T0 + 4 * HOUR, source=src)
    back = run_monitor(cfg, backfill=(T0 + HOUR, T0 + 3 * HOUR), now=T0 + 4 * HOUR, source=src)
    assert back.mode == "backfill" and [o.window.start for o in back.windows] == [T0 + HOUR, T0 + 2 * HOUR]
    assert back.watermark == T0 + 4 * HOUR and back.exit_code == 1  # alerts still count
    # a backfill past the watermark does not move it either; incomplete windows are not processed
    ahead = run_monitor(cfg, backfill=(T0 + 3 * HOUR, T0 + 9 * HOUR), now=T0 + 5 * HOUR + timedelta(minutes=1),
                        source=MemorySource(traffic(6)))
    assert [o.window.start for o in ahead.windows] == [T0 + 3 * HOUR, T0 + 4 * HOUR]
    with WatermarkStore(cfg.state_path) as store:
        assert store.get("sched") == T0 + 4 * HOUR
        modes = [h["mode"] for h in store.history("sched")]
    assert modes == ["once"] * 4 + ["backfill"] * 4


def test_lock_held_by_another_process_refuses_at_once(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from evalmon.monitor.schedule import MonitorLock
            with MonitorLock(Path({str(cfg.state_path)!r}), "sched"):
                print("locked", flush=True)
                time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(MonitorBusyError, match=rf"monitor 'sched' is already being processed by pid {holder.pid}"):
            run_monitor(cfg, now=T0 + 2 * HOUR, source=MemorySource(traffic(2)))
        assert time.monotonic() - t0 < 2 and MonitorBusyError.exit_code == 75
        with WatermarkStore(cfg.state_path) as store:
            assert store.get("sched") is None  # nothing was touched
    finally:
        holder.kill()
        holder.wait()
    assert run_monitor(cfg, now=T0 + 2 * HOUR, source=MemorySource(traffic(2))).watermark == T0 + 2 * HOUR
    # in-process too: flock is per open file, so a second handle in the same process is refused
    with MonitorLock(cfg.state_path, "sched"), pytest.raises(MonitorBusyError):
        MonitorLock(cfg.state_path, "sched").acquire()


def test_cron_schedule_runs_at_once_and_survives_job_errors(tmp_path: Path) -> None:
    calls: list[float] = []
    errors: list[BaseException] = []

    def job() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("source missing this time")

    assert run_schedule("*/15 * * * *", job, max_runs=1, on_error=errors.append) == 1
    assert len(calls) == 1 and isinstance(errors[0], RuntimeError)  # first run is immediate
    with pytest.raises(ConfigError, match=r"--schedule '\*/15 \* \*': .*five crontab fields"):
        run_schedule("*/15 * *", job)


def test_previous_and_file_references(tmp_path: Path) -> None:
    df = traffic(4, per_hour=120)
    df.loc[df.timestamp >= pd.Timestamp(T0 + 3 * HOUR), "latency_ms"] += 80  # hour 3 shifts
    prev = config(tmp_path, "").model_copy(update={"drift": config(tmp_path).drift.model_copy(
        update={"enabled": True, "html": False})})
    prev._base_dir = tmp_path
    res = run_monitor(prev, backfill=(T0 + HOUR, T0 + 4 * HOUR), now=T0 + 4 * HOUR, source=MemorySource(df))
    n_ref = [int(o.params["n_reference"]) for o in res.windows]
    per_hour = [int(((df.timestamp >= pd.Timestamp(T0 + i * HOUR)) & (df.timestamp < pd.Timestamp(T0 + (i + 1) * HOUR))).sum())
                for i in range(4)]
    assert n_ref == per_hour[:3]  # the reference of hour h is hour h-1
    detected = [o.metrics.get("drift_detected/latency_ms") for o in res.windows]
    assert detected == [0, 0, 1]  # each hour vs the hour before it
    ref = df[df.timestamp < pd.Timestamp(T0 + HOUR)].assign(timestamp=lambda f: f.timestamp.astype(str))
    ref.to_json(tmp_path / "ref.jsonl", orient="records", lines=True)
    from_file = load_monitor_text(textwrap.dedent(f"""\
        name: fileref
        source: {{kind: jsonl, path: unused.jsonl}}
        window: {{size: 1h}}
        reference: {{kind: file, path: ref.jsonl}}
        drift: {{html: false}}
        quality: {{enabled: false}}
        tracking: {{enabled: false}}
        output_dir: {tmp_path / "out2"}
        """), "m.yaml", base_dir=tmp_path)
    res = run_monitor(from_file, now=T0 + 4 * HOUR, source=MemorySource(df))
    assert {o.params["n_reference"] for o in res.windows} == {str(len(ref))}
    assert [o.metrics.get("drift_detected/latency_ms") for o in res.windows] == [0, 0, 0, 1]
