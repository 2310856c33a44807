"""Traffic sources (monitor YAML ``source:``) → :class:`~evalmon.monitor.contracts.Source`.

``build_source(cfg, base_dir)`` with ``cfg`` one of the ``*SourceConfig`` models or a plain dict; each
``kind`` is registered in ``evalmon.core.registry.sources`` with its builder and config class (which
``evalmon.config.sources`` looks up to validate ``source:``; ``SourceConfig`` and ``parse_source_config`` are
re-exported here). Relative paths and ``sqlite:///``/``duckdb:///`` URLs are resolved against ``base_dir``
(the monitor YAML's folder). Heavy modules (pyarrow, sqlalchemy, mlflow) load on first read.

Every source parses timestamps with :mod:`evalmon.monitor.timeparse`; ``timestamp_min`` (default
2000-01-01) and ``timestamp_max_ahead`` (default ``1d`` after now) bound a plausible time — a record outside
is quarantined as ``timestamp.implausible``, not windowed. File sources (jsonl/csv) take ``on_corrupt``:
``fail`` (default) stops the run with the file and byte offset when a file cannot be read to its end
(truncated/corrupt gzip, binary data); ``quarantine`` processes the readable part and quarantines the rest
(``file.corrupt``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel
from evalmon.config.sources import SourceConfig, parse_source_config
from evalmon.core import registry
from evalmon.core.errors import ConfigError
from evalmon.core.records import check_mapping
from evalmon.monitor.contracts import TIMESTAMP, Source
from evalmon.monitor.schema import resolve_timezone
from evalmon.monitor.timeparse import DEFAULT_NOT_BEFORE, Plausible
from evalmon.monitor.windows import as_utc, parse_duration


class _SourceBase(ConfigModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None  # label in stats/quarantine (default: the path / table / experiment)
    columns: dict[str, str] = Field(default_factory=dict)  # {canonical: source_column} overrides aliases
    assume_timezone: str = "UTC"  # for timestamps without an offset
    keep: list[str] = Field(default_factory=list)  # extra source columns passed through unchanged
    timestamp_min: datetime = DEFAULT_NOT_BEFORE.to_pydatetime()  # earlier timestamps are implausible
    timestamp_max_ahead: str = "1d"  # timestamps further than this after now are implausible

    @field_validator("timestamp_min")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("timestamp_max_ahead")
    @classmethod
    def _ahead(cls, value: str) -> str:
        try:
            parse_duration(value)
        except ConfigError:
            raise ValueError(f"{value!r} is not a duration (write e.g. 1h, 1d or 7d)") from None
        return value

    def plausible(self) -> Plausible:
        import pandas as pd

        return Plausible(pd.Timestamp(self.timestamp_min), parse_duration(self.timestamp_max_ahead))

    @field_validator("columns")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            check_mapping(value)
        except ConfigError as exc:
            raise ValueError(exc.one_line()) from exc
        return value

    @field_validator("assume_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            resolve_timezone(value)
        except ConfigError as exc:
            raise ValueError(exc.one_line()) from exc
        return value


class JsonlSourceConfig(_SourceBase):
    kind: Literal["jsonl"]
    path: str  # file, directory (recursive *.jsonl[.gz]) or glob
    invalid_utf8: Literal["quarantine", "replace"] = "quarantine"
    on_corrupt: Literal["fail", "quarantine"] = "fail"  # a file not readable to its end


class CsvSourceConfig(_SourceBase):
    kind: Literal["csv"]
    path: str
    delimiter: str = ","
    invalid_utf8: Literal["quarantine", "replace"] = "quarantine"
    on_corrupt: Literal["fail", "quarantine"] = "fail"

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, v: str) -> str:
        """Python's csv reads one character (anything else was a TypeError traceback on the first file)."""
        if len(v) != 1 or v in "\r\n\"":
            raise PydanticCustomError("delimiter", "{got} is not one character other than a quote or newline",
                                      {"got": repr(v), "hint": "use e.g. ',', ';', '|' or '\\t' (a tab)"})
        return v


class ParquetSourceConfig(_SourceBase):
    kind: Literal["parquet"]
    path: str  # dataset root (hive partitions dt=YYYY-MM-DD/...), a file or a glob
    partition_column: str = "dt"


class MlflowTracesSourceConfig(_SourceBase):
    kind: Literal["mlflow_traces"]
    experiment: str  # name (or id)
    tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI / mlflow's default
    max_results: int | None = Field(default=None, gt=0)


class SqlSourceConfig(_SourceBase):
    kind: Literal["sql"]
    url: str  # SQLAlchemy URL: sqlite:///x.db, duckdb:///x.duckdb, postgresql+psycopg://…
    table: str | None = None
    query: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    timestamp_column: str | None = None  # default: columns.timestamp, else "timestamp"

    @model_validator(mode="after")
    def _one_of(self) -> SqlSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of `table` or `query`")
        return self


