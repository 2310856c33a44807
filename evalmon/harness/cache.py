"""Response cache: sqlite, keyed by (model fingerprint, request hash).

Every finished batch is committed at once, so a rerun — or the resume of a crashed / Ctrl-C'd
run — recomputes nothing that was already scored. WAL mode keeps readers and the writer apart.

A corrupt cache file (sqlite says "not a database" or "malformed", at open or on any later read or
write) is moved aside as ``<name>.corrupt-<timestamp>`` with a one-line warning and rebuilt empty: the
run goes on and recomputes what it needs. A full disk is an ``OutputError`` saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from evalmon.core.errors import OutputError
from evalmon.core.lm import LLResult

T = TypeVar("T")
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_FULL = {sqlite3.SQLITE_FULL}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS loglikelihood (
    model_key TEXT NOT NULL,
    request_key TEXT NOT NULL,
    logprob REAL NOT NULL,
    is_greedy INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model_key, request_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generation (
    model_key TEXT NOT NULL,
    request_key TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (model_key, request_key)
) WITHOUT ROWID;
"""


def _logged_warning(message: str) -> None:
    logging.getLogger("evalmon").warning(message)


class ResponseCache:
    def __init__(self, path: str | Path, *, warn: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self._warn = warn or _logged_warning
        self._db = self._guard(self._open, rebuild=False)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._open_error(exc) from None
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _open_error(self, exc: BaseException) -> OutputError:
        return OutputError(f"cache.path: cannot use the response cache at {self.path}: {exc}",
                           hint="set cache.path to a writable file or cache.enabled: false")

    def _guard(self, op: Callable[[], T], *, rebuild: bool = True) -> T:
        """Run ``op``; a corrupt database is moved aside and rebuilt (then ``op`` runs once more)."""
        for attempt in (1, 2):
            try:
                return op()
            except sqlite3.DatabaseError as exc:
                code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
                if code in _FULL:
                    raise OutputError(f"cache.path: {self.path}: the disk is full ({exc})",
                                      hint="free space and rerun (cached requests are kept)") from None
                if code not in _CORRUPT or attempt == 2:
                    raise self._open_error(exc) from None
                self._quarantine(exc, reopen=rebuild)
        raise AssertionError("unreachable")

    def _quarantine(self, exc: sqlite3.DatabaseError, *, reopen: bool) -> None:
        """Move the corrupt file (and its WAL/SHM companions) aside; ``reopen``: connect to a fresh one."""
        if reopen:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                companion = self.path.with_name(self.path.name + suffix)
                if companion.exists():
                    os.replace(companion, aside.with_name(aside.name + suffix))
        except OSError as move_exc:
            raise self._open_error(move_exc) from None
        self._warn(f"warning: the response cache {self.path} is corrupt ({exc}); moved it aside to {aside.name} "
                   "and started an empty one — requests are recomputed")
        if reopen:
            self._db = self._guard(self._open, rebuild=False)

    def _select(self, sql: str, model_key: str, request_keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (``… WHERE model_key = ? AND request_key IN ({marks})``), 500 keys per query."""
        keys = list(dict.fromkeys(request_keys))
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            query = sql.format(marks=",".join("?" * len(part)))
            yield from self._guard(lambda q=query, a=[model_key, *part]: self._db.execute(q, a).fetchall())

    def get_many(self, model_key: str, request_keys: Sequence[str]) -> dict[str, LLResult]:
        rows = self._select("SELECT request_key, logprob, is_greedy, n_tokens FROM loglikelihood "
                            "WHERE model_key = ? AND request_key IN ({marks})", model_key, request_keys)
        return {key: LLResult(float(lp), bool(greedy), int(n)) for key, lp, greedy, n in rows}

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        def op() -> None:
            with self._db:
                self._db.executemany(sql, rows)

        self._guard(op)

    def put_many(self, model_key: str, items: Iterable[tuple[str, LLResult]]) -> None:
        self._write("INSERT OR REPLACE INTO loglikelihood VALUES (?, ?, ?, ?, ?)",
                    [(model_key, k, r.logprob, int(r.is_greedy), r.n_tokens) for k, r in items])

    def get_texts(self, model_key: str, request_keys: Sequence[str]) -> dict[str, str]:
        rows = self._select("SELECT request_key, text FROM generation WHERE model_key = ? AND request_key IN ({marks})",
                            model_key, request_keys)
        return {key: text for key, text in rows}

    def put_texts(self, model_key: str, items: Iterable[tuple[str, str]]) -> None:
        self._write("INSERT OR REPLACE INTO generation VALUES (?, ?, ?)", [(model_key, k, t) for k, t in items])

    def count(self, model_key: str | None = None) -> int:
        if model_key is None:
            return int(self._guard(lambda: self._db.execute("SELECT COUNT(*) FROM loglikelihood").fetchone()[0]))
        return int(self._guard(lambda: self._db.execute("SELECT COUNT(*) FROM loglikelihood WHERE model_key = ?",
                                                        (model_key,)).fetchone()[0]))

    def close(self) -> None:
        self._db.close()
