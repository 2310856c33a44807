"""The LM contract every backend implements, and the request/response value types.

Tasks produce requests (``LLRequest``, ``RollingRequest``, ``GenRequest``, ``TranscribeRequest``), the harness
engine sends them to an ``LM``; neither knows the other. Each request type names the capability a backend needs
to answer it (``CAPABILITIES``); a backend declares what it can do in ``capabilities``, so the harness refuses a
task the model cannot run before anything runs, and reports what the backend's last call computed through
``stats()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

from evalmon.core.jsonout import canonical_hash

CAPABILITIES = frozenset({"loglikelihood", "rolling", "generate", "transcribe", "adapters", "token_logprobs"})


@dataclass(frozen=True, slots=True)
class LLRequest:
    """Log-likelihood of ``continuation`` given ``context`` (lm-eval's ``loglikelihood`` args).

    ``messages`` (chat-template mode, lm-eval's ``apply_chat_template``): (role, content) turns that the
    backend renders with its tokenizer's chat template (generation prompt added) into the context;
    ``context`` is ignored when set. A backend that cannot render them must refuse the request.
    """

    capability: ClassVar[str] = "loglikelihood"

    context: str
    continuation: str
    messages: tuple[tuple[str, str], ...] | None = None

    def key(self) -> str:
        """Stable content hash, used for dedupe and the response cache (unchanged when ``messages`` is None)."""
        if self.messages is None:
            payload = json.dumps([self.context, self.continuation], ensure_ascii=False)
        else:
            payload = json.dumps(["chat", [list(m) for m in self.messages], self.continuation], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class LLResult:
    """Sum of continuation token log-probs and whether greedy decoding would produce it."""

    logprob: float
    is_greedy: bool
    n_tokens: int = 0  # continuation length in tokens (0 when unknown, e.g. cached from an older run)


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """Capability "token_logprobs": the log-prob of each continuation token of an ``LLRequest`` given its
    context (what ``LLResult.logprob`` sums), in continuation order; ``tokens``: the token ids."""

    logprobs: tuple[float, ...]
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GenRequest:
    """Generate from ``context`` (or from chat ``messages`` rendered with the model's chat template).

    ``until``: stop strings — the output is cut before the first one (lm-eval's ``until``; the
    tokenizer's EOS is always added). ``temperature == 0`` is greedy (cacheable); sampling uses ``seed``.
    """

    capability: ClassVar[str] = "generate"

    context: str
    until: tuple[str, ...] = ()
    max_gen_toks: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs; context ignored when set

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def key(self) -> str:
        payload = json.dumps(["gen", self.context, list(self.until), self.max_gen_toks, self.temperature,
                              self.top_p, self.seed, [list(m) for m in self.messages or ()]], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RollingRequest:
    """Loglikelihood of a whole text (perplexity), lm-eval's ``loglikelihood_rolling``."""

    capability: ClassVar[str] = "rolling"

    text: str

    def key(self) -> str:
        return hashlib.sha256(json.dumps(["rolling", self.text], ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TranscribeRequest:
    """Transcribe the recording in the file ``audio`` (speech recognition).

    ``resample``: a file at another sampling rate than the model's is resampled (False: that is an error).
    What the model hears is the decoded audio at its own rate, so the identity of a request is the content
    hash of those samples (``digest``), not the path: the harness engine decodes the file at the backend's
    ``sampling_rate`` (``prepared``), which fills ``digest``, ``samples`` (the float32 array handed to the
    backend), ``seconds`` and ``source_rate``. ``key()`` needs the digest (the cache key of older runs).
    """

    capability: ClassVar[str] = "transcribe"

    audio: str
    resample: bool = True
    digest: str | None = None
    samples: Any = field(default=None, compare=False, repr=False)
    seconds: float = 0.0
    source_rate: int = 0

    def prepared(self, digest: str, samples: Any, seconds: float, source_rate: int) -> TranscribeRequest:
        return TranscribeRequest(self.audio, self.resample, digest, samples, seconds, source_rate)

    def key(self) -> str:
        if self.digest is None:
            raise ValueError(f"TranscribeRequest({self.audio!r}).key(): the audio was not decoded yet")
        return hashlib.sha256(f"asr:{self.digest}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Transcription:
    """The answer to a ``TranscribeRequest``: the text plus what was heard (for real-time factors)."""

    text: str
    seconds: float = 0.0  # duration of the audio
    source_rate: int = 0  # the file's own sampling rate
    sampling_rate: int = 0  # the rate the model heard it at
    digest: str = ""  # content hash of what it heard (the request's digest)

    def __str__(self) -> str:
        return self.text


Request = LLRequest | GenRequest | RollingRequest | TranscribeRequest


def needed_capabilities(requests: Iterable[Request]) -> frozenset[str]:
    """The capabilities a backend needs to answer ``requests`` (one per request type)."""
    return frozenset(type(r).capability for r in requests)


@dataclass
class EngineStats:
    """Work counts. The harness engine fills all of them for a batch of requests; a backend's ``stats()``
    fills what its last call forwarded (``tokens``, ``padded_tokens``)."""

    requests: int = 0
    unique: int = 0  # after dedupe
    cached: int = 0  # served from the response cache
    computed: int = 0  # sent to the backend
    tokens: int = 0  # real tokens forwarded (loglikelihood) / prompt + generated tokens (generation)
    padded_tokens: int = 0  # positions the forwards computed, padding included
    seconds: float = 0.0

    def add(self, other: EngineStats) -> EngineStats:
        """Add ``other``'s counts to this one (in place); returns self."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


@dataclass(frozen=True)
class ModelFingerprint:
    """Everything that determines a model's numbers; goes into provenance and cache keys.

    The response cache key (``cache_key``) covers everything that identifies the responder — backend,
    served endpoint, model, revision, weights, adapter, dtype, tokenizer, chat template, BOS policy, context
    length and the generation settings that change outputs beyond what a request carries — so that answers of one
    server, checkpoint or generation config are never served for another.
    """

    backend: str
    model: str  # local path (resolved) or hub id
    revision: str | None = None
    weights_hash: str | None = None  # sha256 over weight files (local) or the hub commit sha
    adapter: str | None = None
    adapter_hash: str | None = None  # sha256 over the adapter's weight files
    adapter_config_hash: str | None = None  # hash of its adapter_config.json (rank, alpha, targets …)
    dtype: str = "float32"
    device: str = "cpu"
    bos_policy: str = "tokenizer-default"
    max_length: int = 2048
    batch_size: int = 8
    tokenizer_hash: str | None = None
    endpoint: str | None = None  # the server that answers (openai: base_url); None for in-process models
    generation: dict[str, Any] = field(default_factory=dict)  # output-changing defaults (generation_config)
    chat_template: str | None = None  # hash of the template that renders chat messages; None: the model has none
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_key(self) -> str:
        """Hash of what changes the numbers (not batch size, not device, not ``extra``)."""
        numeric = {
            k: v
            for k, v in self.to_dict().items()
            if k not in {"batch_size", "device", "extra"}
        }
        for key in ("endpoint", "generation", "chat_template", "adapter_config_hash"):  # unset: keys stay
            # those of older caches
            if not numeric[key]:
                del numeric[key]
        if not numeric.get("weights_hash"):  # fall back to the path when no hash is known
            numeric["weights_hash"] = numeric["model"]
        return canonical_hash(numeric, 32)


Progress = Callable[[list[tuple[int, Any]]], None]


@runtime_checkable
class LM(Protocol):
    """A model backend (hf, openai-compatible, hf_asr, none, or a plugin's).

    ``capabilities`` ⊆ ``CAPABILITIES``: which request types it answers ("loglikelihood": ``LLRequest``,
    "rolling": ``RollingRequest``, "generate": ``GenRequest``, "transcribe": ``TranscribeRequest``) and
    whether it loads adapters. The methods of a capability it lacks may be missing. Each method reports
    finished requests to ``progress([(index, response), ...])`` as they complete (the engine commits them
    to the response cache at once) and returns the responses in request order.
    """

    fingerprint: ModelFingerprint
    capabilities: frozenset[str]

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Progress | None = None) -> list[LLResult]: ...

    def stats(self) -> EngineStats:
        """What the last call forwarded (``tokens``, ``padded_tokens``), for throughput figures."""
        ...

    def token_count(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (for throughput figures)."""
        ...


@runtime_checkable
class RollingLM(LM, Protocol):
    """Capability "rolling": whole-text loglikelihoods (perplexity)."""

    def loglikelihood_rolling(self, reqs: Sequence[RollingRequest], progress: Progress | None = None
                              ) -> list[LLResult]: ...


@runtime_checkable
class TokenLogprobLM(LM, Protocol):
    """Capability "token_logprobs": per-token continuation log-probs of ``LLRequest``s (uncertainty signals)."""

    def token_logprobs(self, reqs: Sequence[LLRequest]) -> list[TokenLogprobs]: ...


@runtime_checkable
class AdapterLM(LM, Protocol):
    """Capability "adapters": one loaded base model with several named adapters (LoRA …).

    ``adapter_names``: the adapters loaded, in order; ``variant(name)`` is the LM answering with adapter
    ``name`` active (None: the base, every adapter off) — its own ``fingerprint`` (adapter identity
    included), so the response cache keeps each variant apart. Variants share the loaded base.
    """

    adapter_names: tuple[str, ...]

    def variant(self, name: str | None) -> LM: ...


@runtime_checkable
class GenerativeLM(LM, Protocol):
    """Capability "generate"."""

    def generate(self, reqs: Sequence[GenRequest], progress: Progress | None = None) -> list[str]: ...


@runtime_checkable
class SpeechLM(LM, Protocol):
    """Capability "transcribe": ``sampling_rate`` is the rate the engine decodes audio at; ``transcribe``
    reads the ``samples`` of prepared requests."""

    sampling_rate: int

    def transcribe(self, reqs: Sequence[TranscribeRequest], progress: Progress | None = None) -> list[str]: ...
