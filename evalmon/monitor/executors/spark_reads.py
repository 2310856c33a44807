"""Spark-native reads for ``executor: spark`` (``spark.reads``): the source read by ``spark.read``, not by each
task's Python reader — so the path need only be readable by Spark's file systems (HDFS, S3, DBFS …).

Parquet (``source: {kind: parquet}``): one ``spark.read.parquet`` per chunk of windows, restricted to the
chunk's time range the way the local reader restricts a window: partition pruning on the hive partition
column (``dt=YYYY-MM-DD``) and, when the timestamp column is a Parquet timestamp with a time zone, the filter
``is null OR outside the plausible span OR in [start, end)`` pushed into the scan (rows without a usable time
still reach the quarantine). Spark's hidden ``_metadata.file_path`` / ``_metadata.row_index`` columns name
each row's file and position; rows are grouped by file (``applyInPandas``) and, per (window, file) cell, the
task rebuilds the Arrow table of the file's rows in file order and runs exactly what
``ParquetSource.read_partition`` runs after its scan (the same window filter, ``_normalize`` with the same
arrival offset, ``merge``): canonical records, aliases, quarantine and window assignment equal the local
executor's by construction. A file whose rows cannot be rebuilt (a column type Spark reads differently, e.g.
nested structs) is read by the Python reader in the task instead; a cell whose file has no row in the chunk's
range is left to the Python read too (it reads nothing: the pushed filter finds no row).

JSONL/CSV (``spark_reads_lines.py``): ``spark.read.text`` of the chunk's files, each file's lines parsed in one task
by the source's own parser. ``kind: spark_table`` (``spark_reads_table.py``): ``spark.table`` / ``spark.read.format``
(Delta, JDBC, …) with the chunk's time filter pushed down. Other source kinds read in the task (``spark.reads:
python``); ``spark.reads: native`` with one is an error, and so is ``python`` with ``spark_table``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalmon.core.errors import ConfigError, DataError
from evalmon.monitor.contracts import TIMESTAMP
from evalmon.monitor.executors.spark_reads_lines import local_path

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.contracts import Source
    from evalmon.monitor.executors.spark_tasks import Job
    from evalmon.monitor.windows import Window

FILE_COL, ROW_COL = "_evalmon_file", "_evalmon_row"


def native_source(source: Source, reads: str) -> bool:
    """Whether this run reads ``source`` with ``spark.read`` (``reads``: auto | native | python)."""
    from evalmon.monitor.executors.spark_reads_lines import is_line_source
    from evalmon.monitor.sources.parquet import ParquetSource
    from evalmon.monitor.sources.spark_table import SparkTableSource

    if isinstance(source, SparkTableSource):
        if reads == "python":
            raise ConfigError(f"spark.reads: python: source {source.name!r} (kind: spark_table) is read by Spark "
                              "itself, not by a reader inside the tasks",
                              hint="set spark.reads: auto (or native), or drop spark.reads")
        return True
    if reads == "python":
        return False
    if isinstance(source, ParquetSource) or is_line_source(source):
        return True
    if reads == "native":
        raise ConfigError(f"spark.reads: native: source {source.name!r} has no Spark read (kinds with one: parquet, "
                          "jsonl, csv, spark_table)",
                          hint="set spark.reads: auto (or python): the tasks then run the source's own reader")
    return False


def other_rows(spark: Any, source: Any, job: Job, windows: list[Window], cells: list[tuple[int, int, str]],
               python_rows: Any) -> list[Any] | None:
    """The chunk's cells read natively for a non-Parquet source (None: Parquet, read below)."""
    from evalmon.monitor.executors.spark_reads_lines import is_line_source, line_rows
    from evalmon.monitor.sources.spark_table import SparkTableSource

    if is_line_source(source):
        return line_rows(spark, source, job, cells, python_rows)
    if isinstance(source, SparkTableSource):
        from evalmon.monitor.executors.spark_reads_table import table_rows

        return table_rows(spark, source, job, windows, cells)
    return None


@dataclass
class NativeJob:
    """What the grouped task needs besides the ``Job``: which cells each file feeds, its ordinal, the schema."""

    cells: dict[str, list[tuple[int, int]]]  # file → [(cell, window index)]
    ordinals: dict[str, int]  # file → its position among the dataset's fragments (the arrival offset)
    schema: Any  # the pyarrow dataset schema the local reader scans with
    session_tz: str  # Spark hands TIMESTAMP (with time zone) columns to pandas as naive times in this zone
    ltz: tuple[str, ...] = ()  # columns Spark reads as TIMESTAMP (instants)
    fallback: list[str] = field(default_factory=list)


