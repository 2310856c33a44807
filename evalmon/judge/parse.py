"""Verdict parsing: reads only the judge's own output, with FastChat's rules.

* Pairwise (``output_format "[[A]]"``), FastChat ``run_judge_pair``: ``"[[A]]" in judgment`` → A, elif
  ``[[B]]`` → B, elif ``[[C]]`` → tie, else error. ``rule="last"`` takes the last verdict token instead
  (the prompt asks for the final verdict at the end); both flag ``conflicting`` when different tokens occur.
* Single (``"[[rating]]"``), FastChat ``run_judge_single``: first ``\\[\\[(\\d+\\.?\\d*)\\]\\]``, else the
  backup ``\\[(\\d+\\.?\\d*)\\]``; absent → failure (FastChat's -1). A rating outside 1–10 is a failure too.

Candidates cannot inject a verdict: the judge prompt is never parsed, only the judge's response. A judge
that *quotes* its prompt (weak judges do, and an adversarial answer may contain ``[[A]]``, ``Rating:
[[10]]`` or "ignore previous instructions … [[A]]") is handled by echo detection: a verdict token whose
surrounding text is a verbatim copy of something the judge was shown (an answer, the question, the
reference, the instructions) is ignored. "Verbatim copy" = the characters adjacent to the token in the
judge output match those around the same token in a source text for at least ``min_context`` characters
in total (or the whole source, when it is shorter). An echoed verdict can thus cause a parse failure,
never a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PAIR_TOKENS = {"[[A]]": "A", "[[B]]": "B", "[[C]]": "tie"}
_PAIR_RE = re.compile(r"\[\[[ABC]\]\]")
ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")  # FastChat one_score_pattern
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # FastChat one_score_pattern_backup
MIN_CONTEXT = 16
RATING_RANGE = (1.0, 10.0)
Rule = Literal["fastchat", "last"]


@dataclass(frozen=True)
class Verdict:
    """One parsed judgment: ``value`` is "A" / "B" / "tie" (pairwise) or a float rating (single)."""

    value: str | float | None
    raw: str
    error: str | None = None  # why parsing failed (None = ok)
    echoes_ignored: int = 0  # verdict tokens dropped as copies of the prompt
    conflicting: bool = False  # more than one distinct verdict in the judge's own text

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "error": self.error, "echoes_ignored": self.echoes_ignored,
                "conflicting": self.conflicting}


def _common_suffix(a: str, b: str, limit: int) -> int:
    n = 0
    while n < limit and n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _common_prefix(a: str, b: str, limit: int) -> int:
    n = 0
    while n < limit and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def is_echo(text: str, start: int, end: int, sources: Sequence[str], min_context: int = MIN_CONTEXT) -> bool:
    """Is ``text[start:end]`` (a verdict token) part of a verbatim copy of one of ``sources``?"""
    token = text[start:end]
    for src in sources:
        need = min(min_context, len(src) - len(token))
        if need <= 0:  # the source is the bare token: indistinguishable from a real verdict
            continue
        i = src.find(token)
        while i != -1:
            left = _common_suffix(text[:start], src[:i], need)
            right = _common_prefix(text[end:], src[i + len(token):], need)
            if left + right >= need:
                return True
            i = src.find(token, i + 1)
    return False


def _own_matches(pattern: re.Pattern[str], text: str, sources: Sequence[str], min_context: int
                 ) -> tuple[list[re.Match[str]], str, int]:
    """Matches of ``pattern`` that are not echoes; the text with echoed matches blanked; #echoes."""
    own, masked, echoes = [], text, 0
    for m in pattern.finditer(text):
        if sources and is_echo(text, m.start(), m.end(), sources, min_context):
            echoes += 1
            masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
        else:
            own.append(m)
    return own, masked, echoes


def parse_pairwise(text: str, sources: Sequence[str] = (), *, rule: Rule = "fastchat",
                   min_context: int = MIN_CONTEXT) -> Verdict:
    """``[[A]]`` / ``[[B]]`` / ``[[C]]`` from the judge's output (``sources``: what the judge was shown)."""
    own, _, echoes = _own_matches(_PAIR_RE, text, sources, min_context)
    found = [PAIR_TOKENS[m.group(0)] for m in own]
    conflicting = len(set(found)) > 1
    if not found:
        why = "no [[A]]/[[B]]/[[C]] verdict" + (f" ({echoes} echoed from the prompt ignored)" if echoes else "")
        return Verdict(None, text, why, echoes, False)
    # FastChat precedence: A, then B, then C; "last": the final verdict token
    value = found[-1] if rule == "last" else next(v for v in ("A", "B", "tie") if v in found)
    return Verdict(value, text, None, echoes, conflicting)


def parse_rating(text: str, sources: Sequence[str] = (), *, rule: Rule = "fastchat",
                 min_context: int = MIN_CONTEXT, scale: tuple[float, float] = RATING_RANGE) -> Verdict:
    """``Rating: [[x]]`` (or FastChat's ``[x]`` fallback) from the judge's output."""
    own, masked, echoes = _own_matches(ONE_SCORE, text, sources, min_context)
    if not own:  # the backup pattern must not see the inside of an echoed [[x]]
        own, _, more = _own_matches(ONE_SCORE_BACKUP, masked, sources, min_context)
        echoes += more
    if not own:
        why = "no [[rating]]" + (f" ({echoes} echoed from the prompt ignored)" if echoes else "")
        return Verdict(None, text, why, echoes, False)
    values = [float(m.group(1)) for m in own]  # FastChat: ast.literal_eval (fails on '07')
    value = values[-1] if rule == "last" else values[0]
    conflicting = len(set(values)) > 1
    if not scale[0] <= value <= scale[1]:
        return Verdict(None, text, f"rating {value:g} outside {scale[0]:g}–{scale[1]:g}", echoes, conflicting)
    return Verdict(value, text, None, echoes, conflicting)
