"""JSONL and CSV traffic files (a file, a directory searched recursively, or a glob; ``.gz`` is read too).

Bad lines never stop a read: unparseable JSON, non-object lines, CSV rows with the wrong number of fields
and lines with invalid UTF-8 become :class:`QuarantinedRecord` s naming the line. Invalid UTF-8 is
quarantined by default (``invalid_utf8: quarantine``, raw text decoded with U+FFFD); ``replace`` keeps
the record with U+FFFD in place of the bad bytes and counts it in ``stats["invalid_utf8"]``.
A quarantined line is attributed to the window of its own timestamp, else of the line before it (else
the first parsed line after it), so each is counted once; a file with no usable time at all leaves its
quarantined lines *unplaced* (reported by every run that reads the file).

A file that cannot be read to its end — a truncated or corrupt ``.gz`` stream, or binary data (a NUL
byte, which JSON and CSV text never hold) — is ``file.corrupt``. ``on_corrupt: fail`` (default) raises a
``DataError`` naming the file, the line and the byte offset (of the uncompressed data); ``quarantine``
keeps every line read before the damage, quarantines a NUL line (and reads on), or quarantines the
unreadable rest of a broken stream as one record.
Parsed files are cached per (path, mtime, size, hour) (the hour: "more than a day in the future" moves with
the clock). ``read`` parses whole files; the monitor's windowed reads (``partitions`` = the files,
``read_partition``) go through a per-file ``SpillIndex`` instead: each file is parsed once in chunks kept on
disk, and a window loads only the chunks its time range meets — the same records, bounded memory.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
import os
import re
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, overload

import pandas as pd

from evalmon.core.errors import DataError
from evalmon.monitor.contracts import SourceBatch
from evalmon.monitor.parsing import gc_paused
from evalmon.monitor.quarantine import FILE_CORRUPT
from evalmon.monitor.schema import Normalized, normalize_frame, normalize_records
from evalmon.monitor.sources.base import Part, check_window, merge, place, quarantine, to_utc
from evalmon.monitor.sources.spill import CHUNK_RECORDS, SpillIndex
from evalmon.monitor.timeparse import Plausible

SIDE_CAR = (".truth.jsonl", ".events.json")  # written next to synthetic traffic by `traffic synth`
_SURROGATE = re.compile("[\udc80-\udcff]")
csv.field_size_limit(sys.maxsize)  # default 128 KiB would reject a 1 MB response


_MISSING = ("write the traffic there first (e.g. `evalmon traffic synth --out …`) or fix source.path in the monitor "
            "YAML (a relative path resolves against the YAML's folder)")


def expand_paths(path: str, base_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """A file, a directory (recursive, by suffix) or a glob → sorted files; DataError when absent."""
    p = Path(path).expanduser()
    p = p if p.is_absolute() else Path(base_dir) / p
    text = str(p)
    if glob.has_magic(text):
        files = _one_name_each(sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()))
        if not files:
            prefix = text[: min(text.find(c) for c in "*?[" if c in text)]
            root = Path(prefix) if prefix.endswith("/") else Path(prefix).parent
            if not root.exists():
                raise DataError(f"source path does not exist: {os.path.normpath(root)} (from {text})", hint=_MISSING)
            raise DataError(f"source path {text}: the glob matches no files",
                            hint="fix the pattern (relative paths resolve against the monitor YAML's folder)")
        return files
    if p.is_dir():
        found = _one_name_each(sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(suffixes)
                                      and not f.name.endswith(SIDE_CAR)))
        if not found:
            raise DataError(f"source path {p}: the directory holds no {'/'.join(suffixes)} file",
                            hint="point source.path at the traffic files (or a glob such as dir/*.jsonl)")
        return found
    if p.is_file():
        return [p]
    raise DataError(f"source path does not exist: {os.path.normpath(p)}", hint=_MISSING)


def _one_name_each(files: list[Path]) -> list[Path]:
    """One path per file (sorted; the first name that is no symlink): a symlink (``current.jsonl -> app-….jsonl``,
    log rotation) or a hard link is a second name for the same records, which were read and counted twice."""
    names: dict[tuple[int, int], list[Path]] = {}
    for f in files:
        st = f.stat()
        names.setdefault((st.st_dev, st.st_ino), []).append(f)
    keep = {next((n for n in group if not n.is_symlink()), group[0]) for group in names.values()}
    return [f for f in files if f in keep]


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


_CORRUPT_HINT = "fix or remove the file, or set `on_corrupt: quarantine` on the source to process what is readable"


def _stream_problem(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed stream ends before its end marker (truncated file?)"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip stream ({exc})"
    if isinstance(exc, zlib.error):
        return f"corrupt compressed data ({exc})"
    return f"read error ({exc})"


def read_lines(path: Path, on_broken: Callable[[int, int, str], None]) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw line)`` of a (possibly gzipped) file; a stream that breaks off
    calls ``on_broken(next line number, byte offset of the uncompressed data, what broke)`` and ends."""
    offset = lineno = 0
    with _open(path) as fh:
        if path.suffix != ".gz":  # gzip's magic is never JSON/CSV text (0x8b is no UTF-8 lead byte)
            if fh.read(2) == b"\x1f\x8b":
                on_broken(1, 0, f"gzip-compressed data in a file not named .gz (rename it {path.name}.gz)")
                return
            fh.seek(0)
        while True:
            try:
                raw = fh.readline()
            except (EOFError, OSError, zlib.error) as exc:
                on_broken(lineno + 1, offset, _stream_problem(exc))
                return
            if not raw:
                return
            lineno += 1
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as utf-8-sig reads it
                offset, raw = 3, raw[3:]
            yield lineno, offset, raw
            offset += len(raw)


