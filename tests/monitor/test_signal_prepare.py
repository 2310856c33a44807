"""``prepare``: a signal's work that reads no embedding runs in a second thread during the shared embedding pass
(issue #14 throughput: pii's spaCy NER beside MiniLM). The numbers must be the ones computed without it."""

from __future__ import annotations

import threading
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.signals import SignalCache, compute_signals
from evalmon.monitor.signals import cache as cache_mod
from evalmon.monitor.signals.base import BaseSignal
from evalmon.monitor.signals.pii import PiiSignal

FRAME = pd.DataFrame({"prompt": ["a", "b", "c", "d"],
                      "response": ["reach me at ann@example.org", "mail bob@example.com", "nothing here", "reach me at ann@example.org"]})


class Preparing(BaseSignal):
    """Records where ``prepare`` ran and on which records; ``compute`` reads what it prepared."""

    name: ClassVar[str] = "prep"
    version: ClassVar[str] = "1"
    columns = ("prep.len",)
    embedding_fields = ("response",)  # a user of the shared pass, so there is a pass to overlap

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.prepared: list[list[str]] = []
        self.ready: dict[str, float] = {}

    def prepare(self, frame: pd.DataFrame) -> None:
        self.threads.append(threading.current_thread().name)
        self.prepared.append(frame["response"].tolist())
        self.ready = {t: float(len(t)) for t in frame["response"]}

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"prep.len": [self.ready.get(t, np.nan) for t in frame["response"]]}, index=frame.index)


def test_prepare_runs_in_a_second_thread_during_the_shared_pass(monkeypatch) -> None:
    passes: list[str] = []
    monkeypatch.setattr(cache_mod, "_shared_embedding_pass",
                        lambda frame, signals, cache: passes.append(threading.current_thread().name))
    sig = Preparing()
    out = compute_signals(FRAME, [sig])
    assert passes == [threading.current_thread().name]
    assert len(sig.threads) == 1 and sig.threads[0].startswith("evalmon-prepare")
    assert out["prep.len"].tolist() == [float(len(t)) for t in FRAME["response"]]


def test_prepare_sees_only_the_records_compute_will_get(monkeypatch) -> None:
    monkeypatch.setattr(cache_mod, "_shared_embedding_pass", lambda frame, signals, cache: None)
    cache = SignalCache()
    sig = Preparing()
    compute_signals(FRAME.head(2), [sig], cache)
    compute_signals(FRAME, [sig], cache)  # records 0–1 are cached now
    assert sig.prepared[1] == ["nothing here", "reach me at ann@example.org"]


def test_a_failing_prepare_fails_the_batch(monkeypatch) -> None:
    monkeypatch.setattr(cache_mod, "_shared_embedding_pass", lambda frame, signals, cache: None)
    sig = Preparing()

    def boom(frame: pd.DataFrame) -> None:
        raise RuntimeError("spaCy broke")
    sig.prepare = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="spaCy broke"):
        compute_signals(FRAME, [sig])


@pytest.mark.e2e
def test_pii_prepare_gives_the_same_numbers_and_is_dropped_after_compute() -> None:
    """Loads presidio (~15 s cold): e2e lane."""
    sig = PiiSignal(nlp="none", sensitive=False)
    alone = sig.compute(FRAME)
    sig.prepare(FRAME)
    assert set(sig._prepared) == {"reach me at ann@example.org", "mail bob@example.com"}  # deduplicated candidates
    prepared = sig.compute(FRAME)
    pd.testing.assert_frame_equal(alone, prepared)
    assert sig._prepared == {}
    assert alone["pii.any"].tolist() == [1.0, 1.0, 0.0, 1.0]


@pytest.mark.e2e
def test_pii_texts_without_digits_skip_the_lemmatizer_and_find_the_same_entities(monkeypatch) -> None:
    """Loads spaCy: e2e lane. Texts with no digit or "@" run spaCy's NER alone (no tagger/lemmatizer: presidio
    reads lemmas only for context words); every text must give what presidio's full pipeline gives."""
    from evalmon.monitor.signals import pii as pii_mod

    sig = PiiSignal(nlp="spacy", sensitive=False)
    texts = ["Anna Schmidt moved from Berlin to Lisbon with her French colleague.",
             "Dear Mr. Okafor, the Nairobi office will call you.",
             "Call Maria Lopez at 212-555-0199 or maria@example.com.",
             "My SSN is 078-05-1120 and I live in Austin, Texas.",
             "The Eiffel Tower is in Paris. Americans love it."]
    lean_sizes: list[int] = []
    real = pii_mod._ner_only_artifacts
    monkeypatch.setattr(pii_mod, "_ner_only_artifacts",
                        lambda engine, ts: (lean_sizes.append(len(ts)), real(engine, ts))[1])
    got = sig._analyze(texts)
    assert lean_sizes == [3]  # the three texts without a digit or "@"
    an = sig.analyzer
    kw = {"language": "en", "entities": list(sig.entities), "score_threshold": sig.score_threshold}
    ref = [an.analyze(t, nlp_artifacts=a, **kw) for t, a in an.nlp_engine.process_batch(texts, language="en")]

    def key(rs: list) -> list:
        return sorted((r.entity_type, r.start, r.end, round(float(r.score), 9)) for r in rs)
    assert [key(r) for r in got] == [key(r) for r in ref]
    assert {"PERSON", "LOCATION"} <= {r.entity_type for r in got[0]}