def parquet_frame(spark: Any, source: Any, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[Any, Any]:
    """(Spark DataFrame of the chunk's candidate rows with file/row columns, pyarrow schema) or (None, None)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    from evalmon.monitor.schema import resolve_columns
    from evalmon.monitor.sources.files import expand_paths

    dataset = source._dataset()
    if dataset is None:
        return None, None
    p = Path(source.path).expanduser()
    p = p if p.is_absolute() else source.base_dir / p
    paths = [str(p)] if p.is_dir() else [str(f) for f in expand_paths(source.path, source.base_dir, (".parquet",))]
    other = other_types(dataset)  # read by the source's reader in their tasks (their cells get no row here)
    if other:
        paths = [f.path for f in dataset.get_fragments() if f.path not in other]
        if not paths:
            return None, None
    reader = spark.read.option("basePath", str(p)) if p.is_dir() else spark.read
    try:
        df = reader.parquet(*paths)
    except Exception as exc:  # AnalysisException & co: a one-line error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"spark.read.parquet({p}) failed: {first}",
                        hint="set spark.reads: python to read with the source's own reader") from None
    df = df.select("*", F.col("_metadata.file_path").alias(FILE_COL), F.col("_metadata.row_index").alias(ROW_COL))
    schema = dataset.schema
    cond = None
    part = source.partition_column if source.partition_column in schema.names else None
    if part is not None and part in df.columns:  # partition pruning: dt within a day of the chunk's (partition_days)
        from evalmon.monitor.sources.parquet import partition_days

        first, last = partition_days(lo, hi)
        assert first is not None and last is not None  # a chunk has both bounds
        col = F.col(part).cast("string")  # a value that is no date is never pruned
        cond = col.isNull() | ~col.rlike(r"^\d{4}-\d{2}-\d{2}$") | (
            (col >= first.isoformat()) & (col <= last.isoformat()))
    ts_cols = resolve_columns(schema.names, source.columns)[TIMESTAMP]
    if len(ts_cols) == 1 and pa.types.is_timestamp(schema.field(ts_cols[0]).type) \
            and schema.field(ts_cols[0]).type.tz is not None and dict(df.dtypes).get(ts_cols[0]) == "timestamp":
        ts = F.col(ts_cols[0])
        p_lo, p_hi = source.plausible.bounds()
        keep = ts.isNull() | (ts < F.lit(p_lo.to_pydatetime())) | (ts > F.lit(p_hi.to_pydatetime())) | (
            (ts >= F.lit(lo.to_pydatetime())) & (ts < F.lit(hi.to_pydatetime())))
        cond = keep if cond is None else cond & keep
    return (df if cond is None else df.filter(cond)), schema


_TYPES: dict[tuple[str, float, int, str], bool] = {}  # (file, mtime, size, dataset schema) → types differ


def other_types(dataset: Any) -> set[str]:
    """The dataset's files whose own Parquet schema gives a column of the dataset's schema another type (an
    ``int64`` latency in a ``double`` dataset, nanosecond times): the local reader casts them to the dataset's
    schema, ``spark.read.parquet`` fails on them (``PARQUET_COLUMN_DATA_TYPE_MISMATCH``). Footers only, each
    read once per process."""
    import os

    schema, key = dataset.schema, dataset.schema.to_string()
    out: set[str] = set()
    for frag in dataset.get_fragments():
        try:
            st = os.stat(frag.path)
            k = (frag.path, st.st_mtime, st.st_size, key)
        except OSError:
            k = (frag.path, 0.0, -1, key)
        if k not in _TYPES:
            try:
                phys = frag.physical_schema
                _TYPES[k] = any(schema.get_field_index(f.name) >= 0
                                and not f.type.equals(schema.field(f.name).type) for f in phys)
            except Exception:  # an unreadable footer: the source's reader reports it as it does locally
                _TYPES[k] = True
        if _TYPES[k]:
            out.add(frag.path)
    return out


def _table(pdf: pd.DataFrame, native: NativeJob) -> Any:
    """The file's rows (in file order) as the Arrow table the local reader's scan gives."""
    import pyarrow as pa

    pdf = pdf.sort_values(ROW_COL, kind="mergesort")
    arrays = []
    for f in native.schema:
        col = pdf[f.name]
        if f.name in native.ltz and getattr(col.dt, "tz", None) is None:
            col = col.dt.tz_localize(native.session_tz)
        arrays.append(pa.array(col, from_pandas=True).cast(f.type))
    return pa.Table.from_arrays(arrays, schema=native.schema)


def grouped_task(job: Job, native: NativeJob) -> Any:
    """The ``applyInPandas`` function: one file's rows of the chunk → one pickled ``CellResult`` per cell."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        import pickle

        import pandas as pd
        import pyarrow as pa

        from evalmon.monitor.executors.spark_tasks import native_cell, run_cell
        from evalmon.monitor.sources.base import Part, check_window, merge

        path = local_path(str(pdf[FILE_COL].iloc[0]))
        cells = native.cells.get(path, [])
        out_cells, blobs = [], []
        try:
            table = _table(pdf, native) if cells else None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError, KeyError):
            table = None  # read by the source's own reader below
        src = job.source
        for cell, idx in cells:
            t = time.perf_counter()
            w: Window = job.windows[idx]
            if table is None:
                res = run_cell(job, cell, w, path)
            else:
                lo, hi = check_window(w.start, w.end)
                expr, part_col = src._filter(native.schema, lo, hi)
                sub = table.filter(expr) if expr is not None else table
                norm = src._normalize(sub, part_col, arrival_offset=native.ordinals[path] << 32)
                batch = merge([Part(name=path, norm=norm)], w.start, w.end, {"files": 1, "source": src.name,
                                                                              "partition": path})
                res = native_cell(job, cell, path, batch, w, t)
            out_cells.append(cell)
            blobs.append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        return pd.DataFrame({"cell": pd.Series(out_cells, dtype="int64"), "payload": pd.Series(blobs, dtype=object)})

    return run


def native_job(spark: Any, source: Any, cells: list[tuple[int, int, str]]) -> NativeJob:
    """The cells grouped by file, with each file's ordinal among the dataset's fragments."""
    dataset = source._dataset()
    fragments = [f.path for f in dataset.get_fragments()] if dataset is not None else []
    by_file: dict[str, list[tuple[int, int]]] = {}
    for cell, idx, part in cells:
        by_file.setdefault(part, []).append((cell, idx))
    tz = str(spark.conf.get("spark.sql.session.timeZone"))
    return NativeJob(by_file, {f: i for i, f in enumerate(fragments)}, dataset.schema if dataset else None, tz)
