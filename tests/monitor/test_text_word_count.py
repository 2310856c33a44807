"""The text signal's word count (``str.split()`` per record) equals the regex count ``\\S+`` it replaced —
including Unicode whitespace (no-break, ideographic, line/paragraph separators, information separators)."""

from __future__ import annotations

import random

import pandas as pd

from evalmon.monitor.signals.text import TextSignal

ODD = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2007\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"


def test_word_count_equals_the_regex_count_on_unicode_whitespace() -> None:
    rnd = random.Random(0)
    alphabet = "ab é中" + ODD
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 25))) for _ in range(1500)]
    frame = pd.DataFrame({"prompt": [*texts, None, ""], "response": ["x y"] * (len(texts) + 2)})
    got = TextSignal(language=False).compute(frame)["text.prompt_words"]
    want = frame["prompt"].fillna("").str.count(r"\S+").astype(float)
    assert got.tolist() == want.tolist() and got.dtype == float and got.max() > 3
