"""Value-level parsing for the record schema: text from chat payloads, context lists (timestamps:
``evalmon.monitor.timeparse``)."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from evalmon.core.unicode import has_lone_surrogate, replace_lone_surrogates

RAW_LIMIT = 4096
_TEXT_KEYS = ("content", "text", "prompt", "question", "query", "input", "output", "answer", "response",
              "completion", "value")
_DOC_KEYS = ("document.content", "page_content", "content", "text")


class WrongType(ValueError):
    """A value whose type cannot be turned into the canonical field."""


def flatten(record: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dotted-path flattening of nested dicts; parents stay too (a payload dict is one value)."""
    out = {} if out is None else out
    for key, value in record.items():
        name = f"{prefix}{key}"
        out[name] = value
        if isinstance(value, dict):
            flatten(value, f"{name}.", out)
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing builds millions of small objects; the cyclic GC would rescan them all many times."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def truncate_raw(raw: str) -> str:
    return raw if len(raw) <= RAW_LIMIT else raw[:RAW_LIMIT] + f"… [{len(raw)} chars]"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NaT


def _messages_text(items: Sequence[Any], roles: tuple[str, ...]) -> str | None:
    texts: list[tuple[str | None, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            role = item.get("role", item.get("message.role"))
            text = to_text(item)
        else:
            role, text = None, to_text(item)
        if text is not None:
            texts.append((role, text))
    picked = [t for r, t in texts if r in roles] or [t for _, t in texts]
    return "\n\n".join(picked) if picked else None


def to_text(value: Any, *, structured: bool = False, roles: tuple[str, ...] = ("user", "human")) -> str | None:
    """A prompt/response value → text: strings verbatim; message arrays → the ``roles`` turns joined."""
    if is_missing(value):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        stripped = value.lstrip()
        if structured and stripped[:1] in ("{", "["):
            try:
                text = to_text(json.loads(value), roles=roles)
            except (ValueError, WrongType):
                return value
            return value if text is None else text
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return _messages_text(list(value), roles)
    if isinstance(value, Mapping):
        if "parts" in value and isinstance(value["parts"], (list, tuple, np.ndarray)):
            return _messages_text(list(value["parts"]), roles)
        if "messages" in value:
            return to_text(value["messages"], roles=roles)
        if "choices" in value and isinstance(value["choices"], (list, tuple)) and value["choices"]:
            choice = value["choices"][0]
            if isinstance(choice, Mapping):
                return to_text(choice.get("message", choice.get("text")), roles=("assistant",))
        for key in ("message.content", *_TEXT_KEYS):
            if key in value and not is_missing(value[key]):
                return to_text(value[key], roles=roles)
        if len(value) == 1:
            return to_text(next(iter(value.values())), roles=roles)
        return json.dumps(value, ensure_ascii=False, default=str)
    raise WrongType(f"expected text, got {type(value).__name__}")


def to_text_list(value: Any) -> list[str]:
    """Contexts/samples: list of strings or documents, a JSON list string, or one string."""
    if is_missing(value):
        return []
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                return [value]
        else:
            return [value] if value else []
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise WrongType(f"expected a list of texts, got {type(value).__name__}")
    out: list[str] = []
    for item in value:
        if isinstance(item, Mapping):
            text = next((item[k] for k in _DOC_KEYS if k in item and isinstance(item[k], str)), None)
            out.append(text if text is not None else json.dumps(item, ensure_ascii=False, default=str))
        elif not is_missing(item):
            out.append(str(item))
    return out


def valid_unicode(series: pd.Series) -> tuple[pd.Series, int]:
    """Text (or lists of text) with lone UTF-16 surrogates replaced by U+FFFD (``evalmon.core.unicode``), and how
    many values changed: the tokenizers of every embedding signal raised ``TypeError`` on them, Parquet and MLflow
    refuse them. Replaced here, once for every source, the record is kept (its other text is fine)."""
    mask = series.map(has_lone_surrogate).astype(bool)
    if not mask.any():
        return series, 0
    out = series.copy()
    out[mask] = series[mask].map(replace_lone_surrogates)
    return out, int(mask.sum())
