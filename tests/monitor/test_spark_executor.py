"""``executor: spark`` on real PySpark (``local[2]``): the same monitor YAML on the same traffic gives the same
window metrics, alerts and quarantine accounting as the local executor (one JVM for the session)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from spark_util import assert_same_windows

from evalmon.config.monitor import load_monitor_text
from evalmon.monitor.runner import MonitorResult, run_monitor

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _traffic(folder: Path, hours: int, *, files: int = 3, seed: int = 0) -> int:
    """JSON lines over ``files`` files (every hour spans all of them), a latency shift from hour 3 on, a
    burst of empty responses in hour 4 and a few unparseable lines (quarantined); returns the number of good rows."""
    rng = np.random.default_rng(seed)
    rows: list[str] = []
    for h in range(hours):
        n = 25 + 15 * (h % 3)
        for s in np.sort(rng.uniform(0, 3600, n)):
            i = len(rows)
            refuse = rng.random() < (0.6 if h == 4 else 0.1)
            rows.append(json.dumps({
                "request_id": f"r{i}", "timestamp": (T0 + h * HOUR + timedelta(seconds=float(s))).isoformat(),
                "model": str(rng.choice(["m1", "m2", "m3"])), "prompt": f"question {i} " * int(rng.integers(1, 6)),
                "response": "" if refuse else f"answer {i}",
                "latency_ms": float(rng.lognormal(5 + (0.8 if h >= 3 else 0), 0.3)),
                "input_tokens": int(rng.integers(5, 50))}))
    good = len(rows)
    for k in (100, 170, 230):  # placed by the nearest earlier good line: counted in that line's window
        rows.insert(k, "{not json")
    folder.mkdir()
    for k, chunk in enumerate(np.array_split(np.arange(len(rows)), files)):
        (folder / f"part-{k}.jsonl").write_text("\n".join(rows[i] for i in chunk) + "\n", encoding="utf-8")
    return good


def _config(tmp_path: Path, executor: str, reference: str) -> Any:
    ref = ("reference: {kind: fixed, start: '2026-11-01T00:00:00Z', end: '2026-11-01T02:00:00Z'}"
           if reference == "fixed" else "reference: {kind: previous}")
    return load_monitor_text(textwrap.dedent(f"""\
        name: m
        source: {{kind: jsonl, path: traffic, on_corrupt: quarantine}}
        window: {{size: 1h}}
        {ref}
        executor: {executor}
        spark: {{master: 'local[2]'}}
        signals: [{{name: text, language: false}}, usage]
        drift: {{text_drift: false, html: false, reservoir_rows: 40}}
        tracking: {{enabled: false}}
        alerts:
          rules:
            - {{metric: rate/text.response_empty, op: ">", value: 0.3}}
            - {{metric: p90/latency_ms, op: ">", value: 300}}
            - {{metric: drift_hist/psi/latency_ms, op: ">", value: 0.5}}
        output_dir: out-{executor}-{reference}
        """), "m.yaml", base_dir=tmp_path)


def _run(tmp_path: Path, executor: str, reference: str) -> MonitorResult:
    return run_monitor(_config(tmp_path, executor, reference), backfill=(T0 + 2 * HOUR, T0 + 6 * HOUR),
                       now=T0 + 7 * HOUR)


# sums, histogram quantiles and statistics that use the sums (normed Wasserstein): float round-off only


def test_spark_and_local_executors_give_the_same_windows(tmp_path: Path, spark_session: Any) -> None:
    """``reference.kind: previous`` (the default): a fit pass on Spark, then the summary pass; a fixed
    reference runs the same summary pass (its reference is read on the driver, as the local executor does)."""
    reference = "previous"
    _traffic(tmp_path / "traffic", 6)
    local, spark = _run(tmp_path, "local", reference), _run(tmp_path, "spark", reference)
    assert [o.window for o in spark.windows] == [o.window for o in local.windows] and len(local.windows) == 4
    assert [o.records for o in spark.windows] == [o.records for o in local.windows]
    assert (spark.rows_read, spark.processed, spark.quarantined) == (local.rows_read, local.processed,
                                                                      local.quarantined)
    assert local.quarantined == 3 and spark.stats is not None and local.stats is not None
    assert local.stats.partitions_read > len(local.windows)  # windows span files
    fit_pass = 2 if reference == "previous" else 1  # without a fixed reference a fit pass reads them first
    assert spark.stats.partitions_read == fit_pass * local.stats.partitions_read
    assert_same_windows(local, spark)  # counts, rates, shares, drift scores, quality: exact
    for a, b in zip(local.windows, spark.windows, strict=True):
        assert b.params["executor"] == "spark"
        assert {k: v for k, v in a.params.items() if k != "config_hash"} == {  # the hash differs by output_dir
            k: v for k, v in b.params.items() if k not in ("config_hash", "executor")}
    assert sum(k.startswith("drift/") for o in local.windows for k in o.metrics) >= 6  # drift ran
    assert sum(k.startswith("drift_hist/") for o in local.windows for k in o.metrics) >= 12
    assert any(x.metric.startswith("drift_hist/") for o in local.windows for x in o.alerts)  # usable in rules
    assert sum(len(o.alerts) for o in local.windows) >= 2  # the empty-response burst and the latency shift fired
    # quarantined rows: the JSON lines file as before, and a Parquet dataset next to the window folders
    qdir = spark.windows[0].directory.parent.parent / "quarantine_parquet"
    bad = pd.read_parquet(qdir)
    assert len(bad) == spark.quarantined - spark.unplaced and set(bad["reason"]) == {"unparseable_json"}


def _parquet_traffic(root: Path) -> int:
    """Hive-partitioned Parquet over a day boundary (``dt=2026-11-01`` / ``dt=2026-11-02``, two files a day),
    tz-aware microsecond timestamps (pushed down), an alias (``ts``), a latency shift after midnight and rows
    without a timestamp (quarantined, unplaced: every read of their file reports them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    start = T0 + 20 * HOUR
    n = 600
    ts = pd.Series(pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, 6 * 3600, n)), unit="s"))
    frame = pd.DataFrame({"ts": ts.dt.floor("us"), "model": rng.choice(["m1", "m2"], n),
                          "prompt": [f"question {i}" for i in range(n)],
                          "response": np.where(rng.random(n) < 0.1, "", "an answer"),
                          "latency_ms": rng.lognormal(5, 0.3, n) * np.where(ts >= pd.Timestamp(T0 + 24 * HOUR), 2.5, 1)})
    frame.loc[[7, 311, 420], "ts"] = pd.NaT
    for day, rows in frame.groupby(ts.dt.strftime("%Y-%m-%d")):
        d = root / f"dt={day}"
        d.mkdir(parents=True)
        for k, part in enumerate(np.array_split(np.arange(len(rows)), 2)):
            table = pa.Table.from_pandas(rows.iloc[part], preserve_index=False)
            pq.write_table(table.cast(table.schema.set(0, pa.field("ts", pa.timestamp("us", tz="UTC")))),
                           d / f"part-{k}.parquet")
    return n


