"""Traffic that Spark reads (``source: {kind: spark_table}``): a table the session knows (``table: db.events``;
Hive metastore, Unity Catalog, a Delta table) or a ``spark.read.format(format)`` read (``format: delta`` +
``path``; ``format: jdbc`` + ``options: {url, dbtable, driver, numPartitions, …}``).

Reads go through the active SparkSession — the monitor's with ``executor: spark`` (``spark_reads_table.py``:
one read per chunk of windows, rows sent to their window's task), the notebook's or ``spark-submit``'s with
``executor: local``. When the timestamp column is a Spark ``timestamp`` (an instant) the window's filter
``is null OR outside the plausible span OR in [start, end)`` goes into the read, so Spark pushes it into the
scan (Parquet/Delta: file and row-group skipping; JDBC: the ``WHERE`` clause); other timestamp columns (text,
epoch numbers, ``timestamp_ntz``) are read whole and cut after parsing. Either way the rows are parsed by the
shared routine (``normalize_frame``: aliases, ``timeparse``, quarantine) and cut to [start, end) after it, like
every other source. Rows without a usable time are quarantined *unplaced* (a table has no line order to place
them by). Spark fixes no row order (JDBC partitions, files, shuffles), so a read's rows are put in time order
(ties: by a hash of their content) before parsing: ``arrival`` — which breaks timestamp ties, seeds the drift
reservoir's keys and orders the ``increasing`` quality check — is then the same on every read of the same rows,
by either executor (a table has no logging order of its own to check).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError, DataError
from evalmon.monitor.contracts import TIMESTAMP, SourceBatch
from evalmon.monitor.schema import TIME_UNITS, normalize_frame, resolve_columns
from evalmon.monitor.sources.base import Part, check_window, merge
from evalmon.monitor.timeparse import Plausible, parse_times

_DELTA_HINT = ("install delta-spark matching pyspark and start Spark with its jars (Databricks has them), or point "
               "the source at the table's Parquet files (kind: parquet)")


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SparkTableSource:
    def __init__(self, name: str, base_dir: Path, *, table: str | None, path: str | None, format: str | None,
                 options: dict[str, str], columns: dict[str, str], assume_timezone: str, keep: Sequence[str] = (),
                 plausible: Plausible | None = None) -> None:
        self.name = name
        self.table = table
        self.format = format
        self.options = dict(options)
        self.path = None if path is None else str(path if "://" in path or Path(path).is_absolute()
                                                  else (Path(base_dir) / path).resolve())
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self.plausible = plausible or Plausible()
        self._provider: Callable[[], Any] | None = None

    def use_session(self, provider: Callable[[], Any]) -> None:
        """Where the session comes from when none is active (``executor: spark``: its own, started on demand)."""
        self._provider = provider

    def __getstate__(self) -> dict[str, Any]:  # pickled into Spark tasks: without the driver's session
        return {**self.__dict__, "_provider": None}

    # ------------------------------------------------------------------ Spark side

    def session(self) -> Any:
        """The active SparkSession (a notebook's, spark-submit's), else the monitor's (``use_session``)."""
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise ConfigError("source kind spark_table needs pyspark, which is not installed",
                              hint="pip install 'evalmon[spark]', or run in a Spark notebook / spark-submit") from None
        spark = SparkSession.getActiveSession() or (self._provider() if self._provider is not None else None)
        if spark is None:
            raise ConfigError("source kind spark_table needs a running Spark session",
                              hint="set executor: spark (or --executor spark), or run inside a Spark notebook")
        return spark

    def frame(self, spark: Any) -> Any:
        """The whole source as a Spark DataFrame (lazy: filters added later are pushed into its scan)."""
        what = self.table or f"format {self.format}" + (f" at {self.path}" if self.path else "")
        try:
            if self.table is not None:
                return spark.table(self.table)
            reader = spark.read.format(self.format).options(**self.options)
            return reader.load(self.path) if self.path is not None else reader.load()
        except Exception as exc:  # AnalysisException, Py4JJavaError (driver class missing): one line
            first = _first(exc)
            hint = _DELTA_HINT if self.format == "delta" else (
                "check the name (spark.catalog.listTables()) and the session's catalog" if self.table else
                "check source.options (jdbc: url, dbtable or query, driver; the driver's jar in spark.jars)")
            raise DataError(f"source {self.name!r}: Spark cannot read {what}: {first}", hint=hint) from None

    def time_column(self, df: Any) -> str | None:
        """The timestamp column when Spark holds it as an instant (``timestamp``): a filter on it is exact."""
        cols = resolve_columns(df.columns, self.columns)[TIMESTAMP]
        return cols[0] if len(cols) == 1 and dict(df.dtypes).get(cols[0]) == "timestamp" else None

    def superset(self, df: Any, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> Any:
        """``is null OR outside the plausible span OR in [lo, hi)`` on an instant column, else None."""
        from pyspark.sql import functions as F

        col = self.time_column(df)
        if col is None or (lo is None and hi is None):
            return None
        ts = F.col(col)
        p_lo, p_hi = self.plausible.bounds()
        window = F.lit(True)
        if lo is not None:
            window = window & (ts >= F.lit(lo.to_pydatetime()))
        if hi is not None:
            window = window & (ts < F.lit(hi.to_pydatetime()))
        return ts.isNull() | (ts < F.lit(p_lo.to_pydatetime())) | (ts > F.lit(p_hi.to_pydatetime())) | window

    @staticmethod
    def as_micros(df: Any) -> tuple[Any, list[str]]:
        """``timestamp`` columns as microseconds since the epoch (pandas would get naive times in the session's
        time zone, ambiguous at a DST change) and their names."""
        from pyspark.sql import functions as F

        instants = [c for c, kind in df.dtypes if kind == "timestamp"]
        if not instants:
            return df, instants
        return df.select(*(F.unix_micros(F.col(c)).alias(c) if c in instants else F.col(c) for c in df.columns)), \
            instants

    # ------------------------------------------------------------------ rows → the windowed batch

    def batch(self, pdf: pd.DataFrame, instants: Sequence[str], start: datetime | None,
              end: datetime | None) -> SourceBatch:
        """Rows Spark handed over (``instants``: its ``timestamp`` columns, as ``as_micros`` gives them) → the
        source's batch of [start, end): parsed, quarantined and cut like every source."""
        pdf = pdf.reset_index(drop=True)
        for c in instants:
            if c in pdf.columns:
                pdf[c] = pd.to_datetime(pdf[c], unit="us", utc=True)
        if len(pdf) > 1:
            pdf = pdf.iloc[self._order(pdf)].reset_index(drop=True)
        norm = normalize_frame(pdf, source=self.name, mapping=self.columns, assume_timezone=self.assume_timezone,
                               keep=self.keep, strict_columns=True, plausible=self.plausible)
        return merge([Part(name=self.name, norm=norm)], start, end, {"files": 0, "source": self.name})

    def _order(self, pdf: pd.DataFrame) -> np.ndarray:
        """Spark fixes no row order (JDBC partitions, files, shuffles): rows go in time order (the time as
        ``timeparse`` reads it; none last), ties by a hash of their content — the same on every read."""
        content = pd.util.hash_pandas_object(pdf.astype(str), index=False).to_numpy()
        cols = resolve_columns(pdf.columns, self.columns)[TIMESTAMP]
        if not cols:
            return np.argsort(content, kind="stable")
        parsed = parse_times(pdf[cols[0]], unit=TIME_UNITS.get(cols[0]), tz=self.assume_timezone, check=False).parsed
        ns = pd.DatetimeIndex(parsed).asi8.copy()
        ns[pd.isna(parsed).to_numpy()] = np.iinfo(np.int64).max
        return np.lexsort((content, ns))

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        lo, hi = check_window(start, end)
        spark = self.session()
        df = self.frame(spark)
        cond = self.superset(df, lo, hi)
        if cond is not None:
            df = df.filter(cond)
        df, instants = self.as_micros(df)
        try:
            pdf = df.toPandas()
        except Exception as exc:  # a failing scan (missing files, a JDBC error): one line
            raise DataError(f"source {self.name!r}: Spark read failed: {_first(exc)}") from None
        return self.batch(pdf, instants, start, end)

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]:
        return [self.name]  # one partition: Spark splits the scan itself

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
        return self.read(start, end)
