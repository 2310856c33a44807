"""Spark-native reads of ``source: {kind: spark_table}`` (a catalog table, ``format: delta``, ``format: jdbc``, …).

One read per chunk of windows: the source's DataFrame with the chunk's filter (``is null OR outside the plausible
span OR in [chunk start, chunk end)`` when the timestamp column is a Spark instant — Spark pushes it into the
scan: file/row-group skipping for Parquet and Delta, the ``WHERE`` clause for JDBC). Each row is sent to the
cell of its window (``explode`` of one ``when`` per window); a row without a usable time goes to every cell (each
window's read returns it, as for the Python read), and so does every row when the time column is not an instant
(text, epochs: parsed in the task, then cut). Per cell, the task runs what ``SparkTableSource.read`` runs on the
rows it fetched (``batch``: ``normalize_frame``, ``merge``), so parsing, quarantine and window assignment are the
local executor's. A window no row reached gets an empty result on the driver.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.executors.spark_tasks import Job
    from evalmon.monitor.sources.spark_table import SparkTableSource
    from evalmon.monitor.windows import Window

CELL_COL = "_evalmon_cell"


def table_task(job: Job, windows: dict[int, Window], instants: list[str]) -> Any:
    """The ``applyInPandas`` function: one cell's rows → its pickled ``CellResult``."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        import pickle

        import pandas as pd

        from evalmon.monitor.executors.spark_tasks import native_cell

        t = time.perf_counter()
        cell = int(pdf[CELL_COL].iloc[0])
        w = windows[cell]
        src = job.source
        batch = src.batch(pdf.drop(columns=[CELL_COL]), instants, w.start, w.end)
        res = native_cell(job, cell, src.name, batch, w, t)
        return pd.DataFrame({"cell": [cell], "payload": [pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)]})

    return run


def table_rows(spark: Any, source: SparkTableSource, job: Job, windows: list[Window],
               cells: list[tuple[int, int, str]]) -> list[Any]:
    from pyspark.sql import functions as F

    from evalmon.monitor.executors.spark_tasks import OUTPUT_SCHEMA, CellResult, cell_result
    from evalmon.monitor.pipeline import Ingested
    from evalmon.monitor.schema import empty_frame
    from evalmon.monitor.sources.base import check_window

    by_index = {w.index: w for w in windows}
    cell_window = {cell: by_index[idx] for cell, idx, _ in cells}
    lo, hi = check_window(windows[0].start, windows[-1].end)
    df = source.frame(spark)
    cond = source.superset(df, lo, hi)
    if cond is not None:
        df = df.filter(cond)
    col = source.time_column(df)
    if col is None:
        targets = [F.lit(cell) for cell in cell_window]
    else:
        ts = F.col(col)
        p_lo, p_hi = source.plausible.bounds()
        unusable = ts.isNull() | (ts < F.lit(p_lo.to_pydatetime())) | (ts > F.lit(p_hi.to_pydatetime()))
        targets = [F.when(unusable | ((ts >= F.lit(w.start)) & (ts < F.lit(w.end))), F.lit(cell))
                   for cell, w in cell_window.items()]
    df = df.withColumn(CELL_COL, F.explode(F.array(*targets))).filter(F.col(CELL_COL).isNotNull())
    df, instants = source.as_micros(df)
    from evalmon.monitor.executors.spark_session import collect

    rows = collect(df.groupBy(CELL_COL).applyInPandas(table_task(job, cell_window, instants), OUTPUT_SCHEMA),
                   f"source {source.name!r}, {job.mode} pass")
    found = {int(r.cell) for r in rows}
    empty: list[CellResult] = [cell_result(job, cell, Ingested(source.name, empty_frame()), time.perf_counter())
                               for cell in cell_window if cell not in found]
    return rows + [_Row(r) for r in empty]


class _Row:
    """A driver-made result shaped like a collected Spark row (``cell``, ``payload``)."""

    def __init__(self, res: Any) -> None:
        import pickle

        self.cell = res.cell
        self.payload = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
