"""Spark-native reads of line files (``source: {kind: jsonl | csv}``, ``spark.reads: auto | native``).

One ``spark.read.text`` per chunk of windows over the chunk's files (``lineSep`` ``\\n``, the line as bytes —
invalid UTF-8 and ``\\r`` kept as they are in the file). Spark splits the files, reads them through its own file
systems and hands each file's lines to one grouped task (``groupBy(file).applyInPandas``); the task puts them
back in file order (``_metadata.file_block_start``, then the position in the split), numbers them and feeds them,
with their byte offsets, to the source's own line parser (``FileSource.index_lines``: BOM, NUL bytes, invalid
UTF-8, JSON/CSV parsing, the column mapping, ``timeparse``, neighbour placement of bad lines). Each
(window, file) cell is then that file's index cut to the window with the file's arrival offset — records,
quarantine (reasons, locations, raw text, placed times) and window assignment are the local executor's by
construction.

Why not ``spark.read.json`` (with an explicit schema from the column mapping): on this Spark (4.3) it cannot give
the python reader's answer line for line — a line holding a top-level JSON array becomes one row per element
(the python reader quarantines the line: "not an object"), a corrupt record (``_corrupt_record``) carries no line
number, byte offset or parser message (the quarantine's location and reason), blank lines vanish from the
numbering, and what it does with a value of the wrong JSON type depends on the schema's type. Checked on this
machine (``test_spark_native_reads.py::test_spark_json_reader_is_not_the_python_reader``).

Compressed files (``.gz``) are read by the source's reader in the task (Hadoop's codec stops the whole job on a
truncated stream, where ``on_corrupt: quarantine`` keeps the readable part), and so is a file Spark's listing
names differently from the source (a glob character in its name) or a file that has no line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import pandas as pd

    from evalmon.monitor.executors.spark_tasks import Job

FILE_COL, BLOCK_COL, POS_COL, RAW_COL = "_evalmon_file", "_evalmon_block", "_evalmon_pos", "_evalmon_raw"
SIZE_COL = "_evalmon_size"
BOM = b"\xef\xbb\xbf"


def local_path(uri: str) -> str:
    """``file:///a/b%20c.parquet`` → ``/a/b c.parquet`` (how pyarrow names the fragment); other schemes as is."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def is_line_source(source: Any) -> bool:
    from evalmon.monitor.sources.files import FileSource

    return isinstance(source, FileSource)


def numbered(raws: Iterable[bytes], size: int) -> Iterator[tuple[int, int, bytes]]:
    """A file of ``size`` bytes as its lines (without their ``\\n``, in order) → ``(line number, byte offset,
    line)`` as ``files.read_lines`` yields them. Hadoop's reader drops a UTF-8 BOM from line 1 (as the python
    reader does); the 3 bytes it leaves out of the lines tell it was there, and the offsets count them."""
    lines = [bytes(raw) + b"\n" for raw in raws]
    offset = 3 if size - sum(map(len, lines)) >= 2 else 0  # no BOM: 0 (a final \\n) or -1; a BOM: 3 or 2
    for lineno, line in enumerate(lines, 1):
        if lineno == 1 and line.startswith(BOM):  # a reader that keeps it
            offset, line = 3, line[3:]
        yield lineno, offset, line
        offset += len(line)


def lines_frame(spark: Any, files: list[str]) -> Any:
    """The files' lines: file URI, split start, position in the split, the line's bytes."""
    from pyspark.sql import functions as F

    df = spark.read.option("lineSep", "\n").text(files)
    return df.select(F.col("_metadata.file_path").alias(FILE_COL), F.col("_metadata.file_block_start").alias(BLOCK_COL),
                     F.monotonically_increasing_id().alias(POS_COL), F.col("value").cast("binary").alias(RAW_COL),
                     F.col("_metadata.file_size").alias(SIZE_COL))


def lines_task(job: Job, cells: dict[str, list[tuple[int, int]]], offsets: dict[str, tuple[str, int]]) -> Any:
    """The ``applyInPandas`` function: one file's lines → one pickled ``CellResult`` per (window, file) cell.
    A file the parser stops on (``on_corrupt: fail``) returns nothing: its cells go to the Python read, which
    raises the same error as before."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        import pickle

        import pandas as pd

        from evalmon.core.errors import EvalmonError
        from evalmon.monitor.executors.spark_tasks import native_cell

        spark_path = local_path(str(pdf[FILE_COL].iloc[0]))
        out_cells: list[int] = []
        blobs: list[bytes] = []
        mine = cells.get(spark_path, []) if spark_path in offsets else []
        if mine:
            path, offset = offsets[spark_path]
            t = time.perf_counter()
            pdf = pdf.sort_values([BLOCK_COL, POS_COL], kind="mergesort")
            src = job.source
            try:
                index = src.index_lines(Path(path), numbered(pdf[RAW_COL], int(pdf[SIZE_COL].iloc[0])))
            except EvalmonError:
                mine = []
            for cell, idx in mine:
                w = job.windows[idx]
                batch = src.index_batch(path, index, offset, w.start, w.end)
                res = native_cell(job, cell, path, batch, w, t)
                out_cells.append(cell)
                blobs.append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
                t = time.perf_counter()
        return pd.DataFrame({"cell": pd.Series(out_cells, dtype="int64"), "payload": pd.Series(blobs, dtype=object)})

    return run


def line_rows(spark: Any, source: Any, job: Job, cells: list[tuple[int, int, str]],
              python_rows: Callable[[Job, list[tuple[int, int, str]]], list[Any]]) -> list[Any]:
    """The chunk's cells: files read by ``spark.read.text`` and parsed per file; the rest by ``python_rows``."""
    from evalmon.monitor.executors.spark_tasks import OUTPUT_SCHEMA

    by_file: dict[str, list[tuple[int, int]]] = {}  # the file as Spark names it (absolute) → its cells
    for cell, idx, part in cells:
        if not part.endswith(".gz"):
            by_file.setdefault(str(Path(part).absolute()), []).append((cell, idx))
    rows: list[Any] = []
    if by_file:
        # the driver's indexes (partitions): the source's name of each file and its arrival offset
        offsets = {str(f.absolute()): (str(f), offset) for f, _, offset in source._indexed()}
        frame = lines_frame(spark, sorted(by_file))
        from evalmon.monitor.executors.spark_session import collect

        rows = collect(frame.groupBy(FILE_COL).applyInPandas(lines_task(job, by_file, offsets), OUTPUT_SCHEMA),
                       f"{job.mode} pass, spark.read.text")
    found = {int(r.cell) for r in rows}
    missing = [c for c in cells if c[0] not in found]
    return rows + (python_rows(job, missing) if missing else [])
