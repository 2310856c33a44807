"""``executor:`` / ``spark:`` / ``drift.reservoir_rows`` in the monitor YAML, ``--executor``, and the one-line
error when pyspark is absent (in-process, no JVM: pyspark is never imported here)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from evalmon.config.monitor import apply_overrides, load_monitor_text
from evalmon.core.errors import ConfigError

YAML = textwrap.dedent("""\
    name: m
    source: {kind: jsonl, path: t.jsonl}
    window: {size: 1h}
    tracking: {enabled: false}
    """)


def _load(tmp_path: Path, extra: str = "") -> object:
    return load_monitor_text(YAML + extra, "m.yaml", base_dir=tmp_path)


def test_executor_and_reservoir_keys(tmp_path: Path) -> None:
    plain = _load(tmp_path)
    spark = _load(tmp_path, "executor: spark\nspark: {master: 'local[2]', conf: {spark.executor.memory: 2g}}\n")
    assert plain.executor == "local" and spark.executor == "spark" and spark.spark.master == "local[2]"
    assert plain.drift.reservoir_rows == 50_000
    # where the stages run does not change what they compute: same hash (an MLflow param of every window)
    assert spark.config_hash() == plain.config_hash()
    assert _load(tmp_path, "drift: {reservoir_rows: 50000}\n").config_hash() == plain.config_hash()
    assert _load(tmp_path, "drift: {reservoir_rows: 1000}\n").config_hash() != plain.config_hash()
    assert apply_overrides(plain, executor="spark").executor == "spark"


@pytest.mark.parametrize(("extra", "where"), [("executor: dask\n", "executor"),
                                               ("drift: {reservoir_rows: 0}\n", "drift.reservoir_rows"),
                                               ("spark: {mater: 'local[2]'}\n", "spark.mater"),
                                               ("spark: {reads: jvm}\n", "spark.reads")])
def test_bad_keys_are_one_line_errors(tmp_path: Path, extra: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, extra)
    assert where in str(err.value) and "\n" not in str(err.value)


def test_unknown_executor_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--executor: unknown executor 'ray'"):
        apply_overrides(_load(tmp_path), executor="ray")


def test_without_pyspark_a_one_line_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.monitor.executors.spark_session import import_pyspark

    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark → ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(ConfigError) as err:
        import_pyspark()
    assert "evalmon[spark]" in str(err.value.hint) and "pyspark" in str(err.value)


def test_spark_reads_picks_the_read_per_source_kind(tmp_path: Path) -> None:
    """``spark.reads``: auto (default) = spark.read for Parquet and JSON lines, the task's reader otherwise; native
    with a kind that has no Spark read is a one-line error; the choice does not enter the config hash."""
    from evalmon.monitor.executors.spark_reads import local_path, native_source
    from evalmon.monitor.sources import build_source

    plain = _load(tmp_path)
    assert plain.spark.reads == "auto"
    assert _load(tmp_path, "spark: {reads: python}\n").config_hash() == plain.config_hash()
    sql = build_source({"kind": "sql", "url": "sqlite:///t.db", "table": "t"}, tmp_path)
    parquet = build_source({"kind": "parquet", "path": "pq"}, tmp_path)
    assert [native_source(parquet, r) for r in ("auto", "native", "python")] == [True, True, False]
    assert [native_source(sql, r) for r in ("auto", "python")] == [False, False]
    with pytest.raises(ConfigError) as err:
        native_source(sql, "native")
    assert "spark.reads: native" in str(err.value) and "\n" not in err.value.one_line()
    assert "spark.reads: auto" in str(err.value.hint)
    assert local_path("file:///data/dt%3D2026-11-01/part-0.parquet") == "/data/dt=2026-11-01/part-0.parquet"
    assert local_path("s3a://bucket/x.parquet") == "s3a://bucket/x.parquet"
