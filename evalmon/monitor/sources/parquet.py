"""Parquet traffic, usually date-partitioned (``dt=YYYY-MM-DD/part-*.parquet``, hive style).

A window [start, end) reads only the partitions whose date can hold rows of the window (its UTC dates and a
day either side, and every partition whose value is no date: ``partition_days``), each file by its own schema,
and, when the timestamp column is a Parquet timestamp, pushes the time filter into the scan — ``is_null OR
[start, end) OR outside the plausible span``, so rows without a usable time still reach the quarantine
(*unplaced*: reported by every run that reads their partition). Timestamps are parsed by the shared routine and the exact [start, end) cut is made after normalisation either way. The monitor's windowed
reads take one fragment (file) at a time (``partitions`` / ``read_partition``) with the same filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from evalmon.core.errors import DataError
from evalmon.monitor.contracts import TIMESTAMP, SourceBatch
from evalmon.monitor.schema import Normalized, normalize_frame, resolve_columns
from evalmon.monitor.sources.base import Part, check_window, merge
from evalmon.monitor.sources.files import expand_paths
from evalmon.monitor.timeparse import Plausible


class ParquetSource:
    def __init__(self, name: str, path: str, base_dir: Path, *, columns: dict[str, str], assume_timezone: str,
                 keep: Sequence[str] = (), partition_column: str = "dt", plausible: Plausible | None = None) -> None:
        self.name = name
        self.path = path
        self.base_dir = Path(base_dir)
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self.partition_column = partition_column
        self.plausible = plausible or Plausible()

    def _dataset(self) -> Any:
        import pyarrow.dataset as ds

        p = Path(self.path).expanduser()
        p = p if p.is_absolute() else self.base_dir / p
        if p.is_dir():
            source: Any = str(p)
        else:
            files = expand_paths(self.path, self.base_dir, (".parquet",))
            if not files:
                return None
            source = [str(f) for f in files]
        try:
            return ds.dataset(source, format="parquet", partitioning="hive", exclude_invalid_files=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot open Parquet dataset {p}: {exc}") from exc

    def _filter(self, schema: Any, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> tuple[Any, str | None]:
        """The scan filter for [lo, hi) (timestamp push-down) and the partition column; the partitions themselves
        are pruned by ``_pruned`` (``dt`` is a hint, not a row filter: see ``partition_days``)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        expr = None
        part_col = self.partition_column if self.partition_column in schema.names else None
        ts_cols = resolve_columns(schema.names, self.columns)[TIMESTAMP]
        if len(ts_cols) == 1 and pa.types.is_timestamp(schema.field(ts_cols[0]).type) \
                and (lo is not None or hi is not None):
            ttype, field = schema.field(ts_cols[0]).type, ds.field(ts_cols[0])

            def scalar(bound: pd.Timestamp) -> Any:
                value = bound if ttype.tz is not None else bound.tz_convert(self.assume_timezone).tz_localize(None)
                return pa.scalar(value.to_pydatetime(), type=ttype)

            p_lo, p_hi = self.plausible.bounds()
            cond = field.is_null() | (field < scalar(p_lo)) | (field > scalar(p_hi))
            window = None
            for bound, op in ((lo, "ge"), (hi, "lt")):
                if bound is not None:
                    part = field >= scalar(bound) if op == "ge" else field < scalar(bound)
                    window = part if window is None else window & part
            cond = cond | window
            expr = cond if expr is None else expr & cond
        return expr, part_col

    def _normalize(self, table: Any, part_col: str | None, arrival_offset: int = 0) -> Normalized:
        import pyarrow as pa

        if any(pa.types.is_struct(f.type) for f in table.schema):
            table = table.flatten()
            while any(pa.types.is_struct(f.type) for f in table.schema):
                table = table.flatten()
        df = table.to_pandas(types_mapper=None, timestamp_as_object=False)
        if part_col is not None and part_col in df.columns and part_col not in self.columns.values():
            df = df.drop(columns=[part_col])
        return normalize_frame(df, source=str(self.path), mapping=self.columns, assume_timezone=self.assume_timezone,
                               keep=self.keep, strict_columns=True, plausible=self.plausible,
                               arrival_offset=arrival_offset)

    def _pruned(self, dataset: Any, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> list[Any]:
        """The fragments whose partition can hold rows of [lo, hi): a ``dt`` value that is no date is always read,
        a date within a day of the window's UTC dates too (``partition_days``)."""
        import pyarrow.dataset as ds

        fragments = list(dataset.get_fragments())
        part = self.partition_column
        if part not in dataset.schema.names or (lo is None and hi is None):
            return fragments
        first, last = partition_days(lo, hi)
        keep = []
        for fragment in fragments:
            day = _as_day(ds.get_partition_keys(fragment.partition_expression).get(part))
            if day is None or ((first is None or day >= first) and (last is None or day <= last)):
                keep.append(fragment)
        return keep

    def _fragment_table(self, dataset: Any, fragment: Any, lo: pd.Timestamp | None,
                        hi: pd.Timestamp | None) -> tuple[Any, str | None]:
        """One file's rows of [lo, hi) read by its own schema (+ the partition column): partitions may disagree
        on a column's type (epoch ms beside a Parquet timestamp, latency as text), which the normaliser handles
        row by row; a cast to the dataset's (first file's) schema failed for the whole folder."""
        import pyarrow as pa

        try:
            schema = fragment.physical_schema  # reads the footer: a damaged file fails here
            part = self.partition_column
            if part in dataset.schema.names and part not in schema.names:
                schema = schema.append(dataset.schema.field(part))
            expr, part_col = self._filter(schema, lo, hi)
            return fragment.to_table(schema=schema, filter=expr), part_col
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read Parquet file {fragment.path}: {exc}") from exc

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        lo, hi = check_window(start, end)
        dataset = self._dataset()
        if dataset is None:
            return merge([], start, end, {"files": 0, "source": self.name})
        ordinal = {f.path: i for i, f in enumerate(dataset.get_fragments())}
        fragments = self._pruned(dataset, lo, hi)
        parts = []
        for fragment in fragments:
            table, part_col = self._fragment_table(dataset, fragment, lo, hi)
            parts.append(Part(name=fragment.path,
                              norm=self._normalize(table, part_col, arrival_offset=ordinal[fragment.path] << 32)))
        return merge(parts, start, end, {"files": len(fragments), "source": self.name})

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]:
        """The fragments (files) the partition filter keeps for [start, end)."""
        lo, hi = check_window(start, end)
        dataset = self._dataset()
        if dataset is None:
            return []
        return [f.path for f in self._pruned(dataset, lo, hi)]

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
        """One fragment's rows of [start, end), the time filter pushed into its scan; ``arrival`` is offset by
        the fragment's position in the dataset so fragments keep the order a whole read gives them."""
        lo, hi = check_window(start, end)
        dataset = self._dataset()
        fragments = list(dataset.get_fragments()) if dataset is not None else []
        found = [(i, f) for i, f in enumerate(fragments) if f.path == partition]
        if not found:
            raise DataError(f"Parquet file {partition} disappeared during the run",
                            hint="keep the dataset's files in place while a monitor run reads them")
        ordinal, fragment = found[0]
        table, part_col = self._fragment_table(dataset, fragment, lo, hi)
        norm = self._normalize(table, part_col, arrival_offset=ordinal << 32)
        return merge([Part(name=partition, norm=norm)], start, end, {"files": 1, "source": self.name,
                                                                     "partition": partition})


