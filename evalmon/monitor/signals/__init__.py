"""Per-record monitor signals: registry, YAML configs and ``build_signals``.

A monitor YAML lists signals by name with their options::

    signals:
      - text
      - {name: pii, nlp: none}
      - {name: hallucination, support_threshold: 0.75, judge: {model: {path: ./judge}, sample_rate: 0.05}}

``build_signals`` validates that list (each entry with the config class its ``name`` registered in
``evalmon.core.registry.signals``, through ``evalmon.config.signals``; unknown names get "did you mean")
and returns ``Signal`` objects (``evalmon.monitor.contracts.Signal``); ``compute_signals`` (cache.py)
runs them over a batch with the per-record cache. Models load lazily on first use and never
download unless ``allow_download: true`` (per signal, or for all via ``build_signals(...,
allow_download=True)``). Heavy libraries (torch, presidio) are imported only when a signal runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel
from evalmon.config.signals import BaseSignalConfig, SignalConfig, parse_signal_configs, relative_to_yaml
from evalmon.core import registry
from evalmon.core.errors import ConfigError, did_you_mean
from evalmon.monitor.contracts import Signal
from evalmon.monitor.signals.cache import ComputeStats, SignalCache, compute_signal, compute_signals
from evalmon.monitor.signals.hallu_config import register as _register_context_free

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"  # same as embeddings.DEFAULT_MODEL (kept import-light)


class _SignalConfig(BaseSignalConfig, BaseModel):  # BaseModel named for linters (mutable defaults)
    """The built-in signals' config base: ``BaseSignalConfig`` (``evalmon.config.signals``, re-exported here
    for plugins), which each subclass extends with ``name: Literal[...]`` and its options."""


def _check_patterns(patterns: dict[str, str]) -> dict[str, str]:
    """``extra_patterns``: every value a regex that compiles (an error at load time, naming the key, not a
    crash once the reference has been scored)."""
    for key, rx in patterns.items():
        try:
            re.compile(rx)
        except re.error as e:
            raise PydanticCustomError("regex", "{key}: invalid regex {rx}: {err}",
                                      {"key": key, "rx": repr(rx), "err": str(e),
                                       "hint": "fix the pattern (YAML: quote it with single quotes)"}) from None
    return patterns


class TextConfig(_SignalConfig):
    name: Literal["text"] = "text"
    fields: list[str] = ["prompt", "response"]
    language: bool = True
    language_chars: int = Field(200, ge=10)
    min_language_chars: int = Field(8, ge=0)
    chars_per_token: float = Field(4.0, gt=0)


class UsageConfig(_SignalConfig):
    name: Literal["usage"] = "usage"
    estimate_missing_tokens: bool = True
    chars_per_token: float = Field(4.0, gt=0)
    # model name (the record's `model`; "*" = any) -> local tokenizer dir/tokenizer.json for missing counts;
    # not dumped when empty, so existing monitors keep their config hash
    tokenizers: dict[str, str] = Field(default_factory=dict, exclude_if=lambda v: not v)


class RefusalConfig(_SignalConfig):
    name: Literal["refusal"] = "refusal"
    field: str = "response"
    head_chars: int = Field(400, ge=10)
    extra_patterns: dict[str, str] = {}
    classifier: bool = True  # the shipped refusal detector OR the patterns (false: patterns only)
    threshold: float | None = Field(None, ge=0, le=1)  # None: the detector's validated default
    allow_download: bool = False

    _patterns = field_validator("extra_patterns")(_check_patterns)


class EmbeddingConfig(_SignalConfig):
    name: Literal["embedding", "embeddings"] = "embedding"
    fields: list[str] = ["prompt", "response"]
    model: str = DEFAULT_MODEL  # or a local sentence-transformers directory
    device: str = "cpu"
    batch_size: int = Field(64, ge=1)
    max_chars: int = Field(2000, ge=16)
    allow_download: bool = False
    # bounded seeded sample per batch (embeddings.EmbeddingSignal): min(n, max(sample_min, ceil(rate·n)), sample_max)
    # records; sample_rate 1 = every record. Not dumped at their defaults.
    sample_rate: float = Field(0.1, gt=0, le=1, exclude_if=lambda v: v == 0.1)
    sample_min: int = Field(200, ge=2, exclude_if=lambda v: v == 200)
    sample_max: int = Field(5000, ge=2, exclude_if=lambda v: v == 5000)
    seed: int = Field(0, exclude_if=lambda v: v == 0)


class PiiConfig(_SignalConfig):
    name: Literal["pii"] = "pii"
    fields: list[str] = ["response"]
    entities: list[str] | None = None  # None: the regex entities (+ PERSON/LOCATION/NRP with nlp: spacy)
    nlp: Literal["auto", "none", "spacy"] = "auto"  # auto: spacy when an English model is installed
    spacy_model: str | None = None  # None: the first installed en_core_web_* package
    score_threshold: float = Field(0.4, ge=0, le=1)
    extra_patterns: dict[str, str] = {}
    max_chars: int = Field(100_000, ge=100)
    allow_download: bool = False
    # pii.sensitive(_score): the shipped pii_sensitive detector over the shared embedding; threshold None: the
    # artifact's. Not dumped at their defaults.
    sensitive: bool = Field(True, exclude_if=lambda v: v)
    sensitive_threshold: float | None = Field(None, ge=0, le=1, exclude_if=lambda v: v is None)
    batch_size: int = Field(64, ge=1, exclude_if=lambda v: v == 64)

    _patterns = field_validator("extra_patterns")(_check_patterns)

    @model_validator(mode="after")
    def _known_entities(self) -> PiiConfig:
        """An entity no recogniser serves is an error here (presidio would fail on the first text)."""
        from evalmon.monitor.signals.pii import KNOWN_ENTITIES  # the signal's own list (light import)

        known = {*KNOWN_ENTITIES, *(k.upper() for k in self.extra_patterns)}
        for e in self.entities or ():
            if e.upper() not in known:
                raise PydanticCustomError(
                    "pii_entity", "entities: unknown entity {got}{close}",
                    {"got": repr(e), "close": did_you_mean(e.upper(), sorted(known)),
                     "hint": f"use {', '.join(sorted(known))}, or add it under extra_patterns (ENTITY: regex)"})
        return self


class SafetyClassifierConfig(ConfigModel, BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # a saved transformers text-classification checkpoint directory
    label: str = ""  # the positive label (default: the last label name in sorted order)
    field: str = "prompt"
    threshold: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(16, ge=1)
    max_chars: int = Field(2000, ge=16)

    @field_validator("path")
    @classmethod
    def _near_yaml(cls, v: str, info: ValidationInfo) -> str:
        return relative_to_yaml(v, info, only_if_there=True) or v


class SafetyConfig(_SignalConfig):
    name: Literal["safety"] = "safety"
    method: Literal["classifier", "exemplars"] = "classifier"
    # detectors with a first stage score every text on static embeddings and send only an uncertain band to
    # MiniLM (docs/monitor-signals.md "Throughput"); false: MiniLM for every text. Not dumped at its default.
    cascade: bool = Field(True, exclude_if=lambda v: v)
    # detectors with an lm probe (harmful_request v4) re-score the texts they find suspicious with a probe over the
    # embedded checkpoint's hidden states. Unset: when `evalmon init` has built it in this folder (else one warning
    # and the detector alone, at its own threshold); true: required; false: never
    lm_probe: bool | None = Field(None, exclude_if=lambda v: v is None)
    # a shipped detector's version other than the default, e.g. {harmful_request: "4"} (its lm probe; opt-in)
    versions: dict[str, str] = Field({}, exclude_if=lambda v: not v)
    exemplars: bool = True
    data_dir: str | None = None
    replace_builtin: bool = False
    targets: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    top_k: int = Field(3, ge=1)
    model: str = DEFAULT_MODEL
    batch_size: int = Field(64, ge=1)
    classifier: SafetyClassifierConfig | None = None
    allow_download: bool = False

    @field_validator("data_dir")
    @classmethod
    def _near_yaml(cls, v: str | None, info: ValidationInfo) -> str | None:
        return relative_to_yaml(v, info)

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, v: dict[str, float]) -> dict[str, float]:
        """Each label's threshold is a probability (a score ≥ it flags the label)."""
        for label, thr in v.items():
            if not 0 <= thr <= 1:
                raise PydanticCustomError("threshold", "{label}: {thr} is not between 0 and 1",
                                          {"label": label, "thr": thr,
                                           "hint": "a probability threshold, e.g. 0.5"})
        return v


