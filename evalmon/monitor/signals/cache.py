"""Per-record signal cache and ``compute_signals``: every record is computed once per signal version.

Key = hash(signal fingerprint (name, version, options), the record's input columns). Values are the
signal's output row, pickled, in one SQLite table (``SignalCache(path)``; ``SignalCache()`` keeps it
in memory). Within a batch, records with identical inputs are computed once too. A row whose column named in
the signal's ``retry_when_nan`` is NaN (a judge call that failed) is not cached, so a rerun computes it again. Signals with
``cacheable = False`` (vectorised arithmetic and regexes, cheaper than a lookup) are always computed.
Pickle is safe here only because the cache file is written by evalmon itself: do not point it at a
file from elsewhere.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalmon.monitor.contracts import CANONICAL_COLUMNS, Signal
from evalmon.monitor.signals.base import record_keys

_CHUNK = 500


@dataclass
class SignalStats:
    hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (all threads): fairer than wall time on shared cores


@dataclass
class ComputeStats:
    per_signal: dict[str, SignalStats] = field(default_factory=dict)
    shared_pass: SignalStats = field(default_factory=SignalStats)  # the one embedding pass for all signals

    @property
    def hits(self) -> int:
        return sum(s.hits for s in self.per_signal.values())

    @property
    def misses(self) -> int:
        return sum(s.misses for s in self.per_signal.values())


class SignalCache:
    """SQLite key → pickled output row. Thread-safe; one connection per cache."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL") if self.path else None
        self._conn.execute("CREATE TABLE IF NOT EXISTS signal_rows (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(uniq), _CHUNK):
                chunk = uniq[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._conn.execute(
                        f"SELECT key, value FROM signal_rows WHERE key IN ({marks})", chunk):
                    found[key] = pickle.loads(blob)
        return found

    def put_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        rows = [(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for k, v in items]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO signal_rows (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM signal_rows").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _fingerprint(signal: Signal) -> str:
    fp = getattr(signal, "fingerprint", None)
    return str(fp) if fp else f"{signal.name}:{signal.version}"


def _inputs(signal: Signal, frame: pd.DataFrame) -> tuple[str, ...]:
    inputs = tuple(getattr(signal, "inputs", ()) or ())
    return inputs or tuple(c for c in CANONICAL_COLUMNS if c in frame.columns)


def compute_signal(frame: pd.DataFrame, signal: Signal, cache: SignalCache | None = None,
                   stats: SignalStats | None = None) -> pd.DataFrame:
    """One signal over ``frame`` (same index), through the cache when the signal is cacheable."""
    stats = stats if stats is not None else SignalStats()
    t0, c0 = time.perf_counter(), time.process_time()
    if not len(frame):
        out = pd.DataFrame({c: pd.Series(dtype=float) for c in signal.columns}, index=frame.index)
    elif not getattr(signal, "cacheable", True):
        out = signal.compute(frame)
        stats.misses += len(frame)
    else:
        prefix = _fingerprint(signal)
        retry = tuple(getattr(signal, "retry_when_nan", ()) or ())
        keys = [f"{prefix}:{k}" for k in record_keys(frame, _inputs(signal, frame))]
        cached = cache.get_many(keys) if cache is not None else {}
        # first position of each uncached key: identical records in the batch are computed once
        first: dict[str, int] = {}
        for pos, k in enumerate(keys):
            if k not in cached and k not in first:
                first[k] = pos
        if first:
            sub = frame.iloc[list(first.values())]
            computed = signal.compute(sub)
            rows = computed.to_dict(orient="records")
            new = dict(zip(first, rows, strict=True))
            if cache is not None:
                cache.put_many((k, row) for k, row in new.items() if not _failed(row, retry))
            cached = {**cached, **new}
        stats.hits += len(keys) - len(first)
        stats.misses += len(first)
        out = pd.DataFrame.from_records([cached[k] for k in keys], index=frame.index,
                                        columns=list(signal.columns))
        for col in out.columns:  # numeric columns back to float (records of NaN/None come back as object)
            if out[col].dtype == object and all(isinstance(v, float | int) for v in out[col].head(1000)):
                out[col] = pd.to_numeric(out[col], errors="coerce")
    stats.seconds += time.perf_counter() - t0
    stats.cpu_seconds += time.process_time() - c0
    missing = set(signal.columns) - set(out.columns)
    if missing or not out.index.equals(frame.index):
        raise ValueError(f"signal {signal.name!r} broke its contract (missing {sorted(missing)} or index changed)")
    return out[list(signal.columns)]


def _failed(row: dict[str, Any], retry: tuple[str, ...]) -> bool:
    """A row whose ``retry_when_nan`` column is NaN failed (e.g. a judge call): not cached, a rerun computes it."""
    return any(isinstance(v := row.get(c), float) and v != v for c in retry)


def _uncached(frame: pd.DataFrame, signal: Signal, cache: SignalCache | None) -> list[int]:
    """Positions of ``frame`` that ``compute_signal`` will send to ``signal.compute``."""
    if not len(frame) or not getattr(signal, "cacheable", True) or cache is None:
        return list(range(len(frame)))
    prefix = _fingerprint(signal)
    keys = [f"{prefix}:{k}" for k in record_keys(frame, _inputs(signal, frame))]
    cached = cache.get_many(keys)
    return [pos for pos, k in enumerate(keys) if k not in cached]


def _shared_embedding_pass(frame: pd.DataFrame, signals: Sequence[Signal], cache: SignalCache | None) -> None:
    """Encode, in one pass per embedder, every text that the embedding signals will need for this batch
    (records missing from the cache only); each signal then reads the embedder's memo."""
    users = [s for s in signals if getattr(s, "embedding_fields", ())]
    if not users or not len(frame):
        return
    from evalmon.monitor.signals.embeddings import prefetch_embeddings

    pos = sorted({p for s in users for p in _uncached(frame, s, cache)})
    if pos:
        prefetch_embeddings(frame.iloc[pos], users)


def _prepare(frame: pd.DataFrame, signals: Sequence[Signal], cache: SignalCache | None) -> None:
    """Each signal's optional ``prepare`` (work that reads no embedding) on the records it will compute."""
    for sig in signals:
        pos = _uncached(frame, sig, cache)
        if pos:
            sig.prepare(frame.iloc[pos])  # type: ignore[attr-defined]


def _embed_and_prepare(frame: pd.DataFrame, signals: Sequence[Signal], cache: SignalCache | None) -> None:
    """The shared embedding pass and, in a second thread at the same time, the signals' ``prepare`` (e.g.
    pii's spaCy NER, single-threaded and as long as the pass: torch and spaCy release the GIL in their
    kernels, so the two overlap on 2 cores). Results are identical to running them one after the other."""
    preparers = [s for s in signals if callable(getattr(s, "prepare", None))]
    if not preparers or not len(frame):
        _shared_embedding_pass(frame, signals, cache)
        return
    from evalmon.monitor.signals.embed_onnx import cores_reserved

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalmon-prepare") as pool:
        done = pool.submit(_prepare, frame, preparers, cache)
        try:
            with cores_reserved(1):  # the preparer's core: ONNX Runtime on the others (embed_onnx.cores_reserved)
                _shared_embedding_pass(frame, signals, cache)
        finally:
            done.result()  # re-raises the preparer's error; waits for it either way


def compute_signals(frame: pd.DataFrame, signals: Sequence[Signal], cache: SignalCache | None = None,
                    stats: ComputeStats | None = None) -> pd.DataFrame:
    """``frame`` plus every signal's columns (same index); each record computed once per signal, and
    each text embedded once for all the signals that embed it (``_shared_embedding_pass``, overlapped
    with the signals' ``prepare``)."""
    produced = [c for sig in signals for c in sig.columns]
    parts = [frame.drop(columns=[c for c in produced if c in frame.columns])]
    t0, c0 = time.perf_counter(), time.process_time()
    _embed_and_prepare(frame, signals, cache)
    if stats is not None:
        stats.shared_pass.seconds += time.perf_counter() - t0
        stats.shared_pass.cpu_seconds += time.process_time() - c0
    for sig in signals:
        st = SignalStats()
        parts.append(compute_signal(frame, sig, cache, st))
        if stats is not None:
            stats.per_signal[sig.name] = st
    return pd.concat(parts, axis=1) if len(parts) > 1 else parts[0].copy()
