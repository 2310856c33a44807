"""Spark-native reads beyond Parquet on real PySpark (``local[2]``): JSON lines through ``spark.read.text`` +
the source's own parser, a catalog table (``spark.table``) and JDBC (SQLite through Debian's xerial driver) give
the local executor's windows, metrics and quarantine. One Spark session for the module (the active one if a
previous module started it)."""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalmon.config.monitor import SparkConfig, load_monitor_text
from evalmon.monitor.quarantine import reason_key
from evalmon.monitor.runner import MonitorResult, run_monitor

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SQLITE_JAR = "/usr/share/java/sqlite-jdbc.jar"  # Debian libxerial-sqlite-jdbc-java (Makefile system-deps)
APPROX = ("mean/", "std/", "p50/", "p90/", "p99/", "drift_hist/")  # sums and histogram quantiles: round-off


@pytest.fixture(scope="module")
def spark() -> Any:
    from pyspark.sql import SparkSession

    from evalmon.monitor.executors.spark_session import session

    mine = SparkSession.getActiveSession() is None
    spark = session(SparkConfig(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"}))
    yield spark
    if mine:
        spark.stop()


def _monitor(tmp_path: Path, name: str, executor: str, source: str, *, reads: str = "native",
             reservoir: int = 500) -> Any:
    """``reservoir``: drift rows per window (500: the whole window; fewer: a sample keyed by arrival)."""
    return load_monitor_text(textwrap.dedent(f"""\
        name: m
        source: {source}
        window: {{size: 1h}}
        reference: {{kind: fixed, start: '2026-11-01T00:00:00Z', end: '2026-11-01T01:00:00Z'}}
        executor: {executor}
        spark: {{master: 'local[2]', reads: {reads}}}
        signals: [{{name: text, language: false}}]
        drift: {{text_drift: false, html: false, reservoir_rows: {reservoir}, min_rows: 5}}
        tracking: {{enabled: false}}
        alerts: {{rules: [{{metric: p90/latency_ms, op: ">", value: 300}}]}}
        output_dir: out-{name}
        """), "m.yaml", base_dir=tmp_path)


def _run(cfg: Any, lines: list[str] | None = None) -> MonitorResult:
    return run_monitor(cfg, backfill=(T0 + HOUR, T0 + 4 * HOUR), now=T0 + 5 * HOUR,
                       log_fn=None if lines is None else lines.append)


def _same(local: MonitorResult, spark: MonitorResult) -> None:
    assert [o.window for o in spark.windows] == [o.window for o in local.windows] and len(local.windows) == 3
    assert [o.records for o in spark.windows] == [o.records for o in local.windows]
    assert (spark.rows_read, spark.processed, spark.quarantined, spark.unplaced, spark.by_reason) == (
        local.rows_read, local.processed, local.quarantined, local.unplaced, local.by_reason)
    for a, b in zip(local.windows, spark.windows, strict=True):
        assert a.metrics.keys() == b.metrics.keys()
        for k, v in a.metrics.items():  # counts, rates, shares, quarantine counts: exact
            w = b.metrics[k]
            same = (math.isnan(v) and math.isnan(w)) or (
                v == pytest.approx(w, rel=1e-9) if k.startswith(APPROX) else v == w)
            assert same, (a.window.key, k, v, w)
        assert [x.message() for x in a.alerts] == [x.message() for x in b.alerts]


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.uniform(0, 4 * 3600, n))
    return [{"request_id": f"r{seed}-{i}", "t": T0 + timedelta(seconds=float(s)), "model": str(rng.choice(["a", "b"])),
             "prompt": f"question {i}", "response": "" if rng.random() < 0.2 else f"answer {i}",
             "latency_ms": float(rng.lognormal(5 + (0.9 if s > 2.5 * 3600 else 0), 0.3))}
            for i, s in enumerate(secs)]


def _line(row: dict[str, Any], style: int) -> str:
    """One record with its time written one of six ways ``timeparse`` reads (Paris is the assumed zone)."""
    t: datetime = row["t"]
    rec = {k: v for k, v in row.items() if k != "t"}
    key, value = [("timestamp", t.isoformat().replace("+00:00", "Z")),
                  ("timestamp", t.astimezone(pd.Timestamp(0, tz="Etc/GMT-2").tz).isoformat()),  # +02:00
                  ("timestamp", t.timestamp()),  # epoch seconds (a float)
                  ("timestamp", int(t.timestamp() * 1000)),  # epoch milliseconds
                  ("timestamp", pd.Timestamp(t).tz_convert("Europe/Paris").tz_localize(None).isoformat()),  # naive
                  ("ts", str(int(t.timestamp())))][style % 6]  # an alias, epoch seconds as text
    return json.dumps({**rec, key: value})


def _jsonl_traffic(folder: Path) -> None:
    """Five files: a BOM and CRLF endings; every timestamp style; bad lines of every kind the python reader
    quarantines (unparseable JSON, a top-level array, a bare number, invalid UTF-8, a NUL byte, a record without
    a time); a gzipped file (read by the python reader in its task); a file without any usable time (its lines
    are unplaced)."""
    folder.mkdir()
    rows = _rows(240, 1)
    a = [_line(r, k) for k, r in enumerate(rows[0::3])]
    a[40:40] = ["{not json", '[{"timestamp": "2026-11-01T01:30:00Z"}, {"timestamp": "2026-11-01T01:31:00Z"}]', "42"]
    (folder / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(a).encode() + b"\r\n")
    b = [_line(r, k + 1).encode() for k, r in enumerate(rows[1::3])]
    b[40:40] = [b'{"prompt": "caf\xe9", "timestamp": "2026-11-01T02:10:00Z"}', b"", b'{"x": 1}\x00', b"   ",
                json.dumps({"prompt": "no time", "latency_ms": 3.0}).encode()]
    (folder / "b.jsonl").write_bytes(b"\n".join(b))  # no final newline
    with gzip.open(folder / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(_line(r, k + 2) for k, r in enumerate(rows[2::3])) + "\n{broken\n")
    (folder / "d.jsonl").write_text('{"prompt": "x", "timestamp": "soon"}\n{nope\n', encoding="utf-8")


def test_spark_native_jsonl_reads_equal_the_local_executor(tmp_path: Path, spark: Any) -> None:
    """The same YAML on the same JSON lines: ``spark.reads: native`` (spark.read.text, the source's parser in the
    task) gives the local executor's windows, metrics, alerts and quarantine — record for record."""
    _jsonl_traffic(tmp_path / "traffic")
    src = "{kind: jsonl, path: traffic, on_corrupt: quarantine, assume_timezone: Europe/Paris}"
    lines: list[str] = []
    local = _run(_monitor(tmp_path, "local", "local", src))
    native = _run(_monitor(tmp_path, "spark", "spark", src), lines)
    _same(local, native)
    reasons = set(local.by_reason)
    assert {"unparseable_json", reason_key("JSON line is not an object (got list)"), "invalid_utf-8",
            "file.corrupt", "timestamp.missing", "timestamp.unparseable"} <= reasons, reasons
    assert local.unplaced >= 2 and local.quarantined >= 8
    assert sum(o.records for o in local.windows) > 150
    assert any(o.alerts for o in local.windows)
    quarantine = {}
    for name, res in (("local", local), ("spark", native)):
        assert res.quarantine_file is not None
        quarantine[name] = sorted(Path(res.quarantine_file).read_text(encoding="utf-8").splitlines())
    assert quarantine["spark"] == quarantine["local"]  # same records, locations ("line 7, byte 1234"), reasons
    cells = native.stats.partitions_read if native.stats is not None else 0
    gz = 3  # c.jsonl.gz holds records of each of the 3 windows: read by the python reader in its task
    assert f"spark.read fed {cells - gz} of {cells} (window, file) cells" in lines, lines


def test_spark_json_reader_is_not_the_python_reader(tmp_path: Path, spark: Any) -> None:
    """Why JSON lines go through ``spark.read.text`` + the source's parser, not ``spark.read.json``: on this
    Spark a top-level array line becomes two rows (the python reader quarantines one line) and the corrupt
    record carries neither its line number nor a parser message; blank lines vanish."""
    f = tmp_path / "x.jsonl"
    f.write_text('{"timestamp": "2026-11-01T00:00:00Z", "prompt": "p", "response": "r"}\n\n'
                 '[{"timestamp": 1}, {"timestamp": 2}]\n{nope\n')
    rows = (spark.read.schema("timestamp string, prompt string, _corrupt_record string")
            .option("columnNameOfCorruptRecord", "_corrupt_record").json(str(f)).collect())
    assert len(rows) == 4 and [r._corrupt_record for r in rows] == [None, None, None, "{nope"]
    from evalmon.monitor.sources import build_source

    batch = build_source({"kind": "jsonl", "path": str(f)}, tmp_path).read()
    assert [(q.location, q.reason.split(":")[0]) for q in batch.quarantined] == [
        ("line 3", "JSON line is not an object (got list)"), ("line 4", "unparseable JSON")]


def _parquet(root: Path) -> pd.DataFrame:
    rows = _rows(300, 2)
    frame = pd.DataFrame(rows).rename(columns={"t": "timestamp"})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("us")
    frame.loc[[4, 150], "timestamp"] = pd.NaT  # no time: quarantined, unplaced
    (root / "dt=2026-11-01").mkdir(parents=True)
    frame.to_parquet(root / "dt=2026-11-01" / "part-0.parquet", index=False, coerce_timestamps="us")
    return frame


def test_spark_table_source_equals_the_parquet_source(tmp_path: Path, spark: Any) -> None:
    """A table registered in the session (``saveAsTable`` of the same Parquet data, kept in the test's folder)
    read with ``kind: spark_table`` gives, on the Spark executor (one ``spark.table`` per chunk, the time filter
    pushed into its scan) and on the local executor (through the active session), the Parquet source's windows."""
    _parquet(tmp_path / "pq")
    (spark.read.parquet(str(tmp_path / "pq")).drop("dt").write.mode("overwrite")
     .option("path", str(tmp_path / "tbl")).saveAsTable("evalmon_test_traffic"))
    lines: list[str] = []
    by_parquet = _run(_monitor(tmp_path, "pq", "local", "{kind: parquet, path: pq}"))
    table = "{kind: spark_table, table: evalmon_test_traffic}"
    on_spark = _run(_monitor(tmp_path, "tbl", "spark", table), lines)
    on_local = _run(_monitor(tmp_path, "tbl-local", "local", table))
    _same(by_parquet, on_spark)
    _same(by_parquet, on_local)
    assert by_parquet.unplaced == 2 and sum(o.records for o in by_parquet.windows) > 150
    assert "spark.read fed 3 of 3 (window, file) cells" in lines, lines
    plan = spark.table("evalmon_test_traffic").filter("timestamp >= '2026-11-01T01:00:00Z'")._jdf \
        .queryExecution().executedPlan().toString()
    assert "PushedFilters: [IsNotNull(timestamp), GreaterThanOrEqual(timestamp" in plan  # the filter reaches the scan


def test_spark_jdbc_source_equals_the_sql_source(tmp_path: Path, spark: Any) -> None:
    """``kind: spark_table, format: jdbc`` (SQLite through the xerial driver, a partitioned read) gives the
    ``kind: sql`` source's windows on the local executor: text timestamps of several styles, rows without one."""
    db = tmp_path / "t.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER, request_id TEXT, timestamp TEXT, model TEXT, prompt TEXT, "
                "response TEXT, latency_ms REAL)")
    rows = _rows(200, 3)
    styles = [_line(r, k % 5) for k, r in enumerate(rows)]  # the five styles with a `timestamp` key
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (i, r["request_id"], None if i in (7, 99) else str(json.loads(s)["timestamp"]), r["model"], r["prompt"],
         r["response"], r["latency_ms"]) for i, (r, s) in enumerate(zip(rows, styles, strict=True))])
    con.commit()
    con.close()
    spark.sql(f"ADD JAR {SQLITE_JAR}")
    sql = _run(_monitor(tmp_path, "sql", "local",
                        "{kind: sql, url: 'sqlite:///t.db', table: events, assume_timezone: Europe/Paris}"))
    jdbc = ("{kind: spark_table, assume_timezone: Europe/Paris, format: jdbc, options: {url: 'jdbc:sqlite:"
            + str(db) + "', dbtable: events, driver: org.sqlite.JDBC, partitionColumn: id, lowerBound: 0, "
            "upperBound: 200, numPartitions: 2}}")
    on_spark = _run(_monitor(tmp_path, "jdbc", "spark", jdbc))
    _same(sql, on_spark)
    assert sql.unplaced == 2 and sum(o.records for o in sql.windows) > 120


