"""Value-level parsing for the record schema: text from chat payloads, context lists, timestamps."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

RAW_LIMIT = 4096
_TEXT_KEYS = ("content", "text", "prompt", "question", "query", "input", "output", "answer", "response",
              "completion", "value")
_DOC_KEYS = ("document.content", "page_content", "content", "text")
_TZ_RE = r"(Z|[+-]\d{2}:?\d{2})$"
_NUMERIC_RE = r"^\s*-?\d+(\.\d*)?\s*$"


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


def _unit_factor(values: np.ndarray, unit: str | None) -> np.ndarray:
    if unit is not None:
        return np.full(values.shape, {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}[unit])
    mag = np.abs(values)
    return np.select([mag < 1e11, mag < 1e14, mag < 1e17], [1e9, 1e6, 1e3], 1.0)


def _epoch(values: pd.Series, unit: str | None) -> pd.Series:
    nums = pd.to_numeric(values, errors="coerce")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    arr = nums.to_numpy(dtype="float64")
    factor = _unit_factor(arr, unit)
    ns = arr * factor
    ok = np.isfinite(ns) & (np.abs(ns) < 9.2e18)
    if not ok.any():
        return out
    if pd.api.types.is_integer_dtype(nums.dtype):  # exact: float64 would round ns epochs to 256 ns
        exact = nums.to_numpy(dtype="int64")[ok] * factor[ok].astype("int64")
    else:
        exact = ns[ok].astype("int64")
    out[ok] = pd.to_datetime(exact, unit="ns", utc=True)
    return out


def _offset_label(tz: str) -> str:
    if tz == "Z":
        return "+00:00"
    return tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"


def parse_timestamps(raw: pd.Series, *, unit: str | None, tz: ZoneInfo,
                     tz_counts: dict[str, int]) -> pd.Series:
    """Vectorised parse to ``datetime64[ns, UTC]``; unparseable → NaT. Counts offsets into ``tz_counts``."""
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        if getattr(raw.dt, "tz", None) is None:
            tz_counts["naive"] = tz_counts.get("naive", 0) + int(raw.notna().sum())
            return raw.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        tz_counts[str(raw.dt.tz)] = tz_counts.get(str(raw.dt.tz), 0) + int(raw.notna().sum())
        return raw.dt.tz_convert("UTC")
    present = raw.notna()
    if not present.any():
        return out
    values = raw[present]
    is_num = values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
    is_str = values.map(lambda v: isinstance(v, str))
    strings = values[is_str].astype(str).str.strip()
    numeric_str = strings.str.match(_NUMERIC_RE)
    num_parts = [p for p in (values[is_num], strings[numeric_str]) if len(p)]
    num = pd.concat(num_parts) if len(num_parts) > 1 else (num_parts[0] if num_parts else strings[numeric_str])
    if len(num):
        out[num.index] = _epoch(num, unit)
        tz_counts["epoch"] = tz_counts.get("epoch", 0) + len(num)
    iso = strings[~numeric_str]
    if len(iso):
        offsets = iso.str.extract(_TZ_RE, expand=False)
        aware = offsets.notna()
        if aware.any():
            parsed = pd.to_datetime(iso[aware], utc=True, format="ISO8601", errors="coerce")
            out[iso.index[aware]] = parsed
            for label, n in offsets[aware][parsed.notna()].map(_offset_label).value_counts().items():
                tz_counts[str(label)] = tz_counts.get(str(label), 0) + int(n)
        if (~aware).any():
            naive = pd.to_datetime(iso[~aware], format="ISO8601", errors="coerce")
            out[iso.index[~aware]] = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
            tz_counts["naive"] = tz_counts.get("naive", 0) + int(naive.notna().sum())
    other = values[~is_num & ~is_str]
    for idx, value in other.items():  # datetimes, pandas Timestamps (rare: object columns)
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError):
            continue
        label = "naive" if ts.tzinfo is None else "aware"
        tz_counts[label] = tz_counts.get(label, 0) + 1
        out[idx] = ts.tz_localize(tz).tz_convert("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return out