class _Dumps(Sequence[str]):
    """Raw text of record i, computed only for the few rows that get quarantined."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [json.dumps(r, ensure_ascii=False, default=str) for r in self.records[i]]
        return json.dumps(self.records[i], ensure_ascii=False, default=str)

    def __len__(self) -> int:
        return len(self.records)


class FileSource:
    """Base: expand paths, parse each file once (cached), merge the window; windowed reads go through a
    per-file ``SpillIndex`` (one partition per file, records of one window in memory)."""

    suffixes: tuple[str, ...] = ()

    def __init__(self, name: str, path: str, base_dir: Path, *, columns: dict[str, str],
                 assume_timezone: str, keep: Sequence[str] = (), invalid_utf8: str = "quarantine",
                 on_corrupt: str = "fail", plausible: Plausible | None = None) -> None:
        self.name = name
        self.path = path
        self.base_dir = Path(base_dir)
        self.columns = dict(columns)
        self.assume_timezone = assume_timezone
        self.keep = list(keep)
        self.invalid_utf8 = invalid_utf8
        self.on_corrupt = on_corrupt
        self.plausible = plausible or Plausible()
        self._cache: dict[Path, tuple[tuple[int, int, int], Part]] = {}
        self._indexes: dict[Path, tuple[tuple[int, ...], SpillIndex]] = {}

    @staticmethod
    def _signature(f: Path) -> tuple[int, int, int]:
        st = f.stat()
        return st.st_mtime_ns, st.st_size, int(time.time() // 3600)

    def read(self, start: datetime | None = None, end: datetime | None = None) -> SourceBatch:
        files = expand_paths(self.path, self.base_dir, self.suffixes)
        parts: list[Part] = []
        for f in files:
            sig = self._signature(f)
            hit = self._cache.get(f)
            if hit is None or hit[0] != sig:
                with gc_paused():
                    hit = (sig, self.parse(f))
                self._cache[f] = hit
            parts.append(hit[1])
        self._cache = {f: self._cache[f] for f in files}
        return merge(parts, start, end, {"files": len(files), "source": self.name})

    def parse(self, path: Path) -> Part:
        """The whole file: its records normalized at once, unparseable lines placed by their neighbours."""
        part = Part(name=str(path), norm=normalize_records([], source=str(path)))
        bad_lines: list[int] = []
        items = list(self._items(path, part, bad_lines))
        good_lines = [n for n, _ in items]
        part.norm = self._normalize(path, items, good_lines)
        part.pre_times = place(bad_lines, good_lines, part.norm)
        return part

    # ------------------------------------------------------------------ windowed reads (one file = one partition)

    def _index(self, f: Path) -> SpillIndex:
        sig = self._signature(f)[:2]  # one run's reads: the same "now" bound (a rebuild mid-run would re-parse)
        hit = self._indexes.get(f)
        if hit is not None and hit[0] == sig:
            return hit[1]
        index = self.index_lines(f)
        self._indexes[f] = (sig, index)
        return index

    def index_lines(self, f: Path, raw: Iterable[tuple[int, int, bytes]] | None = None) -> SpillIndex:
        """The file's ``SpillIndex``, parsed from ``raw`` — ``(line number, byte offset, line)`` as
        ``read_lines`` yields them, e.g. lines Spark read (``spark.reads: native``) — else from the file."""
        index = SpillIndex()
        part = Part(name=str(f), norm=normalize_records([], source=str(f)))
        bad_lines: list[int] = []
        chunk: list[tuple[int, Any]] = []

        def flush() -> None:
            lines = [n for n, _ in chunk]
            index.add(self._normalize(f, chunk, lines, arrival_offset=index.records, place_by_neighbour=False),
                      lines)
            chunk.clear()

        with gc_paused():
            for item in self._items(f, part, bad_lines, raw):
                chunk.append(item)
                if len(chunk) >= CHUNK_RECORDS:
                    flush()
            if chunk:
                flush()
        index.finish(bad_lines, part.pre_quarantined)
        return index

    def _indexed(self) -> list[tuple[Path, SpillIndex, int]]:
        """Every file with its index and arrival offset (records of the files before it)."""
        files = expand_paths(self.path, self.base_dir, self.suffixes)
        out, offset = [], 0
        for f in files:
            index = self._index(f)
            out.append((f, index, offset))
            offset += index.records
        self._indexes = {f: self._indexes[f] for f in files}
        return out

    def partitions(self, start: datetime | None, end: datetime | None) -> list[str]:
        lo, hi = check_window(start, end)
        return [str(f) for f, index, _ in self._indexed() if index.meets(lo, hi)]

    def read_partition(self, partition: str, start: datetime | None, end: datetime | None) -> SourceBatch:
        for f, index, offset in self._indexed():
            if str(f) == partition:
                return self.index_batch(partition, index, offset, start, end)
        raise DataError(f"source file {partition} disappeared during the run",
                        hint="keep traffic files in place while a monitor run reads them")

    def index_batch(self, partition: str, index: SpillIndex, offset: int, start: datetime | None,
                    end: datetime | None) -> SourceBatch:
        """``read_partition``'s batch from the file's index (``offset``: records of the files before it)."""
        lo, hi = check_window(start, end)
        frame, quarantined, times = index.read(lo, hi, offset)
        return SourceBatch(frame=frame, quarantined=quarantined, quarantined_times=times,
                           stats={"source": self.name, "files": 1, "partition": partition, "rows": len(frame),
                                  "quarantined": len(quarantined),
                                  "timestamps_dropped": index.timestamps_dropped,  # whole file (signals score)
                                  "window": [None if lo is None else lo.isoformat(),
                                             None if hi is None else hi.isoformat()]})

    def earliest(self, end: datetime | None) -> datetime | None:
        hi = to_utc(end)
        firsts = [t for _, index, _ in self._indexed() if (t := index.earliest(hi)) is not None]
        return min(firsts).floor("us").to_pydatetime() if firsts else None

    # ------------------------------------------------------------------ parsing

    def _items(self, path: Path, part: Part, bad_lines: list[int],
               raw: Iterable[tuple[int, int, bytes]] | None = None) -> Iterator[tuple[int, Any]]:
        """``(line number, parsed item)`` per good line (of ``raw`` when given, see ``index_lines``); bad lines
        go to ``part`` and ``bad_lines``."""
        raise NotImplementedError

    def _normalize(self, path: Path, items: Sequence[tuple[int, Any]], good_lines: list[int], *,
                   arrival_offset: int = 0, place_by_neighbour: bool = True) -> Normalized:
        raise NotImplementedError

    def _normalize_kwargs(self, path: Path, good_lines: list[int], arrival_offset: int = 0,
                          place_by_neighbour: bool = True) -> dict[str, Any]:
        return {"source": str(path), "locations": [f"line {n}" for n in good_lines], "mapping": self.columns,
                "assume_timezone": self.assume_timezone, "keep": self.keep, "plausible": self.plausible,
                "place_by_neighbour": place_by_neighbour, "arrival_offset": arrival_offset}

    def _corrupt(self, path: Path, part: Part, bad_lines: list[int], lineno: int, offset: int, what: str,
                 raw: bytes = b"") -> None:
        """``file.corrupt`` at a line: a one-line DataError (``on_corrupt: fail``) or a quarantined record."""
        where = f"line {lineno}, byte {offset}" + (" of the uncompressed data" if path.suffix == ".gz" else "")
        if self.on_corrupt != "quarantine":
            raise DataError(f"corrupt input file {path} at {where}: {what}", hint=_CORRUPT_HINT)
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n") if raw else f"<unreadable from byte {offset}>"
        part.pre_quarantined.append(quarantine(str(path), where, f"{FILE_CORRUPT}: {what}", text))
        part.stats["corrupt"] = part.stats.get("corrupt", 0) + 1
        bad_lines.append(lineno)

    def _lines(self, path: Path, part: Part, bad_lines: list[int],
               given: Iterable[tuple[int, int, bytes]] | None = None) -> Iterator[tuple[int, bytes]]:
        """Non-blank lines without NUL bytes (of the file, or ``given``); damage goes through ``_corrupt``."""
        def broken(lineno: int, offset: int, what: str) -> None:
            self._corrupt(path, part, bad_lines, lineno, offset, what)

        for lineno, offset, raw in (read_lines(path, broken) if given is None else given):
            if offset == 0 and _utf16(raw):  # the whole file, not each of its lines, is in another encoding
                raise DataError(f"{path}: the file is UTF-16 text, not UTF-8 (every line would read as binary data)",
                                hint=f"re-encode it: iconv -f UTF-16 -t UTF-8 {path.name} > "
                                     f"{path.name.split('.')[0]}.utf8{''.join(path.suffixes)}")
            if b"\0" in raw:
                self._corrupt(path, part, bad_lines, lineno, offset + raw.index(b"\0"),
                              "binary data (a NUL byte) in a text file", raw)
                continue
            yield lineno, raw

    def _decode(self, raw: bytes, path: Path, lineno: int, part: Part, bad_lines: list[int]) -> str | None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            part.stats["invalid_utf8"] = part.stats.get("invalid_utf8", 0) + 1
            if self.invalid_utf8 == "replace":
                return text
            reason = f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", reason, text.rstrip("\r\n")))
            bad_lines.append(lineno)
            return None


def _utf16(first_line: bytes) -> bool:
    """A UTF-16 file's first line: a byte-order mark (FF FE / FE FF), or ASCII text with every other byte NUL."""
    if first_line.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = first_line[:64]
    return len(head) >= 8 and (head[1::2].count(0) == len(head[1::2]) or head[0::2].count(0) == len(head[0::2]))


