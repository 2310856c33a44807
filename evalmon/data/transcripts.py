"""Transcript readers for WER scoring: line files, Rev/Earnings-21 ``.nlp`` files, and folders of them.

``.nlp`` (Rev's fstalign input, used by Earnings-21): pipe-separated, one token per row, header
``token|speaker|ts|endTs|punctuation|case|tags[|wer_tags]``. The transcript text is the ``token``
column joined by single spaces (punctuation is a separate column and is left out, as fstalign scores
tokens). A folder holds one transcript per file; hypotheses and references pair up by file stem
(``4320211.nlp`` ↔ ``4320211.nlp``) and every stem must be on both sides.
"""

from __future__ import annotations

import csv
from pathlib import Path

from evalmon.core.errors import DataError
from evalmon.data.local import malformed

TRANSCRIPT_SUFFIXES = (".nlp", ".txt", ".trn", ".ref", ".hyp")


def read_lines(path: str | Path, what: str = "file") -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} not found: {p}", hint="check the path")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM is not part of the first line
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {p} is not UTF-8 (byte {exc.start})", hint="re-encode it as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_nlp(path: Path, with_punctuation: bool = False) -> str:
    """The transcript text of one ``.nlp`` file (tokens joined by spaces)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"transcript file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read transcript {path}: {type(e).__name__}") from None
    rows = list(csv.reader(text.splitlines(), delimiter="|", quoting=csv.QUOTE_NONE))
    if not rows or not rows[0] or rows[0][0] != "token":
        raise malformed(Path(path), "line 1", "expected an .nlp header starting with 'token|'")
    header = rows[0]
    punct = header.index("punctuation") if "punctuation" in header else None
    tokens: list[str] = []
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 1 or (punct is not None and len(row) <= punct):
            raise malformed(Path(path), f"line {i}", f"expected {len(header)} '|'-separated fields")
        tok = row[0].strip()
        if with_punctuation and punct is not None:
            tok += row[punct]
        if tok:
            tokens.append(tok)
    return " ".join(tokens)


def read_transcript(path: Path) -> str:
    """One whole transcript: ``.nlp`` tokens, or a text file's lines joined by spaces."""
    if Path(path).suffix == ".nlp":
        return read_nlp(path)
    return " ".join(line.strip() for line in read_lines(path, "transcript file") if line.strip())


def read_segments(path: str | Path, what: str = "file") -> tuple[list[str], list[str]]:
    """(ids, segments): a folder → one segment per transcript file (ids = stems, sorted); an ``.nlp``
    file → one segment; any other file → one segment per line (ids = line numbers)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in TRANSCRIPT_SUFFIXES)
        if not files:
            raise DataError(f"{what} {p} has no transcript files ({', '.join(TRANSCRIPT_SUFFIXES)})")
        return [f.stem for f in files], [read_transcript(f) for f in files]
    if p.suffix == ".nlp":
        return [p.stem], [read_nlp(p)]
    lines = read_lines(p, what)
    return [str(i + 1) for i in range(len(lines))], lines


def paired_segments(hyp: str | Path, ref: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, hypotheses, references); two folders pair by file stem (a stem on one side only: DataError). A folder
    against a file is refused: its transcripts would pair with the file's lines by sorted name, not by name."""
    if Path(hyp).is_dir() != Path(ref).is_dir():
        folder, other = (hyp, ref) if Path(hyp).is_dir() else (ref, hyp)
        raise DataError(f"{folder} is a folder of transcripts but {other} is a file: they would pair by position "
                        "(sorted file names against lines), not by recording",
                        hint="give two folders (paired by file stem) or two files (paired by line)")
    hyp_ids, hyps = read_segments(hyp, "--hyp")
    ref_ids, refs = read_segments(ref, "--ref")
    if Path(hyp).is_dir() and Path(ref).is_dir():
        missing = sorted(set(ref_ids) - set(hyp_ids))
        extra = sorted(set(hyp_ids) - set(ref_ids))
        if missing or extra:
            raise DataError(f"hypotheses {hyp} and references {ref} do not pair up: "
                            + (f"no hypothesis for {', '.join(missing[:5])}" if missing else "")
                            + ("; " if missing and extra else "")
                            + (f"no reference for {', '.join(extra[:5])}" if extra else ""),
                            hint="one transcript per recording on each side, named alike")
        by_id = dict(zip(hyp_ids, hyps, strict=True))
        return ref_ids, [by_id[i] for i in ref_ids], refs
    return ref_ids, hyps, refs