def test_delta_without_its_jars_is_one_line(tmp_path: Path, spark: Any) -> None:
    """No Delta jars here (delta-spark's wheel has none; Maven is unreachable): ``format: delta`` is one line
    naming the source and how to get Delta, before any window is read."""
    from evalmon.core.errors import DataError

    (tmp_path / "lake").mkdir()
    with pytest.raises(DataError) as err:
        _run(_monitor(tmp_path, "delta", "spark", "{kind: spark_table, format: delta, path: lake}"))
    line = err.value.one_line()
    assert "source 'lake': Spark cannot read format delta at" in line and "\n" not in line, line
    assert "delta-spark" in str(err.value.hint)
    assert not (tmp_path / "out-delta" / "m" / "windows").exists()


def test_spark_jdbc_timestamp_column_pushes_the_window_down(tmp_path: Path, spark: Any) -> None:
    """A JDBC table with a real TIMESTAMP column (Derby, embedded — its jars ship with pyspark): the window
    filter goes into the SQL ``WHERE`` (``PushedFilters``), the read is partitioned on the timestamp (3 JDBC
    partitions, then a shuffle), and the windows equal the local executor's on the same table — with a drift
    reservoir smaller than a window, so the rows' arrival order (a content order, whatever Spark's) must agree."""
    _parquet(tmp_path / "pq")
    url = f"jdbc:derby:{tmp_path / 'derby'};create=true"
    driver = "org.apache.derby.jdbc.EmbeddedDriver"
    spark.read.parquet(str(tmp_path / "pq")).drop("dt").write.jdbc(url, "events", properties={"driver": driver})
    jdbc = ("{kind: spark_table, format: jdbc, options: {url: '" + url + "', dbtable: events, driver: " + driver
            + ", partitionColumn: timestamp, lowerBound: '2026-11-01 00:00:00', upperBound: '2026-11-01 04:00:00',"
            " numPartitions: 3}}")
    cfg = _monitor(tmp_path, "derby", "spark", jdbc, reservoir=40)
    _same(_run(_monitor(tmp_path, "derby-local", "local", jdbc, reservoir=40)), _run(cfg))
    from evalmon.monitor.sources import build_source

    src = build_source(cfg.source, tmp_path)
    df = src.frame(spark)
    lo, hi = pd.Timestamp(T0 + HOUR), pd.Timestamp(T0 + 2 * HOUR)
    plan = df.filter(src.superset(df, lo, hi))._jdf.queryExecution().executedPlan().toString()
    assert "PushedFilters: [*Or(Or(Or(IsNull(timestamp),LessThan(timestamp," in plan, plan
