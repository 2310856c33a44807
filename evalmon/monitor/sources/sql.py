"""SQL traffic through SQLAlchemy (SQLite, DuckDB via duckdb-engine, PostgreSQL, …).

``table`` (optionally ``schema``) or a ``query``. Timestamps are parsed in Python by the shared routine
(:mod:`evalmon.monitor.timeparse`) and the exact [start, end) cut is made after it, so a server-side filter
may only ever return *more* rows than the window needs, never fewer:

- a database that enforces column types (not SQLite) and a column of datetimes → ``ts IS NULL OR
  (ts >= :start AND ts < :end) OR NOT (plausible span)``; a column of numbers → the same with the window
  and the plausible span written in each epoch unit (s/ms/µs/ns, each within its magnitude band);
- text columns, SQLite (one column may hold ``…T…Z``, ``2026-11-01 01:30:00``, epochs and garbage in the
  same table) or anything else → no filter: the table/query is read whole and cut after parsing.

Rows with no usable time (NULL, unparseable, implausible) are quarantined *unplaced*: a table has no line
order to place them by, so every read returns them and every run reports them until they are fixed.
Rows are fetched ``CHUNK_ROWS`` at a time and cut to the window per chunk, so a window's read holds that
window (plus one chunk) in memory; without a server-side filter each window's read scans the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evalmon.core.errors import DataError
from evalmon.monitor.contracts import SourceBatch
from evalmon.monitor.schema import TIME_UNITS, Normalized, normalize_frame
from evalmon.monitor.sources.base import Part, check_window, in_window, merge, rows_in_window
from evalmon.monitor.timeparse import MAGNITUDE_BANDS, UNIT_FACTORS, Plausible

CHUNK_ROWS = 10_000  # rows fetched and normalised at a time
_BANDS = {"s": (0.0, MAGNITUDE_BANDS[0][0]), "ms": (MAGNITUDE_BANDS[0][0], MAGNITUDE_BANDS[1][0]),
          "us": (MAGNITUDE_BANDS[1][0], MAGNITUDE_BANDS[2][0]), "ns": (MAGNITUDE_BANDS[2][0], float("inf"))}


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
                 keep: Sequence[str] = (), plausible: Plausible | None = None) -> None:
        self.name = name
        self.url = resolve_url(url, base_dir)
        self.table = table
        self.query = query
        self.schema = schema
        self.timestamp_column = timestamp_column
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self.plausible = plausible or Plausible()
        self._engine: Any = None
        self._replaced = 0  # SQLite text values that were not UTF-8 (see ``_lenient_text``)

    def _connect(self) -> Any:
        import sqlalchemy as sa

        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except Exception as exc:  # bad URL / missing driver
                raise DataError(f"cannot open SQL source {_safe_url(self.url)}: {type(exc).__name__}: {exc}") from exc
            if self._engine.dialect.driver == "pysqlite":
                sa.event.listen(self._engine, "connect", self._lenient_text)
        return self._engine

    def _lenient_text(self, dbapi_conn: Any, _record: Any) -> None:
        """SQLite TEXT is whatever bytes were stored: one value that is not UTF-8 made sqlite3 raise for the
        whole read. It decodes with U+FFFD in place of the bad bytes, counted (``invalid_unicode_replaced``)."""
        dbapi_conn.text_factory = self._decode

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._replaced += 1
            return raw.decode("utf-8", errors="replace")

    def _from(self, engine: Any) -> str:
        import sqlalchemy as sa

        quote = engine.dialect.identifier_preparer.quote
        if self.query is not None:
            return f"({self.query.strip().rstrip(';')}\n) AS evalmon_q"  # \n: a query may end in a -- comment
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

    def _where(self, conn: Any, dialect: str, src: str, col: str, lo: pd.Timestamp | None,
               hi: pd.Timestamp | None) -> tuple[str, dict[str, Any]]:
        """A filter returning a superset of what [lo, hi) needs plus every row without a usable time, or
        ``""`` (read everything) where no such filter can be written (see the module docstring)."""
        import sqlalchemy as sa

        if dialect == "sqlite" or (lo is None and hi is None):
            return "", {}
        sample = conn.execute(sa.text(f"SELECT {col} FROM {src} WHERE {col} IS NOT NULL LIMIT 1")).scalar()
        p_lo, p_hi = self.plausible.bounds()
        Range = tuple[Any, Any]
        window: list[Range] = []
        span: list[Range] = []
        if isinstance(sample, datetime):
            naive = sample.tzinfo is None

            def conv(b: pd.Timestamp | None) -> datetime | None:
                if b is None:
                    return None
                return (b.tz_convert(self.assume_timezone).tz_localize(None) if naive else b).to_pydatetime()

            window, span = [(conv(lo), conv(hi))], [(conv(p_lo), conv(p_hi))]
        elif isinstance(sample, (int, float)) and not isinstance(sample, bool) and p_lo.value >= 0:
            units = [TIME_UNITS[self.timestamp_column]] if self.timestamp_column in TIME_UNITS else list(_BANDS)
            for unit in units:
                scale = 1e9 / UNIT_FACTORS[unit]
                band = _BANDS[unit] if len(units) > 1 else (0.0, float("inf"))

                def epoch(b: pd.Timestamp | None, scale: float = scale, band: Range = band) -> float | None:
                    return None if b is None else min(max(b.value / 1e9 * scale, band[0]), band[1])

                window.append((epoch(lo), epoch(hi)))
                span.append((epoch(p_lo), epoch(p_hi)))
        else:
            return "", {}
        params: dict[str, Any] = {}

        def ranges(name: str, items: list[Range]) -> str:
            parts = []
            for i, (a, b) in enumerate(items):
                conds = []
                for key, bound, op in ((f"{name}{i}a", a, ">="), (f"{name}{i}b", b, "<")):
                    if bound is not None:
                        params[key] = bound
                        conds.append(f"{col} {op} :{key}")
                parts.append("(" + " AND ".join(conds or ["1 = 1"]) + ")")
            return " OR ".join(parts)

        return f"{col} IS NULL OR {ranges('w', window)} OR NOT ({ranges('p', span)})", params

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        """Rows of [start, end) (+ every row without a usable time), fetched ``CHUNK_ROWS`` at a time and cut
        to the window chunk by chunk, so memory follows the window even when nothing is filtered server-side."""
        import sqlalchemy as sa

        lo, hi = check_window(start, end)
        engine = self._connect()
        where_from = f"{_safe_url(self.url)}#{self.table or 'query'}"
        parts: list[Part] = []
        try:
            with engine.connect() as conn:
                src = self._from(engine)
                col = engine.dialect.identifier_preparer.quote(self.timestamp_column)
                where, params = self._where(conn, engine.dialect.name, src, col, lo, hi)
                sql = f"SELECT * FROM {src}" + (f" WHERE {where}" if where else "")
                self._replaced = 0
                for df in pd.read_sql_query(sa.text(sql), conn, params=params, chunksize=CHUNK_ROWS):
                    replaced, self._replaced = self._replaced, 0  # fetched with this chunk
                    norm = normalize_frame(df, source=where_from, mapping=self.columns,
                                           assume_timezone=self.assume_timezone, keep=self.keep, strict_columns=True,
                                           plausible=self.plausible)
                    norm.stats["invalid_unicode_replaced"] = norm.stats.get("invalid_unicode_replaced", 0) + replaced
                    parts.append(Part(name=where_from, norm=_cut(norm, lo, hi)))
        except DataError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            what = f"table {self.table!r}" if self.table else "query"
            raise DataError(f"SQL source {_safe_url(self.url)} ({what}): {_first_line(exc)}") from exc
        return merge(parts, start, end, {"source": self.name, "files": 0, "server_filter": bool(where)})

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]:
        return [self.table or "query"]  # one partition: the filter (or the chunked scan) is the push-down

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
        return self.read(start, end)


def _cut(norm: Normalized, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> Normalized:
    """A chunk reduced to what [lo, hi) keeps (``merge`` cuts again; this bounds memory per chunk)."""
    frame = rows_in_window(norm.frame, lo, hi)
    keep = [i for i, t in enumerate(norm.quarantined_times) if t is None or in_window(t, lo, hi)]
    return Normalized(frame=frame, quarantined=[norm.quarantined[i] for i in keep],
                      quarantined_times=[norm.quarantined_times[i] for i in keep], stats=norm.stats)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return " ".join(text.splitlines()[:1]).strip()
