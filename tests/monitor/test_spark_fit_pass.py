"""The Spark fit pass on real PySpark (``local[2]``) with a basis reservoir smaller than the span: once the
driver's reservoir is full, later fit jobs' cells ship only rows keyed below its bound — and the basis (hence
the fitted summary spec) is exactly the local executor's bottom-k of the whole span."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import load_monitor_text
from evalmon.monitor.executors.local import LocalExecutor, _Spill
from evalmon.monitor.executors.spark import SparkExecutor
from evalmon.monitor.pipeline import fit
from evalmon.monitor.runner import WindowSink
from evalmon.monitor.sources import build_source
from evalmon.monitor.windows import Window

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
HOURS, FILES, BASIS = 18, 3, 60  # 54 (window, file) cells: 3 jobs of 18 cells (6 windows); ~720 records


def _traffic(folder: Path) -> None:
    rng = np.random.default_rng(11)
    rows = []
    for h in range(HOURS):
        for s in np.sort(rng.uniform(0, 3600, 30 + 10 * (h % 3))):
            i = len(rows)
            rows.append(json.dumps({
                "request_id": f"r{i}", "timestamp": (T0 + h * HOUR + timedelta(seconds=float(s))).isoformat(),
                "model": str(rng.choice(["m1", "m2", "m3"])), "prompt": f"question {i} " * int(rng.integers(1, 6)),
                "response": f"answer {i}", "latency_ms": float(rng.lognormal(5, 0.4)),
                "input_tokens": int(rng.integers(5, 50))}))
    rows.insert(3, json.dumps({"request_id": "no-time", "prompt": "a record without a time"}))  # quarantined
    folder.mkdir()
    for k in range(FILES):  # every hour spans the files
        (folder / f"part-{k}.jsonl").write_text("\n".join(rows[k::FILES]) + "\n", encoding="utf-8")


def test_pruned_fit_pass_gives_the_local_executors_basis(tmp_path: Path, spark_session: Any) -> None:
    _traffic(tmp_path / "traffic")
    cfg = load_monitor_text(textwrap.dedent("""\
        name: m
        source: {kind: jsonl, path: traffic}
        window: {size: 1h}
        executor: spark
        spark: {master: 'local[2]'}
        signals: [{name: text, language: false}, usage]
        drift: {text_drift: false, html: false, reservoir_rows: 40}
        tracking: {enabled: false}
        output_dir: out
        """), "m.yaml", base_dir=tmp_path)
    span = [Window(T0 + i * HOUR, T0 + (i + 1) * HOUR, i) for i in range(HOURS)]
    source = build_source(cfg.source, cfg.base_dir)
    spark = SparkExecutor(cfg, source, WindowSink(cfg), basis_rows=BASIS, sample_rows=40, spark=spark_session)
    local = LocalExecutor(cfg, build_source(cfg.source, cfg.base_dir), WindowSink(cfg), basis_rows=BASIS,
                          sample_rows=40)
    try:
        ctx = spark._fit_on_span(span)
        spill = _Spill()
        basis = local._basis(span, spill)
        spill.close()
    finally:
        local.close()
        spark.close()
    assert spark.jobs == 3 and len(basis) == BASIS  # the reservoir was full after the first job
    seen = local.stats.records_read
    assert seen > 6 * BASIS and spark.stats.partitions_read == local.stats.partitions_read == HOURS * FILES
    # first job: 18 whole cells (a third of the records); later jobs: only rows below the bound
    assert spark.fit_rows_shipped < 0.6 * seen
    expected = fit(basis, cfg.drift, seed=cfg.seed, sample_rows=40)
    assert ctx.spec == expected.spec and ctx.plan == expected.plan
    assert isinstance(basis, pd.DataFrame) and basis["latency_ms"].notna().all()
    # the record without a time: the first window's summary cells ship it (the ledger's), its fit cells do not
    fit_cells = [r for _, r in spark._results(spark._job_spec("fit"), span[:1])]
    summary_cells = [r for _, r in spark._results(spark._job_spec("summary", ctx), span[:1])]
    assert [r.rows for r in fit_cells] == [r.rows for r in summary_cells] and len(fit_cells) == FILES
    assert [len(r.quarantined) for r in summary_cells] == [1, 0, 0] and not any(r.quarantined for r in fit_cells)