def partition_days(lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> tuple[date | None, date | None]:
    """The ``dt`` days read for [lo, hi): its UTC dates widened by a day each side. A dataset partitioned by local
    date (UTC-12..+14) or by ingestion date (a record logged just before midnight, written just after) holds a
    window's records one day off; comparing with the UTC dates alone lost them from every window."""
    first = None if lo is None else lo.date() - timedelta(days=1)
    last = None if hi is None else (hi - timedelta(microseconds=1)).date() + timedelta(days=1)
    return first, last


def _as_day(value: Any) -> date | None:
    """A partition value as a date (``date`` or ``YYYY-MM-DD`` text), else None (no date: never pruned)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def write_partitioned(frame: pd.DataFrame, root: Path, days: pd.Series, *, partition_column: str = "dt") -> list[Path]:
    """Write ``frame`` as ``root/<partition_column>=YYYY-MM-DD/part-0.parquet`` (``days``: one per row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    days = pd.Series(days.to_numpy(), index=frame.index)
    written = []
    for day in sorted(days.unique()):
        target = root / f"{partition_column}={day}"
        target.mkdir(parents=True, exist_ok=True)
        path = target / "part-0.parquet"
        pq.write_table(pa.Table.from_pandas(frame[days == day], preserve_index=False), path)
        written.append(path)
    return written