class JudgeConfig(ConfigModel, BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: dict[str, Any] | None = None  # an evalmon model config ({path: …}); or pass judge= in code
    sample_rate: float = Field(0.05, ge=0, le=1)
    seed: int = 0
    template: str | None = None
    max_gen_toks: int = Field(8, ge=1)
    max_per_window: int | None = Field(None, ge=1)  # cost cap: judged records per window (hallucination.py)


class HallucinationConfig(_SignalConfig):
    name: Literal["hallucination"] = "hallucination"
    embeddings: bool = True
    support_threshold: float = Field(0.75, ge=0, le=1)
    embedding_floor: float = Field(0.5, ge=0, lt=1)
    max_unsupported_ratio: float = Field(0.0, ge=0, le=1)
    model: str = DEFAULT_MODEL
    batch_size: int = Field(64, ge=1)
    max_sentences: int = Field(64, ge=1)
    max_context_chars: int = Field(20_000, ge=100)
    judge: JudgeConfig | None = None
    allow_download: bool = False


def _text(cfg: TextConfig, **_: Any) -> Signal:
    from evalmon.monitor.signals.text import TextSignal

    return TextSignal(cfg.fields, language=cfg.language, language_chars=cfg.language_chars,
                      min_language_chars=cfg.min_language_chars, chars_per_token=cfg.chars_per_token)


def _usage(cfg: UsageConfig, **_: Any) -> Signal:
    from evalmon.monitor.signals.usage import UsageSignal

    return UsageSignal(estimate_missing_tokens=cfg.estimate_missing_tokens, chars_per_token=cfg.chars_per_token,
                       tokenizers=cfg.tokenizers)


def _refusal(cfg: RefusalConfig, *, allow_download: bool = False, **_: Any) -> Signal:
    from evalmon.monitor.signals.refusal import RefusalSignal

    return RefusalSignal(field=cfg.field, head_chars=cfg.head_chars, extra_patterns=cfg.extra_patterns,
                         classifier=cfg.classifier, threshold=cfg.threshold,
                         allow_download=cfg.allow_download or allow_download)


def _embedding(cfg: EmbeddingConfig, *, allow_download: bool = False, **_: Any) -> Signal:
    from evalmon.monitor.signals.embeddings import EmbeddingSignal

    return EmbeddingSignal(cfg.fields, model=cfg.model, device=cfg.device, batch_size=cfg.batch_size,
                           max_chars=cfg.max_chars, allow_download=cfg.allow_download or allow_download,
                           sample_rate=cfg.sample_rate, sample_min=cfg.sample_min, sample_max=cfg.sample_max,
                           seed=cfg.seed)


def _pii(cfg: PiiConfig, *, allow_download: bool = False, **_: Any) -> Signal:
    from evalmon.monitor.signals.pii import PiiSignal

    return PiiSignal(cfg.fields, entities=cfg.entities, nlp=cfg.nlp, spacy_model=cfg.spacy_model,
                     score_threshold=cfg.score_threshold, extra_patterns=cfg.extra_patterns,
                     max_chars=cfg.max_chars, allow_download=cfg.allow_download or allow_download,
                     sensitive=cfg.sensitive, sensitive_threshold=cfg.sensitive_threshold, batch_size=cfg.batch_size)


def _safety(cfg: SafetyConfig, *, allow_download: bool = False, **_: Any) -> Signal:
    from evalmon.monitor.signals.safety import SafetySignal

    return SafetySignal(method=cfg.method, cascade=cfg.cascade, lm_probe=cfg.lm_probe, versions=cfg.versions,
                        exemplars=cfg.exemplars,
                        data_dir=cfg.data_dir,
                        replace_builtin=cfg.replace_builtin,
                        targets=cfg.targets, thresholds=cfg.thresholds, top_k=cfg.top_k, model=cfg.model,
                        batch_size=cfg.batch_size,
                        classifier=cfg.classifier.model_dump() if cfg.classifier else None,
                        allow_download=cfg.allow_download or allow_download)


def _hallucination(cfg: HallucinationConfig, *, allow_download: bool = False, judge: Any = None,
                   **_: Any) -> Signal:
    from evalmon.monitor.signals.hallucination import (
        DEFAULT_JUDGE_TEMPLATE,
        HallucinationSignal,
        judge_from_model_config,
    )

    jc = cfg.judge
    judge_fn, judge_name = judge, "custom" if judge is not None else ""
    if jc is not None and judge_fn is None:
        if jc.model is None:
            raise ConfigError("signals.hallucination.judge: give `model:` (an evalmon model config)",
                              hint="or pass judge= to build_signals")
        judge_fn, judge_name = judge_from_model_config(jc.model, max_gen_toks=jc.max_gen_toks), str(jc.model)
    if judge_fn is not None and jc is None:
        jc = JudgeConfig()
    return HallucinationSignal(
        embeddings=cfg.embeddings, support_threshold=cfg.support_threshold, embedding_floor=cfg.embedding_floor,
        max_unsupported_ratio=cfg.max_unsupported_ratio, model=cfg.model, batch_size=cfg.batch_size,
        max_sentences=cfg.max_sentences, max_context_chars=cfg.max_context_chars, judge=judge_fn,
        judge_sample_rate=jc.sample_rate if jc else 0.0, judge_seed=jc.seed if jc else 0,
        judge_template=(jc.template if jc and jc.template else DEFAULT_JUDGE_TEMPLATE), judge_name=judge_name,
        allow_download=cfg.allow_download or allow_download, judge_max_per_batch=jc.max_per_window if jc else None)


def _register() -> None:
    """A signal = a builder ``(config, *, allow_download, judge) -> Signal`` + its pydantic config class
    (a ``name: Literal[...]`` field); plugins register the same way (entry points "evalmon.signals")."""
    for name, build, config in (("text", _text, TextConfig), ("usage", _usage, UsageConfig),
                                ("refusal", _refusal, RefusalConfig), ("pii", _pii, PiiConfig),
                                ("safety", _safety, SafetyConfig),
                                ("hallucination", _hallucination, HallucinationConfig)):
        registry.signals.add(name, build, config=config)
    registry.signals.add("embedding", _embedding, aliases=("embeddings",), config=EmbeddingConfig)

    _register_context_free()  # uncertainty, logged_uncertainty, halludetect (hallu_config.py)


_register()
from evalmon.monitor.signals import guard as _guard  # noqa: E402, F401  (registers the "guard" signal)

# Per-window rates (mean of a 0/1 column) that the issue names; windows/alerts can use these names.
RATE_COLUMNS: dict[str, str] = {"hallucination_rate": "hallucination.flag", "unsafe_rate": "safety.unsafe",
                                "pii_rate": "pii.any", "refusal_rate": "refusal.refused",
                                "empty_response_rate": "text.response_empty"}
# Object (non-numeric) columns: categorical (language codes, pattern names) or vectors (embeddings).
CATEGORICAL_COLUMNS = ("text.prompt_language", "text.response_language", "refusal.pattern")
VECTOR_COLUMN_PREFIX = "embedding."
DEFAULT_SIGNALS = ("text", "usage", "refusal", "pii", "safety", "hallucination", "embedding")


def build_signals(cfgs: Sequence[str | Mapping[str, Any] | BaseModel] | None = None, *,
                  allow_download: bool = False, judge: Any = None, option: str | None = None) -> list[Signal]:
    """Configs (or names) → enabled ``Signal`` objects, in order. ``None`` → ``DEFAULT_SIGNALS``.

    ``judge``: a ``JudgeFn`` for the hallucination signal's LLM judge (overrides ``judge.model``);
    ``option``: the command-line option the list came from (``--signals``), which errors name instead of
    ``signals[i]``.
    """
    configs = parse_signal_configs(list(DEFAULT_SIGNALS if cfgs is None else cfgs), option=option)
    names = ["embedding" if c.name == "embeddings" else c.name for c in configs if c.enabled]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{option or 'signals'}: {sorted(dupes)} listed more than once (their columns would "
                          "collide)")
    return [registry.signals.get(c.name)(c, allow_download=allow_download, judge=judge)
            for c in configs if c.enabled]


__all__ = [
    "CATEGORICAL_COLUMNS",
    "DEFAULT_SIGNALS",
    "RATE_COLUMNS",
    "VECTOR_COLUMN_PREFIX",
    "BaseSignalConfig",
    "ComputeStats",
    "EmbeddingConfig",
    "HallucinationConfig",
    "JudgeConfig",
    "PiiConfig",
    "RefusalConfig",
    "SafetyClassifierConfig",
    "SafetyConfig",
    "SignalCache",
    "SignalConfig",
    "TextConfig",
    "UsageConfig",
    "build_signals",
    "compute_signal",
    "compute_signals",
    "parse_signal_configs",
]
