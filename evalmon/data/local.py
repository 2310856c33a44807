"""Readers for the local benchmark mirror (a directory laid out like ``shared/benchmarks``).

Every reader raises :class:`~evalmon.core.errors.DataError` naming the exact file (and line or row) on a
missing or malformed file, never a bare ``FileNotFoundError``/``JSONDecodeError``. Parsed files are
cached in-process, keyed on ``(path, mtime, size)`` so a rewritten file is re-read; the cached
objects are shared, so callers must copy before mutating (the task loaders build fresh rows).
"""

from __future__ import annotations

import bz2
import csv
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalmon.core.errors import DataError
from evalmon.core.unicode import has_lone_surrogate

MIRROR_HINT = "set data.data_dir to a local mirror laid out like shared/benchmarks"


def require_file(data_dir: Path | str, relative: str, *, task: str) -> Path:
    """``data_dir / relative`` as an absolute path, or a DataError naming what was looked for."""
    root = Path(data_dir).expanduser()
    if not root.is_absolute():
        root = Path.cwd() / root
    path = root / relative
    if not root.is_dir():
        raise DataError(
            f"{task}: data directory {root} does not exist (looked for {path})",
            hint=f"{MIRROR_HINT} (it must contain {relative})",
        )
    if not path.is_file():
        raise DataError(
            f"{task}: data file not found: {path}",
            hint=f"{MIRROR_HINT} (it must contain {relative})",
        )
    return path


def malformed(path: Path, where: str, problem: str) -> DataError:
    """A DataError for a malformed record: ``<path>:<where>: <problem>``."""
    return DataError(f"malformed data file {path}:{where}: {problem}")


def _stamp(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(path), st.st_mtime_ns, st.st_size


# ----------------------------------------------------------------------------------------- CSV


def read_csv(path: Path) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """All records of a header-less UTF-8 CSV as ``(first_line_number, fields)``.

    Uses the csv module (MMLU fields contain embedded newlines and quotes).
    """
    return _read_csv(*_stamp(path))


@lru_cache(maxsize=512)
def _read_csv(path: str, _mtime: int, _size: int) -> tuple[tuple[int, tuple[str, ...]], ...]:
    out: list[tuple[int, tuple[str, ...]]] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            start = 1
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    raise malformed(Path(path), f"line {reader.line_num}", f"CSV error: {e}") from None
                if fields:
                    out.append((start, tuple(fields)))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise malformed(Path(path), f"byte {e.start}", "not valid UTF-8") from None
    return tuple(out)


# ---------------------------------------------------------------------------------------- JSON


def read_json(path: Path) -> Any:
    """One JSON document (object or array)."""
    return _read_json(*_stamp(path))


@lru_cache(maxsize=64)
def _read_json(path: str, _mtime: int, _size: int) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise malformed(Path(path), f"line {e.lineno}", f"invalid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise malformed(Path(path), f"byte {e.start}", "not valid UTF-8") from None


def read_jsonl(path: Path) -> tuple[tuple[int, Any], ...]:
    """JSON lines as ``(line_number, value)``; blank lines are skipped."""
    return _read_jsonl(*_stamp(path))


@lru_cache(maxsize=64)
def _read_jsonl(path: str, _mtime: int, _size: int) -> tuple[tuple[int, Any], ...]:
    out: list[tuple[int, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise malformed(Path(path), f"line {lineno}", f"invalid JSON ({e.msg})") from None
                if _SURROGATE_ESCAPE.search(line) and has_lone_surrogate(value):
                    raise malformed(Path(path), f"line {lineno}", "a \\ud800–\\udfff escape without its pair is not "
                                    "valid Unicode (no tokenizer reads it); fix or drop the line")
                out.append((lineno, value))
    except UnicodeDecodeError as e:
        raise malformed(Path(path), f"byte {e.start}", "not valid UTF-8") from None
    return tuple(out)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # benchmark data must be exact: refused, not replaced


# ----------------------------------------------------------------------------------------- text


def read_lines(path: Path) -> tuple[str, ...]:
    """Text lines without their line endings; ``.bz2`` files are decompressed (HellaSwag: ~0.3 s)."""
    return _read_lines(*_stamp(path))


@lru_cache(maxsize=16)
def _read_lines(path: str, _mtime: int, _size: int) -> tuple[str, ...]:
    try:
        raw = Path(path).read_bytes()
        if path.endswith(".bz2"):
            raw = bz2.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, ValueError, EOFError) as e:  # bz2 errors are OSError; decode errors ValueError
        raise malformed(Path(path), "0", f"cannot read ({e})") from None
    lines = text.split("\n")  # not splitlines(): that would also split on \x0b, \u2028, ...
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.removesuffix("\r") for line in lines)