def test_spark_native_parquet_reads_equal_the_local_executor(tmp_path: Path, spark_session: Any) -> None:
    """``spark.reads: native``: the Parquet dataset read by ``spark.read.parquet`` (dt pruning, timestamp filter
    pushed down, rows grouped by file) gives the local executor's windows, metrics (histogram drift included),
    alerts and quarantine — across a day boundary, with an aliased timestamp and unplaced rows."""
    _parquet_traffic(tmp_path / "pq")
    lines: dict[str, list[str]] = {"local": [], "spark": []}
    results = {}
    for executor in ("local", "spark"):
        cfg = load_monitor_text(textwrap.dedent(f"""\
            name: m
            source: {{kind: parquet, path: pq}}
            window: {{size: 1h}}
            reference: {{kind: fixed, start: '2026-11-01T20:00:00Z', end: '2026-11-01T22:00:00Z'}}
            executor: {executor}
            spark: {{master: 'local[2]', reads: native}}
            signals: [{{name: text, language: false}}]
            drift: {{text_drift: false, html: false, reservoir_rows: 40}}
            tracking: {{enabled: false}}
            alerts: {{rules: [{{metric: drift_hist/psi/latency_ms, op: ">", value: 0.5}}]}}
            output_dir: out-{executor}
            """), "m.yaml", base_dir=tmp_path)
        results[executor] = run_monitor(cfg, backfill=(T0 + 22 * HOUR, T0 + 26 * HOUR), now=T0 + 27 * HOUR,
                                        log_fn=lines[executor].append)
    local, spark = results["local"], results["spark"]
    assert [o.records for o in spark.windows] == [o.records for o in local.windows] and len(local.windows) == 4
    assert sum(o.records for o in local.windows) > 300
    assert (spark.rows_read, spark.processed, spark.quarantined, spark.unplaced) == (
        local.rows_read, local.processed, local.quarantined, local.unplaced)
    assert local.unplaced == 3
    assert_same_windows(local, spark)
    assert [bool(o.alerts) for o in local.windows][2:] == [True, True]  # the shift after midnight
    n = local.stats.partitions_read if local.stats is not None else 0
    assert n == 16  # 4 windows x 4 files (their day and the day either side: partition_days); all via spark.read
    assert f"spark.read fed {n} of {n} (window, file) cells" in lines["spark"], lines["spark"]
