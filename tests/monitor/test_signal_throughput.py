"""The signals' cheap paths keep their numbers (issue #14 throughput): what is skipped could not have changed
an output. Speed itself is measured in benchmarks/bench_detectors.py --sections throughput, not here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalmon.core.errors import DataError
from evalmon.monitor.detectors import Detector, FirstStage, Member, load_detector_file
from evalmon.monitor.signals.embeddings import (
    DEFAULT_MODEL,
    Embedder,
    EmbeddingSignal,
    detector_needs,
    detector_scores,
    prefetch_embeddings,
)
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


# -- the detectors' cascade and the sampled embedding-drift signal (issue #14: the expensive pass on a few %) ----
class CountingEmbedder(Embedder):
    """An ``Embedder`` (so the shared pass accepts it) whose vectors are CountingEncoder's; no model loads."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = CountingEncoder()

    def encode(self, texts):  # type: ignore[override]
        return self.enc.encode(list(texts))


def _member(rng: np.random.Generator, dim: int = 8) -> Member:
    return Member(coef=rng.normal(size=dim).tolist(), intercept=0.0, a=-2.0, b=0.0)


def _cascade(cut: float) -> Detector:
    rng = np.random.default_rng(0)
    det = Detector(name="t", version="1", field="prompt", embedding_model=DEFAULT_MODEL, max_chars=2000,
                   threshold=0.5, members=[_member(rng) for _ in range(3)])
    det.first_stage = FirstStage(embedding_model="static:test", escalate_above=cut,
                                 members=[_member(rng) for _ in range(3)])
    return det


def test_cascade_embeds_only_escalated_texts_and_scores_them_as_the_full_detector(monkeypatch) -> None:
    static = CountingEncoder()
    monkeypatch.setattr("evalmon.monitor.signals.static_embed._STATIC", static)
    texts = [f"prompt number {i}" for i in range(40)] + [""]
    det, emb = _cascade(0.5), CountingEmbedder()
    p1 = det.first_stage.predict_proba_vectors(static.encode(texts[:-1]))
    static.seen.clear()
    out = detector_scores(det, emb, texts)
    esc = p1 >= 0.5
    assert 0 < esc.sum() < len(esc)  # the fixture escalates some, not all
    assert emb.enc.seen == [t for t, e in zip(texts, esc, strict=False) if e]  # MiniLM sees only the band
    assert detector_needs(det, texts) == emb.enc.seen
    full = detector_scores(det, emb, texts, cascade=False)
    assert np.array_equal(out[:-1][esc], full[:-1][esc])  # escalated: exactly the full detector's probability
    assert np.array_equal(out[:-1][~esc], p1[~esc]) and np.isnan(out[-1])
    assert np.array_equal(detector_scores(_cascade(0.0), emb, texts), full, equal_nan=True)  # cut 0: everything escalates


def test_first_stage_is_its_own_artifact(tmp_path) -> None:
    det = _cascade(0.25)
    assert det.first_stage is not None
    det.first_stage.save(tmp_path / "t.first_stage.json")
    assert FirstStage.load(tmp_path / "t.first_stage.json") == det.first_stage
    det.save(tmp_path / "t.json")  # the detector's own file does not carry it: older artifacts stay as they are
    assert "first_stage" not in det.to_json() and load_detector_file(tmp_path / "t.json").first_stage is None
    (tmp_path / "bad.json").write_text('{"members": []}')
    with pytest.raises(DataError, match=r"bad\.json: not a first-stage artifact"):
        FirstStage.load(tmp_path / "bad.json")


