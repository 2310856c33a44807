"""Earnings-21 (Rev, Eval-10 subset): reference ``.nlp`` transcripts, their ``.norm.json`` alternatives,
and the four commercial systems' outputs (``output/<vendor>/<file_id>.nlp``).

Two ways to build the reference that a hypothesis is scored against:

* ``plain`` — the reference tokens as written (``2020``, ``*``, ``we'll``), like ``evalmon score wer``.
* ``alternatives`` (default) — an approximation of Rev's fstalign: every reference span tagged in the
  ``tags`` column (``['<id>:<CLASS>']``) may be read as any verbalisation that
  ``normalizations/<file_id>.norm.json[<id>].candidates`` lists (``2020`` → ``twenty twenty`` /
  ``two thousand twenty`` …; ``we'll`` → ``we will``), or as written. fstalign finds the cheapest path
  through all alternatives jointly; here each span independently takes the alternative with the
  smallest word edit distance to the hypothesis words aligned to it (plain alignment first, insertions
  at both edges included; ties keep the written form, then the most probable verbalisation), then the
  corpus WER is recomputed. Like fstalign, this can only lower the error count.

Both apply the same ``Normalization`` (default: lower-case, punctuation → space) to every token.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.core.errors import DataError
from evalmon.data.local import malformed, read_json, require_file
from evalmon.data.normalize import Normalization
from evalmon.data.transcripts import read_nlp

VENDORS = ("amazon", "google", "microsoft", "speechmatics")
PUBLISHED_EVAL10_WER = {"google": 18.5, "amazon": 18.0, "microsoft": 16.2, "speechmatics": 16.7}  # transcripts/README


@dataclass(frozen=True)
class Span:
    """Reference words of one token run; ``candidates[0]`` is the written form."""

    candidates: tuple[tuple[str, ...], ...]
    probabilities: tuple[float, ...]  # per candidate (1.0 for the written form)


def file_ids(data_dir: Path, task: str) -> list[str]:
    meta = require_file(data_dir, "earnings21/eval10-file-metadata.csv", task=task)
    with meta.open(encoding="utf-8", newline="") as fh:
        return [row["file_id"] for row in csv.DictReader(fh)]


def _words(text: str, norm: Normalization) -> tuple[str, ...]:
    return tuple(norm.apply(text).split())


def reference_spans(nlp: Path, norm_json: Path | None, norm: Normalization) -> list[Span]:
    """The reference as spans: plain tokens have one candidate; tagged runs list their alternatives."""
    rows = list(csv.reader(nlp.read_text(encoding="utf-8").splitlines(), delimiter="|", quoting=csv.QUOTE_NONE))
    if not rows or rows[0][:1] != ["token"] or "tags" not in rows[0]:
        raise malformed(nlp, "line 1", "expected the .nlp header token|speaker|…|tags")
    tag_col = rows[0].index("tags")
    norms: dict[str, Any] = read_json(norm_json) if norm_json is not None else {}
    spans: list[Span] = []
    run_id: str | None = None
    run: list[str] = []

    def flush() -> None:
        nonlocal run_id, run
        if run:
            written = _words(" ".join(run), norm)
            cands, probs = [written], [1.0]
            for c in (norms.get(run_id or "", {}) or {}).get("candidates", []):
                words = _words(" ".join(c.get("verbalization", [])), norm)
                if words not in cands:
                    cands.append(words)
                    probs.append(float(c.get("probability", 0.0)))
            spans.append(Span(tuple(cands), tuple(probs)))
        run_id, run = None, []

    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) <= tag_col:
            raise malformed(nlp, f"line {i}", f"expected {len(rows[0])} '|'-separated fields")
        try:
            tags = ast.literal_eval(row[tag_col]) if row[tag_col].strip() else []
        except (ValueError, SyntaxError):
            raise malformed(nlp, f"line {i}", f"tags column is not a list: {row[tag_col]!r}") from None
        tag = str(tags[0]).split(":")[0] if tags and str(tags[0]).split(":")[0] in norms else None
        if tag is None or tag != run_id:
            flush()
        if tag is None:
            spans.append(Span((_words(row[0], norm),), (1.0,)))
        else:
            run_id = tag
            run.append(row[0])
    flush()
    return spans


def choose_alternatives(spans: list[Span], hyp: tuple[str, ...]) -> list[str]:
    """Reference words with each span's alternative chosen against the aligned hypothesis words."""
    import jiwer
    from rapidfuzz.distance import Levenshtein

    written = [w for s in spans for w in s.candidates[0]]
    if not written or not hyp:
        return written
    out = jiwer.process_words(" ".join(written), " ".join(hyp))
    n = len(written)
    boundary = [len(hyp)] * (n + 1)  # hyp index where ref word i's aligned material starts
    ins_start: dict[int, int] = {}
    for ch in out.alignments[0]:
        if ch.type == "insert":
            ins_start[ch.ref_start_idx] = ch.hyp_start_idx
            continue
        for k in range(ch.ref_end_idx - ch.ref_start_idx):
            boundary[ch.ref_start_idx + k] = ch.hyp_start_idx + (k if ch.type != "delete" else 0)
    chosen: list[str] = []
    pos = 0
    for s in spans:
        a, b = pos, pos + len(s.candidates[0])
        pos = b
        if len(s.candidates) == 1:
            chosen.extend(s.candidates[0])
            continue
        h0 = ins_start.get(a, boundary[a])
        h1 = boundary[b] if b < n else len(hyp)
        region = list(hyp[h0:max(h0, h1)])
        best = min(range(len(s.candidates)),
                   key=lambda j: (Levenshtein.distance(list(s.candidates[j]), region), j != 0, -s.probabilities[j]))
        chosen.extend(s.candidates[best])
    return chosen


def load_pairs(data_dir: Path, vendor: str, *, task: str, norm: Normalization, alternatives: bool = True,
               limit: int | None = None) -> list[tuple[str, str, str]]:
    """``(file_id, hypothesis, reference)`` per Eval-10 recording, both already normalised."""
    if vendor not in VENDORS:
        raise DataError(f"{task}: unknown Earnings-21 system {vendor!r}", hint=f"one of {', '.join(VENDORS)}")
    out = []
    for fid in file_ids(data_dir, task)[:limit]:
        ref_path = require_file(data_dir, f"earnings21/transcripts/nlp_references/{fid}.nlp", task=task)
        hyp_path = require_file(data_dir, f"earnings21/output/{vendor}/{fid}.nlp", task=task)
        hyp = _words(read_nlp(hyp_path), norm)
        norm_json = (require_file(data_dir, f"earnings21/transcripts/normalizations/{fid}.norm.json", task=task)
                     if alternatives else None)
        spans = reference_spans(ref_path, norm_json, norm)
        ref = choose_alternatives(spans, hyp) if alternatives else [w for s in spans for w in s.candidates[0]]
        out.append((fid, " ".join(hyp), " ".join(ref)))
    return out