class JsonlSource(FileSource):
    suffixes = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")  # directory scans; a named file may be any

    def _items(self, path: Path, part: Part, bad_lines: list[int],
               raw_lines: Iterable[tuple[int, int, bytes]] | None = None) -> Iterator[tuple[int, Any]]:
        for lineno, raw in self._lines(path, part, bad_lines, raw_lines):
            if not raw.strip():
                continue
            text = self._decode(raw, path, lineno, part, bad_lines)
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                col = getattr(exc, "colno", None)
                reason = f"unparseable JSON: {msg}" + (f" at column {col}" if col else "")
                part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", reason, text.rstrip("\r\n")))
                bad_lines.append(lineno)
                continue
            if not isinstance(value, dict):
                reason = f"JSON line is not an object (got {type(value).__name__})"
                part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", reason, text.rstrip("\r\n")))
                bad_lines.append(lineno)
                continue
            yield lineno, value

    def _normalize(self, path: Path, items: Sequence[tuple[int, Any]], good_lines: list[int], *,
                   arrival_offset: int = 0, place_by_neighbour: bool = True) -> Normalized:
        records = [value for _, value in items]
        return normalize_records(records, raws=_Dumps(records),
                                 **self._normalize_kwargs(path, good_lines, arrival_offset, place_by_neighbour))


