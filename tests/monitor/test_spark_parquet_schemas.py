"""``executor: spark`` on a Parquet dataset whose files disagree on a column's type (real PySpark ``local[2]``).

The local reader scans every file with the dataset's schema (pyarrow casts a file's ``int64`` latency to the
dataset's ``double``); ``spark.read.parquet`` cannot (``PARQUET_COLUMN_DATA_TYPE_MISMATCH`` when a task reaches
the file). Such a file is read by the source's own reader in its task, so both executors give the same windows;
a Spark job that fails anyway is one line (exit 2), not an internal error.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from spark_util import assert_same_windows

from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import DataError
from evalmon.monitor.runner import MonitorResult, run_monitor

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _dataset(root: Path, seed: int = 3) -> int:
    """Two days, two files a day; ``dt=2026-11-02/part-1`` stores ``latency_ms`` as int64 (the others: double),
    lacks ``input_tokens`` and has an extra column. Returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = 240
    ts = pd.Series(pd.Timestamp(T0 + 22 * HOUR) + pd.to_timedelta(np.sort(rng.uniform(0, 4 * 3600, n)), unit="s"))
    frame = pd.DataFrame({"timestamp": ts.dt.floor("us"), "model": rng.choice(["m1", "m2"], n),
                          "prompt": [f"question {i}" for i in range(n)], "response": "an answer",
                          "latency_ms": rng.lognormal(5, 0.3, n).round(), "input_tokens": rng.integers(5, 50, n)})
    for day, rows in frame.groupby(ts.dt.strftime("%Y-%m-%d")):
        d = root / f"dt={day}"
        d.mkdir(parents=True)
        for k, part in enumerate(np.array_split(np.arange(len(rows)), 2)):
            sub = rows.iloc[part].reset_index(drop=True)
            if day == "2026-11-02" and k == 1:
                sub = sub.drop(columns=["input_tokens"]).assign(latency_ms=sub["latency_ms"].astype("int64"),
                                                                extra="x")
            table = pa.Table.from_pandas(sub, preserve_index=False)
            pq.write_table(table.cast(table.schema.set(0, pa.field("timestamp", pa.timestamp("us", tz="UTC")))),
                           d / f"part-{k}.parquet")
    return n


def _run(tmp_path: Path, executor: str, reads: str = "auto") -> tuple[MonitorResult, list[str]]:
    cfg = load_monitor_text(textwrap.dedent(f"""\
        name: m
        source: {{kind: parquet, path: pq}}
        window: {{size: 1h}}
        reference: {{kind: previous}}
        executor: {executor}
        spark: {{master: 'local[2]', reads: {reads}}}
        signals: [{{name: text, language: false}}, usage]
        drift: {{text_drift: false, html: false, reservoir_rows: 40}}
        tracking: {{enabled: false}}
        alerts: {{rules: [{{metric: p90/latency_ms, op: ">", value: 250}}]}}
        output_dir: out-{executor}-{reads}
        """), "m.yaml", base_dir=tmp_path)
    lines: list[str] = []
    res = run_monitor(cfg, backfill=(T0 + 22 * HOUR, T0 + 26 * HOUR), now=T0 + 27 * HOUR, log_fn=lines.append)
    return res, lines


def test_files_with_another_column_type_give_the_local_windows(tmp_path: Path, spark_session: Any) -> None:
    n = _dataset(tmp_path / "pq")
    local, _ = _run(tmp_path, "local")
    spark, lines = _run(tmp_path, "spark")
    assert sum(o.records for o in local.windows) == n
    assert [o.records for o in spark.windows] == [o.records for o in local.windows]
    assert (spark.rows_read, spark.processed, spark.quarantined) == (local.rows_read, local.processed,
                                                                     local.quarantined)
    assert_same_windows(local, spark)
    fed = [m for m in lines if m.startswith("spark.read fed")]
    assert fed and not fed[0].startswith("spark.read fed 0 "), lines  # the other files still read by Spark


def test_a_failed_spark_job_is_one_line(tmp_path: Path, spark_session: Any) -> None:
    """A file Spark cannot read (garbage after a valid Parquet footer of the dataset's first file is not
    needed: a truncated copy of a data file) stops the run with one ``DataError`` naming the failure."""
    _dataset(tmp_path / "pq")
    victim = tmp_path / "pq" / "dt=2026-11-02" / "part-0.parquet"
    data = victim.read_bytes()
    victim.write_bytes(data[:100] + data[-(len(data) // 2):])  # header and footer kept, column chunks broken
    with pytest.raises(DataError) as info:
        _run(tmp_path, "spark", reads="native")
    msg = info.value.one_line()
    assert "\n" not in msg and "part-0.parquet" in msg and "Traceback" not in msg, msg
