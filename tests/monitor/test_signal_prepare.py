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
def test_pii_runs_the_lemmatizer_only_where_presidio_reads_lemmas(monkeypatch) -> None:
    """Loads spaCy: e2e lane. Every text runs spaCy's NER alone first (no tagger/lemmatizer); presidio reads lemmas
    only for context words near a result of a recogniser with context words (phone, e-mail, SSN …), and only such
    texts run the full pipeline again. Every text must give what presidio's full pipeline gives."""
    from evalmon.monitor.signals import pii as pii_mod

    sig = PiiSignal(nlp="spacy", sensitive=False)
    texts = ["Anna Schmidt moved from Berlin to Lisbon with her French colleague.",
             "Dear Mr. Okafor, the Nairobi office will call you.",
             "Call Maria Lopez at 212-555-0199 or maria@example.com.",
             "My phone number is 415-555-0132 and I live in Austin, Texas.",
             "The Eiffel Tower is in Paris. Americans love it.",
             "In 2023 Ravi Patel sold 40 bikes in Pune for $1,200 each."]  # a digit, no context-bearing result
    an = sig.analyzer
    lean: list[list[str]] = []
    full: list[list[str]] = []
    real_lean, real_full = pii_mod._ner_only_artifacts, an.nlp_engine.process_batch
    monkeypatch.setattr(pii_mod, "_ner_only_artifacts", lambda engine, ts: (lean.append(ts), real_lean(engine, ts))[1])
    monkeypatch.setattr(an.nlp_engine, "process_batch", lambda ts, **kw: (full.append(ts), real_full(ts, **kw))[1])
    got = sig._analyze(texts)
    assert lean == [texts] and full == [[texts[2], texts[3]]]
    monkeypatch.undo()
    kw = {"language": "en", "entities": list(sig.entities), "score_threshold": sig.score_threshold}
    ref = [an.analyze(t, nlp_artifacts=a, **kw) for t, a in an.nlp_engine.process_batch(texts, language="en")]

    def key(rs: list) -> list:
        return sorted((r.entity_type, r.start, r.end, round(float(r.score), 9)) for r in rs)
    assert [key(r) for r in got] == [key(r) for r in ref]
    assert {"PERSON", "LOCATION"} <= {r.entity_type for r in got[0]}
    assert {"PHONE_NUMBER", "EMAIL_ADDRESS"} <= {r.entity_type for r in got[2]}
    assert [r.score for r in got[3] if r.entity_type == "PHONE_NUMBER"] == [0.75]  # context ("phone") raised 0.4


@pytest.mark.accuracy
def test_pii_lean_pass_equals_presidios_pipeline_on_real_answers(benchmarks_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The proof on real text: 80 MT-Bench model answers that hold a digit (code, maths, dates, lists), where the NER
    of the lean pass must equal the full pipeline's and some texts are handed back (2 here; session 16 measured 400
    answers: 1,339 entities, 0 differing). Every entity, offset and score equals presidio's full pipeline. (Where a
    context word changes a score, the test above shows it; on these answers none did.)"""
    import json
    import re

    answers = sorted({t for path in sorted((benchmarks_dir / "mt_bench/model_answer").glob("*.jsonl"))[:6]
                      for line in path.open(encoding="utf-8")
                      for t in json.loads(line)["choices"][0]["turns"] if re.search(r"[0-9@]", t)})[:80]
    sig = PiiSignal(nlp="spacy", sensitive=False)
    an = sig.analyzer
    handed: list[int] = []
    real_full = an.nlp_engine.process_batch
    monkeypatch.setattr(an.nlp_engine, "process_batch", lambda ts, **kw: (handed.append(len(ts)), real_full(ts, **kw))[1])
    got = sig._analyze(answers)
    monkeypatch.undo()
    kw = {"language": "en", "entities": list(sig.entities), "score_threshold": sig.score_threshold}
    ref = [an.analyze(t, nlp_artifacts=a, **kw) for t, a in an.nlp_engine.process_batch(answers, language="en")]

    def key(rs: list) -> list:
        return sorted((r.entity_type, r.start, r.end, round(float(r.score), 9)) for r in rs)
    assert len(answers) == 80 and sum(len(r) for r in ref) > 100 and 0 < sum(handed) < 20
    assert [key(r) for r in got] == [key(r) for r in ref]


@pytest.mark.e2e
def test_lean_analysis_stops_where_presidio_would_read_lemmas() -> None:
    """Imports presidio (~9 s): e2e lane. The rule behind the lean pass, without spaCy: a result of a recogniser with context words, request-level
    context words, or a recogniser that enhances results itself — and nothing else — needs lemmas."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    from evalmon.monitor.signals.pii import _reads_lemmas

    class Plain(EntityRecognizer):
        def load(self) -> None: ...

        def analyze(self, text, entities, nlp_artifacts=None):
            return []

    class Enhancing(Plain):
        def enhance_using_context(self, text, raw_recognizer_results, other_raw_recognizer_results,
                                  nlp_artifacts, context=None):
            return raw_recognizer_results

    plain, with_ctx = Plain(["X"], name="a"), Plain(["X"], name="b", context=["phone"])
    key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
    res = {r.name: RecognizerResult("X", 0, 1, 0.5, recognition_metadata={key: r.id}) for r in (plain, with_ctx)}
    assert not _reads_lemmas([], [plain, with_ctx], ["phone"])
    assert not _reads_lemmas([res["a"]], [plain, with_ctx], None)
    assert _reads_lemmas([res["b"]], [plain, with_ctx], None)
    assert _reads_lemmas([res["a"]], [plain], ["phone"])
    assert _reads_lemmas([res["a"]], [plain, Enhancing(["X"], name="c")], None)
