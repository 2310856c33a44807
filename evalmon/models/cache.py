"""Response cache: sqlite, keyed by (model fingerprint, request hash).

Every finished batch is committed at once, so a rerun — or the resume of a crashed / Ctrl-C'd
run — recomputes nothing that was already scored. WAL mode keeps readers and the writer apart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from evalmon.errors import OutputError
from evalmon.models.base import LLResult

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


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"cache.path: cannot open the response cache at {self.path}: {exc}",
                              hint="set cache.path to a writable file or cache.enabled: false") from None

    def _select(self, sql: str, model_key: str, request_keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (``… WHERE model_key = ? AND request_key IN ({marks})``), 500 keys per query."""
        keys = list(dict.fromkeys(request_keys))
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            yield from self._db.execute(sql.format(marks=",".join("?" * len(part))), [model_key, *part])

    def get_many(self, model_key: str, request_keys: Sequence[str]) -> dict[str, LLResult]:
        rows = self._select("SELECT request_key, logprob, is_greedy, n_tokens FROM loglikelihood "
                            "WHERE model_key = ? AND request_key IN ({marks})", model_key, request_keys)
        return {key: LLResult(float(lp), bool(greedy), int(n)) for key, lp, greedy, n in rows}

    def put_many(self, model_key: str, items: Iterable[tuple[str, LLResult]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO loglikelihood VALUES (?, ?, ?, ?, ?)",
                [(model_key, k, r.logprob, int(r.is_greedy), r.n_tokens) for k, r in items],
            )

    def get_texts(self, model_key: str, request_keys: Sequence[str]) -> dict[str, str]:
        rows = self._select("SELECT request_key, text FROM generation WHERE model_key = ? AND request_key IN ({marks})",
                            model_key, request_keys)
        return {key: text for key, text in rows}

    def put_texts(self, model_key: str, items: Iterable[tuple[str, str]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO generation VALUES (?, ?, ?)",
                                 [(model_key, k, t) for k, t in items])

    def count(self, model_key: str | None = None) -> int:
        if model_key is None:
            return int(self._db.execute("SELECT COUNT(*) FROM loglikelihood").fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM loglikelihood WHERE model_key = ?",
                                    (model_key,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()
