"""Pydantic's errors for a value that fits no member of a union, as one error (used by ``yamlio``).

For ``columns: Literal["auto"] | DriftColumns`` and ``columns: 5`` pydantic reports one error per member,
each at a location ending in the member's tag (``columns.literal['auto']``, ``columns.DriftColumns``) — a
key the user never wrote. ``union_tag`` tells such a tag from a key; ``member_wants`` says what each member
takes, so the error reads ``columns: expected 'auto' or a mapping, got 5``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

UNION = "union_mismatch"  # (evalmon's) error type: several union members' type errors at one key, merged
# how pydantic names a union member in a loc: literal['auto'], function-after[...], list[str], int, a model class
_TAG = re.compile(r"^(?:[a-z-]+\[.*\]|int|float|str|bool|bytes|none|[A-Z]\w*)$")
_EXPECTED = {"model_type": "a mapping", "dict_type": "a mapping", "model_attributes_type": "a mapping",
             "list_type": "a list", "tuple_type": "a list", "int_type": "an integer", "int_parsing": "an integer",
             "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
             "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
             "none_required": "null"}


def union_tag(data: Any, loc: tuple[str | int, ...], err: Mapping[str, Any]) -> bool:
    """The last part of ``loc`` is the tag of a union member pydantic tried (``literal['auto']``,
    ``DriftColumns``, ``function-after[…]``), not a key: the value above it is in ``data`` and has no such key
    (a missing key's error is at a key that is not there either — never a tag)."""
    if not loc or not isinstance(loc[-1], str) or err["type"] in ("missing", "extra_forbidden") \
            or not _TAG.match(loc[-1]):
        return False
    cur = data
    for part in loc[:-1]:
        if (isinstance(cur, dict) and part in cur) or (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)):
            cur = cur[part]
        else:
            return False
    return not (isinstance(cur, dict) and loc[-1] in cur)


def member_wants(members: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """What each member takes (``'auto'``, ``a mapping``), deduplicated; None when one failed otherwise than
    on the value's type (a validator's error: better shown in its own words)."""
    wants: list[str] = []
    for m in members:
        want = (str((m.get("ctx") or {}).get("expected", "")) or None) if m["type"] == "literal_error" \
            else _EXPECTED.get(m["type"])
        if want is None:
            return None
        wants.append(want)
    return list(dict.fromkeys(wants))
