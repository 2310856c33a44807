"""Text normalisation applied identically to references and hypotheses before WER/CER/MER.

Default (``Normalization()``): lower-case → expand common English contractions? no (off by default) →
remove punctuation (Unicode category P*, keeping apostrophes inside words) → collapse whitespace → strip.
Every step is a flag so a team can match the normaliser its published numbers used. Lives in ``data/``
because readers (Earnings-21 reference spans) normalise tokens too; ``evalmon.metrics.asr`` re-exports it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Normalization:
    lowercase: bool = True
    remove_punctuation: bool = True
    expand_contractions: bool = False
    collapse_whitespace: bool = True

    def describe(self) -> str:
        on = [k for k, v in asdict(self).items() if v]
        return "+".join(on) if on else "none"

    def apply(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.expand_contractions:
            import jiwer

            text = jiwer.ExpandCommonEnglishContractions()(text)
        if self.remove_punctuation:
            text = "".join(" " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text)
            text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
        if self.collapse_whitespace:
            text = " ".join(text.split())
        return text.strip()


__all__ = ["Normalization"]