class _LineTap:
    """Iterates text lines for csv.reader and remembers the lines of the current row (its raw text); lines given
    back (``give_back``) are read again first."""

    def __init__(self, lines: Iterator[tuple[int, bytes]]) -> None:
        self.source = iter(lines)
        self.again: deque[tuple[int, str]] = deque()
        self.lines: list[tuple[int, str]] = []  # (file line number, text) of the current row

    def __iter__(self) -> Iterator[str]:
        while True:
            if self.again:
                lineno, line = self.again.popleft()
            else:
                nxt = next(self.source, None)
                if nxt is None:
                    return
                lineno, line = nxt[0], nxt[1].decode("utf-8", errors="surrogateescape")
            self.lines.append((lineno, line))
            yield line

    def take(self) -> tuple[str, int]:
        """The current row's raw text and first line number."""
        raw = "".join(line for _, line in self.lines).rstrip("\r\n")
        first = self.lines[0][0] if self.lines else 0
        self.lines = []
        return raw, first

    def give_back(self) -> tuple[str, int, int]:
        """The current row's first line (raw text, line number) and how many lines after it go back to be read
        again — for a row whose quote never closed (it swallowed every later line)."""
        (first, line), rest = self.lines[0], self.lines[1:]
        self.again.extendleft(reversed(rest))
        self.lines = []
        return line.rstrip("\r\n"), first, len(rest)


