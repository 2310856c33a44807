"""SQL traffic through SQLAlchemy (SQLite, DuckDB via duckdb-engine, PostgreSQL, …).

``table`` (optionally ``schema``) or a ``query``; the window becomes ``WHERE ts >= :start AND ts < :end``
on ``timestamp_column``. How the bounds are bound depends on what the column holds (one sampled value):
datetimes → datetimes; numbers → epoch in the sampled magnitude (s/ms/µs/ns); text → ISO strings in the
stored layout, widened by 14 h so rows with other UTC offsets are not lost; the exact [start, end) cut is
made after normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from evalmon.errors import DataError
from evalmon.monitor.contracts import SourceBatch
from evalmon.monitor.schema import normalize_frame
from evalmon.monitor.sources.base import Part, check_window, merge

_SLACK = timedelta(hours=14)  # the widest UTC offset


def resolve_url(url: str, base_dir: Path) -> str:
    """``sqlite:///rel.db`` / ``duckdb:///rel.db`` → absolute to ``base_dir`` (the monitor YAML's folder)."""
    for scheme in ("sqlite:///", "duckdb:///"):
        if url.startswith(scheme):
            rest = url[len(scheme):]
            if rest and not rest.startswith(("/", ":memory:")) and "://" not in rest:
                return scheme + str((Path(base_dir) / rest).resolve())
    return url


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an invalid URL: shown as given
        return url


class SqlSource:
    def __init__(self, name: str, url: str, base_dir: Path, *, table: str | None, query: str | None,
                 schema: str | None, timestamp_column: str, columns: dict[str, str], assume_timezone: str,
                 keep: Sequence[str] = ()) -> None:
        self.name = name
        self.url = resolve_url(url, base_dir)
        self.table = table
        self.query = query
        self.schema = schema
        self.timestamp_column = timestamp_column
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self._engine: Any = None

    def _connect(self) -> Any:
        import sqlalchemy as sa

        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except Exception as exc:  # bad URL / missing driver
                raise DataError(f"cannot open SQL source {_safe_url(self.url)}: {type(exc).__name__}: {exc}") from exc
        return self._engine

    def _from(self, engine: Any) -> str:
        import sqlalchemy as sa

        quote = engine.dialect.identifier_preparer.quote
        if self.query is not None:
            return f"({self.query.strip().rstrip(';')}) AS evalmon_q"
        assert self.table is not None
        try:
            exists = sa.inspect(engine).has_table(self.table, schema=self.schema)
        except sa.exc.SQLAlchemyError as exc:
            raise DataError(f"cannot connect to SQL source {_safe_url(self.url)}: {_first_line(exc)}") from exc
        if not exists:
            try:
                tables = sa.inspect(engine).get_table_names(schema=self.schema)
            except sa.exc.SQLAlchemyError:
                tables = []
            listed = f" (tables: {', '.join(tables[:10])})" if tables else " (no tables)"
            raise DataError(f"SQL table {self.table!r} not found in {_safe_url(self.url)}{listed}")
        name = quote(self.table)
        return f"{quote(self.schema)}.{name}" if self.schema else name

    def _bounds(self, conn: Any, src: str, col: str, lo: pd.Timestamp | None,
                hi: pd.Timestamp | None) -> dict[str, Any]:
        import sqlalchemy as sa

        sample = conn.execute(sa.text(f"SELECT {col} FROM {src} WHERE {col} IS NOT NULL LIMIT 1")).scalar()
        params: dict[str, Any] = {}
        for key, bound in (("start", lo), ("end", hi)):
            if bound is None:
                continue
            if isinstance(sample, datetime):
                value: Any = bound.to_pydatetime()
                if sample.tzinfo is None:
                    value = bound.tz_convert(self.assume_timezone).tz_localize(None).to_pydatetime()
            elif isinstance(sample, (int, float)) and not isinstance(sample, bool):
                mag = abs(sample)
                scale = 1 if mag < 1e11 else 1e3 if mag < 1e14 else 1e6 if mag < 1e17 else 1e9
                value = bound.timestamp() * scale
            elif isinstance(sample, str) and not sample.strip().lstrip("-").replace(".", "", 1).isdigit():
                wide = (bound - _SLACK) if key == "start" else (bound + _SLACK)
                sep = "T" if len(sample) > 10 and sample[10] == "T" else " "
                value = wide.tz_localize(None).isoformat(sep=sep)
            else:  # numbers stored as text, other types: no server-side cut (exact cut after parsing)
                continue
            params[key] = value
        return params

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        import sqlalchemy as sa

        lo, hi = check_window(start, end)
        engine = self._connect()
        try:
            with engine.connect() as conn:
                src = self._from(engine)
                col = engine.dialect.identifier_preparer.quote(self.timestamp_column)
                params = self._bounds(conn, src, col, lo, hi) if (lo is not None or hi is not None) else {}
                where = [cond for key, cond in (("start", f"{col} >= :start"), ("end", f"{col} < :end"))
                         if key in params]
                sql = f"SELECT * FROM {src}" + (f" WHERE {' AND '.join(where)}" if where else "")
                df = pd.read_sql_query(sa.text(sql), conn, params=params)
                # rows a time filter can never select: counted (table-wide) so they are not lost silently
                no_ts = conn.execute(sa.text(f"SELECT COUNT(*) FROM {src} WHERE {col} IS NULL")).scalar() \
                    if params else None
        except DataError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            what = f"table {self.table!r}" if self.table else "query"
            raise DataError(f"SQL source {_safe_url(self.url)} ({what}): {_first_line(exc)}") from exc
        where_from = f"{_safe_url(self.url)}#{self.table or 'query'}"
        norm = normalize_frame(df, source=where_from, mapping=self.columns, assume_timezone=self.assume_timezone,
                               keep=self.keep, strict_columns=True)
        extra = {"source": self.name, "files": 0}
        if no_ts is not None:
            extra["rows_without_timestamp"] = int(no_ts)
        return merge([Part(name=where_from, norm=norm)], start, end, extra)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return " ".join(text.splitlines()[:1]).strip()
