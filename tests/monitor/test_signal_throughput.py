"""The signals' cheap paths keep their numbers (issue #14 throughput): what is skipped could not have changed
an output. Speed itself is measured in benchmarks/bench_detectors.py --sections throughput, not here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.signals.hallucination import HallucinationSignal
from evalmon.monitor.signals.pii import PiiSignal


class CountingEncoder:
    """Deterministic unit vectors per text; records what was encoded (stands in for MiniLM)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)


def test_hallucination_embeds_only_sentences_without_full_lexical_support() -> None:
    frame = pd.DataFrame({
        "prompt": ["q1", "q2"],
        "response": ["Paris is the capital of France.", "Paris is the capital of France. It has ten moons."],
        "contexts": [["Paris is the capital of France."], ["Paris is the capital of France.", "It is big."]]})
    sig = HallucinationSignal()
    enc = CountingEncoder()
    sig.embedder = enc  # type: ignore[assignment]
    out = sig.compute(frame)
    # record 0 is fully supported word for word: nothing embedded; record 1: its one novel sentence + contexts
    assert enc.seen == ["It has ten moons.", "Paris is the capital of France.", "It is big."]
    assert out["hallucination.groundedness"].iloc[0] == 1.0 and out["hallucination.flag"].iloc[0] == 0.0
    assert out["hallucination.min_support"].iloc[1] < 0.75 and out["hallucination.flag"].iloc[1] == 1.0
    lexical = HallucinationSignal(embeddings=False).compute(frame)
    assert out["hallucination.novel_tokens"].tolist() == lexical["hallucination.novel_tokens"].tolist()


@pytest.mark.e2e
def test_pii_ner_skips_texts_without_a_capital_and_runs_without_the_parser() -> None:
    """Loads spaCy: e2e lane. Lower-case texts (no digit, no "@") never reach presidio; the parser is off
    and the entities are what the full pipeline finds."""
    sig = PiiSignal(nlp="spacy")
    frame = pd.DataFrame({"response": ["sure, here is how to boil an egg.", "Anna Schmidt lives in Berlin.",
                                       "I think so.", "write to anna.s@example.com"]})
    out = sig.compute(frame)
    assert out["pii.count"].iloc[0] == 0 and out["pii.count"].iloc[2] == 0
    assert out["pii.person"].iloc[1] == 1 and out["pii.location"].iloc[1] == 1
    assert out["pii.email_address"].iloc[3] == 1
    nlp = sig.analyzer.nlp_engine.nlp["en"]
    assert "parser" not in nlp.pipe_names and "ner" in nlp.pipe_names
    full = __import__("spacy").load(sig.spacy_model)
    text = frame["response"].iloc[1]
    assert [(e.text, e.label_) for e in nlp(text).ents] == [(e.text, e.label_) for e in full(text).ents]