class CsvSource(FileSource):
    suffixes = (".csv", ".csv.gz", ".tsv")

    def __init__(self, *args: Any, delimiter: str = ",", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delimiter = delimiter

    def _delimiter(self, path: Path) -> str:
        """``.tsv`` files (picked up by directory scans) are tab-separated unless the source names a delimiter."""
        tsv = path.name.lower().endswith((".tsv", ".tsv.gz"))
        return "\t" if tsv and self.delimiter == "," else self.delimiter

    def _items(self, path: Path, part: Part, bad_lines: list[int],
               raw_lines: Iterable[tuple[int, int, bytes]] | None = None) -> Iterator[tuple[int, Any]]:
        """Good rows as ``(line, (header, row, raw))``."""
        tap = _LineTap(self._lines(path, part, bad_lines, raw_lines))
        delim = self._delimiter(path)
        # strict: a quoted field still open at the end of the file is an error (not a row that swallowed every
        # later line); so is text after a closing quote (`"a"b`), which the lenient reader glued together
        reader = csv.reader(tap, delimiter=delim, strict=True)
        header: list[str] | None = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if len(tap.lines) > 1:  # a quote opened on the row's first line ran on over later lines
                    end = tap.lines[-1][0]
                    raw, lineno, n = tap.give_back()  # the opening line alone; the lines after it are read again
                    bad_lines.append(lineno)
                    why = ("never closes" if "unexpected end of data" in str(exc)
                           else f"runs to line {end}, where the row is not valid CSV ({exc})")
                    part.pre_quarantined.append(quarantine(
                        str(path), f"line {lineno}", f"bad CSV row: a quoted field opened on this line {why}; "
                        f"this line is left out and the {n} line(s) after it are read again", raw))
                    reader = csv.reader(tap, delimiter=delim, strict=True)
                    continue
                raw, lineno = tap.take()
                bad_lines.append(lineno)
                part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", f"bad CSV row: {exc}", raw))
                continue
            raw, lineno = tap.take()
            if not row or all(not c.strip() for c in row):
                continue
            if any(_SURROGATE.search(c) for c in row):
                part.stats["invalid_utf8"] = part.stats.get("invalid_utf8", 0) + 1
                fixed = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                if self.invalid_utf8 != "replace":
                    bad_lines.append(lineno)
                    part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", "invalid UTF-8", fixed))
                    continue
                row = [c.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for c in row]
                raw = fixed
            if header is None:
                header = row
                other = next((d for d in ";\t|," if d != delim and len(row) == 1 and d in row[0]), None)
                if other is not None:  # else "no column for required field(s)": true, but not why
                    raise DataError(f"{path}: the CSV header (line {lineno}) is one column {row[0][:60]!r}: the file "
                                    f"looks {other!r}-separated, not {delim!r}-separated",
                                    hint=f"set `delimiter: {other!r}` on the source (evalmon signals score: "
                                         f"--delimiter {other!r})")
                dup = sorted({c for c in row if row.count(c) > 1})
                if dup:
                    raise DataError(f"{path}: the CSV header (line {lineno}) names column {dup[0]!r} more than "
                                    "once", hint="rename or remove the duplicate column so each name is unique")
                continue
            if len(row) != len(header):
                bad_lines.append(lineno)
                reason = f"CSV row has {len(row)} fields, header has {len(header)}"
                part.pre_quarantined.append(quarantine(str(path), f"line {lineno}", reason, raw))
                continue
            yield lineno, (header, [c if c != "" else None for c in row], raw)

    def _normalize(self, path: Path, items: Sequence[tuple[int, Any]], good_lines: list[int], *,
                   arrival_offset: int = 0, place_by_neighbour: bool = True) -> Normalized:
        header = items[0][1][0] if items else []
        df = pd.DataFrame([row for _, (_, row, _) in items], columns=header, dtype=object)
        return normalize_frame(df, raws=[raw for _, (_, _, raw) in items], strict_columns=True,
                               **self._normalize_kwargs(path, good_lines, arrival_offset, place_by_neighbour))