class SparkTableSourceConfig(_SourceBase):
    """Traffic Spark reads (``sources/spark_table.py``): ``table`` (a catalog table) or ``format`` (+ ``path``
    and/or ``options``: delta, jdbc, parquet, …)."""

    kind: Literal["spark_table"]
    table: str | None = None  # db.events, catalog.db.events: spark.table(table)
    format: str | None = None  # spark.read.format(format): delta, jdbc, parquet, orc, …
    path: str | None = None  # with format: what .load() reads (relative to the YAML's folder)
    options: dict[str, str] = Field(default_factory=dict)  # spark.read options (jdbc: url, dbtable, driver, …)

    @field_validator("options", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:  # numPartitions: 4 in YAML is an int; Spark options are strings
        return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _one_of(self) -> SparkTableSourceConfig:
        if (self.table is None) == (self.format is None):
            raise ValueError("set exactly one of `table` (a table Spark knows) or `format` (+ path/options: "
                             "delta, jdbc, …)")
        if self.table is not None and (self.path is not None or self.options):
            raise ValueError("`path` and `options` go with `format`, not with `table`")
        if self.format == "jdbc" and self.path is not None:
            raise ValueError("format: jdbc takes options (url, dbtable or query, driver), not `path`")
        if self.format not in (None, "jdbc") and self.path is None and "path" not in self.options:
            raise ValueError(f"format: {self.format} needs `path` (the table's folder)")
        return self


def build_source(cfg: Any, base_dir: Path | str = ".") -> Source:
    """A source config (model or dict) → a ``Source`` whose ``read(start, end)`` returns a SourceBatch."""
    if isinstance(cfg, dict):
        cfg = parse_source_config(cfg)
    common: dict[str, Any] = {"columns": dict(cfg.columns), "assume_timezone": cfg.assume_timezone,
                              "keep": list(cfg.keep), "plausible": cfg.plausible()}
    build: Any = registry.sources.get(cfg.kind, where="source.kind")
    source: Source = build(cfg, Path(base_dir), common)
    return source


def pin_clock(source: Source, now: datetime) -> None:
    """Pin the source's "now" for one monitor run: every read of the run (fit and summary passes, each Spark
    cell, minutes or hours apart) then quarantines the same records as ``timestamp.implausible`` (after
    now + ``timestamp_max_ahead``) — with the wall clock read per read, a record near that bound could be
    windowed by one pass and quarantined by the other. A source without ``plausible`` (plugins) is left alone."""
    bound = getattr(source, "plausible", None)
    if isinstance(bound, Plausible):
        source.plausible = bound.pinned(now)  # type: ignore[attr-defined]


# Built-in kinds: a builder ``(config, base_dir, common) -> Source`` (``common``: columns, assume_timezone,
# keep, plausible — the ``_SourceBase`` options every source takes) + its config class (``kind: Literal``).
# A plugin registers the same way through the entry points "evalmon.sources".

@registry.sources.register("jsonl", config=JsonlSourceConfig)
def _jsonl(cfg: JsonlSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.files import JsonlSource

    return JsonlSource(cfg.name or cfg.path, cfg.path, base, invalid_utf8=cfg.invalid_utf8,
                       on_corrupt=cfg.on_corrupt, **common)


@registry.sources.register("csv", config=CsvSourceConfig)
def _csv(cfg: CsvSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.files import CsvSource

    return CsvSource(cfg.name or cfg.path, cfg.path, base, delimiter=cfg.delimiter,
                     invalid_utf8=cfg.invalid_utf8, on_corrupt=cfg.on_corrupt, **common)


@registry.sources.register("parquet", config=ParquetSourceConfig)
def _parquet(cfg: ParquetSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.parquet import ParquetSource

    return ParquetSource(cfg.name or cfg.path, cfg.path, base, partition_column=cfg.partition_column,
                         **common)


@registry.sources.register("mlflow_traces", config=MlflowTracesSourceConfig)
def _mlflow_traces(cfg: MlflowTracesSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.mlflow_traces import MlflowTracesSource

    return MlflowTracesSource(cfg.name or cfg.experiment, cfg.experiment, base, tracking_uri=cfg.tracking_uri,
                              max_results=cfg.max_results, **common)


@registry.sources.register("sql", config=SqlSourceConfig)
def _sql(cfg: SqlSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.sql import SqlSource

    ts_col = cfg.timestamp_column or cfg.columns.get(TIMESTAMP) or TIMESTAMP
    common["columns"].setdefault(TIMESTAMP, ts_col)
    return SqlSource(cfg.name or (cfg.table or "query"), cfg.url, base, table=cfg.table, query=cfg.query,
                     schema=cfg.schema_, timestamp_column=ts_col, **common)


@registry.sources.register("spark_table", config=SparkTableSourceConfig)
def _spark_table(cfg: SparkTableSourceConfig, base: Path, common: dict[str, Any]) -> Source:
    from evalmon.monitor.sources.spark_table import SparkTableSource

    return SparkTableSource(cfg.name or cfg.table or cfg.path or cfg.options.get("dbtable") or str(cfg.format),
                            base, table=cfg.table, path=cfg.path, format=cfg.format, options=cfg.options, **common)


__all__ = ["CsvSourceConfig", "JsonlSourceConfig", "MlflowTracesSourceConfig", "ParquetSourceConfig",
           "SourceConfig", "SparkTableSourceConfig", "SqlSourceConfig", "build_source", "parse_source_config", "pin_clock"]
