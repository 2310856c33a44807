"""evalmon.data.local.read_jsonl on hostile benchmark files: each problem is one DataError naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.core.errors import DataError
from evalmon.data.local import read_jsonl


def test_a_lone_surrogate_escape_is_a_one_line_error_naming_the_line(tmp_path: Path) -> None:
    """A JSON "\\ud800" without its pair decodes to text no tokenizer reads (TypeError deep in the model backend:
    an internal error for the whole run). Benchmark data must be exact, so it is refused, not replaced."""
    p = tmp_path / "d.jsonl"
    p.write_text('{"q": "fine \\ud83d\\ude00 pair"}\n\n{"q": "half \\ud800 pair"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:line 3: a \\ud800–\\udfff escape without its pair"):
        read_jsonl(p)
    p.write_text('{"q": "fine \\ud83d\\ude00 pair", "choices": ["\\u00e9"]}\n', encoding="utf-8")
    assert read_jsonl(p)[0][1]["q"] == "fine \U0001F600 pair"


def test_lone_surrogate_in_a_nested_value_or_key(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_text('{"a": {"b": ["x", "\\udfff"]}}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        read_jsonl(p)
    p.write_text('{"\\udc80": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        read_jsonl(p)
