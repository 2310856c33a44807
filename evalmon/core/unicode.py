"""Lone UTF-16 surrogates: what ``json.loads`` returns for half of an escaped pair (``"\\ud800"``, e.g. an emoji cut
by a UTF-16 logger). An escaped pair becomes one character, so any surrogate left in a string is half of one — text
no tokenizer, Parquet writer or MLflow accepts. Benchmark readers refuse it (``evalmon.data.local``); monitored
traffic replaces it with U+FFFD (``evalmon.monitor.parsing.valid_unicode``)."""

from __future__ import annotations

import re
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: Any) -> bool:
    """True when ``value`` (a string, or lists / dicts of them, keys included) holds a lone surrogate."""
    if isinstance(value, str):
        return LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def replace_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate replaced by U+FFFD (strings and lists of them; anything else as is)."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_lone_surrogates(v) for v in value]
    return value