def test_embedding_signal_samples_a_bounded_seeded_subset() -> None:
    frame = pd.DataFrame({"prompt": [f"p{i}" for i in range(400)], "response": [f"r{i}" for i in range(400)]})
    sig = EmbeddingSignal(sample_rate=0.1, sample_min=50, sample_max=5000)
    assert EmbeddingSignal().sample_min == 200  # the default: windows of ≤ 200 records are embedded whole
    sig.embedder = CountingEmbedder()
    out = sig.compute(frame)
    has = out["embedding.prompt"].map(lambda v: isinstance(v, np.ndarray)).to_numpy()
    assert has.sum() == 50 == len(sig.sampled(frame))  # max(50, ceil(0.1 * 400))
    assert (out["embedding.response"].map(lambda v: isinstance(v, np.ndarray)).to_numpy() == has).all()
    # a bottom-k sample of the records' hashes: the same records whatever the batch order
    rev = frame.iloc[::-1]
    assert set(rev.iloc[sig.sampled(rev)]["prompt"]) == set(frame.iloc[sig.sampled(frame)]["prompt"])
    assert set(sig.embedding_texts(frame)) == set(frame.iloc[sig.sampled(frame)][["prompt", "response"]].stack())
    assert len(sig.sampled(frame.head(30))) == 30  # a batch under sample_min: every record
    every = EmbeddingSignal(sample_rate=1.0)
    every.embedder = CountingEmbedder()
    assert every.compute(frame)["embedding.prompt"].map(lambda v: isinstance(v, np.ndarray)).all()


def test_shared_pass_encodes_what_signals_declare() -> None:
    emb = CountingEmbedder()

    class Declares:
        embedder, embedding_fields = emb, ("prompt",)

        def embedding_texts(self, frame: pd.DataFrame) -> list[str]:
            return frame["prompt"].tolist()[:2]

    prefetch_embeddings(pd.DataFrame({"prompt": ["a", "b", "c"]}), [Declares()])
    assert emb.enc.seen == ["a", "b"]


def test_default_embedding_backend_is_onnx_for_the_bundled_minilm_when_installed(monkeypatch) -> None:
    from evalmon.monitor.signals import embeddings as emb_mod

    def fresh(**env: str) -> Embedder:
        monkeypatch.setattr(emb_mod, "_EMBEDDERS", {})
        monkeypatch.delenv("EVALMON_EMBEDDINGS_BACKEND", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return emb_mod.get_embedder()

    assert emb_mod.onnx_installed()  # the dev/monitor extras install ONNX Runtime
    assert fresh().backend == "onnx" and fresh().quantize is None
    assert fresh(EVALMON_EMBEDDINGS_BACKEND="torch").backend == "torch"
    monkeypatch.setattr(emb_mod, "_EMBEDDERS", {})
    assert emb_mod.get_embedder("some/other-model").backend == "torch"  # only the model checked for equivalence
    monkeypatch.setattr(emb_mod, "onnx_installed", lambda: False)
    assert fresh().backend == "torch"


def test_auto_onnx_falls_back_to_torch_when_onnx_runtime_fails(monkeypatch, capsys) -> None:
    """The default backend was chosen by ``auto``: an ONNX export/runtime failure warns and uses torch (same
    numbers); an explicit ``onnx`` or a user's bad setting (an EvalmonError) still fails."""
    from evalmon.core.errors import ConfigError
    from evalmon.monitor.signals import embed_onnx

    class TorchModel:
        max_seq_length = 256

        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            return np.ones((len(texts), 4), np.float64)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("export failed")
    monkeypatch.setattr(embed_onnx, "onnx_supported", lambda model: True)
    monkeypatch.setattr(embed_onnx, "OnnxEncoder", type("Broken", (), {"from_model": staticmethod(broken)}))
    auto = Embedder(backend="onnx")
    auto.fallback = True
    out = auto._encode_model(TorchModel(), ["a", "b"])
    assert out.shape == (2, 4) and out.dtype == np.float32 and auto.backend == "torch"
    assert "ONNX Runtime unavailable (RuntimeError: export failed); using torch" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="export failed"):
        Embedder(backend="onnx")._encode_model(TorchModel(), ["a"])  # asked for explicitly

    def bad_setting(*_: object, **__: object) -> None:
        raise ConfigError("EVALMON_EMBEDDINGS_THREADS='x' is not a number of threads")
    monkeypatch.setattr(embed_onnx, "OnnxEncoder", type("BadSetting", (), {"from_model": staticmethod(bad_setting)}))
    again = Embedder(backend="onnx")
    again.fallback = True
    with pytest.raises(ConfigError, match="THREADS"):
        again._encode_model(TorchModel(), ["a"])
