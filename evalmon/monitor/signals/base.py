"""Shared pieces of the per-record signals: a base class, text/list column access, sentence splitting,
tokenising for lexical overlap, deterministic sampling and the offline guard for model loading.

A signal is a pure function of a batch of canonical records (see ``evalmon.monitor.contracts``) →
new columns with the same index, prefixed by the signal's name. Rate-like outputs are 0/1 floats.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError
from evalmon.core.jsonout import canonical_hash

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Sentence ends: ., !, ? (or a run of them) followed by whitespace, or glued to a capital letter
# ("...19th century.First for Women ..." — common in scraped passages), or a newline.
_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[a-z0-9][.!?])(?=[A-Z])|\n+")
STOPWORDS = frozenset(["a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "into", "onto", "over", "under", "about", "above", "below", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "have", "has", "had", "having", "it", "its", "it's", "this", "that", "these", "those", "there", "here", "which", "who", "whom", "whose", "what", "when", "where", "why", "how", "i", "me", "my", "we", "our", "you", "your", "he", "him", "his", "she", "her", "they", "them", "their", "not", "no", "nor", "so", "than", "too", "very", "can", "could", "will", "would", "shall", "should", "may", "might", "must", "just", "also", "only", "s", "t", "d", "ll", "re", "ve", "m", "up", "out", "off", "again", "further", "once", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "own", "same"])


class BaseSignal:
    """Convenience base for evalmon's signals (the contract is the ``Signal`` protocol).

    ``inputs``: the canonical columns the signal reads — they and ``fingerprint`` (name, version and
    options) make the per-record cache key. ``cacheable = False`` for signals that are cheaper to
    recompute (vectorised string/number arithmetic) than to look up.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "1"
    cacheable: ClassVar[bool] = True
    columns: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """Options that change the numbers (part of the cache key)."""
        return {}

    @property
    def fingerprint(self) -> str:
        return canonical_hash([self.name, self.version, self.options()])

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def empty(self, index: pd.Index) -> pd.DataFrame:
        """All-NaN output (object columns stay None) for the given index."""
        return pd.DataFrame({c: np.full(len(index), np.nan) for c in self.columns}, index=index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options()})"


def text_series(frame: pd.DataFrame, column: str) -> pd.Series:
    """Column as ``str`` with missing values (and a missing column) as ``""``."""
    if column not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    s = frame[column]
    if s.dtype != object:
        s = s.astype(object)
    s = s.where(s.notna(), "")
    if pd.api.types.infer_dtype(s, skipna=False) in ("string", "empty"):
        return s
    return s.map(lambda v: v if isinstance(v, str) else _to_text(v))


def _to_text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, list | tuple | np.ndarray):
        return "\n".join(_to_text(x) for x in v)
    return str(v)


def list_series(frame: pd.DataFrame, column: str) -> list[list[str]]:
    """A list-of-strings column (contexts, samples) as Python lists; a bare string is one item."""
    if column not in frame.columns:
        return [[] for _ in range(len(frame))]
    out: list[list[str]] = []
    for v in frame[column].tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        elif isinstance(v, str):
            out.append([v] if v.strip() else [])
        elif isinstance(v, list | tuple | np.ndarray):
            out.append([_to_text(x) for x in v if x is not None and _to_text(x).strip()])
        else:
            out.append([_to_text(v)])
    return out


def numeric_series(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def split_sentences(text: str, *, max_sentences: int = 200, min_chars: int = 2) -> list[str]:
    """Split prose into sentences (regex; good enough for support checks, not linguistics)."""
    parts = (p.strip() for p in _SENT_SPLIT.split(text))
    out = [p for p in parts if len(p) >= min_chars and _WORD.search(p)]
    return out[:max_sentences]


def content_tokens(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords (numbers kept)."""
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def window_cutoff(sampled: Sequence[np.ndarray], cap: int) -> float | None:
    """A per-window cost cap as a cutoff: the ``cap``-th smallest distinct draw among the window's sampled records
    (each partition's array), so a partition keeps the records whose own draw is at or below it — the same set
    however the window is split. ``None``: the cap is not reached (every sampled record is kept)."""
    draws = np.unique(np.concatenate(list(sampled) or [np.zeros(0)]))
    if len(draws) <= cap:
        return None
    return float(draws[cap - 1]) if cap else -1.0  # draws are in [0, 1): a cap of 0 keeps none


def stable_fraction(key: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) from a string (sampling that is stable across reruns)."""
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def record_keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Content hash per row over ``columns`` (missing columns hash as absent)."""
    present = [c for c in columns if c in frame.columns]
    cols = [frame[c].tolist() for c in present]
    keys = []
    for row in zip(*cols, strict=True) if cols else ([] for _ in range(len(frame))):
        payload = json.dumps([_jsonable(v) for v in row], ensure_ascii=False, default=str)
        keys.append(hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest())
    return keys


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float) and np.isnan(v):
        return None
    if v is pd.NaT or v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@contextlib.contextmanager
def offline(allow_download: bool = False) -> Iterator[None]:
    """Hub libraries stay offline while a model loads unless the YAML opted in (``allow_download``)."""
    if allow_download:
        yield
        return
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    # huggingface_hub reads the variable once, at import: flip its constant too when already imported
    hub = sys.modules.get("huggingface_hub.constants")
    hub_saved = getattr(hub, "HF_HUB_OFFLINE", None)
    if hub is not None:
        hub.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if hub is not None:
            hub.HF_HUB_OFFLINE = hub_saved  # type: ignore[attr-defined]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def require_local_path(path: str, what: str, allow_download: bool) -> str:
    """A model reference must be an existing local directory unless downloads are allowed."""
    if allow_download or os.path.isdir(path):
        return path
    raise ConfigError(f"{what}: {path!r} is not a local directory and downloads are off",
                      hint="point it at a saved checkpoint directory, or set allow_download: true")


def quiet_transformers() -> None:
    """No weight-loading progress bars in monitor logs."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
