"""The LM contract every backend implements, and the request/response value types.

Tasks produce ``LLRequest``s, engines send them to an ``LM``; neither knows the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class LLRequest:
    """Log-likelihood of ``continuation`` given ``context`` (lm-eval's ``loglikelihood`` args).

    ``messages`` (chat-template mode, lm-eval's ``apply_chat_template``): (role, content) turns that the
    backend renders with its tokenizer's chat template (generation prompt added) into the context;
    ``context`` is ignored when set. A backend that cannot render them must refuse the request.
    """

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
class GenRequest:
    """Generate from ``context`` (or from chat ``messages`` rendered with the model's chat template).

    ``until``: stop strings — the output is cut before the first one (lm-eval's ``until``; the
    tokenizer's EOS is always added). ``temperature == 0`` is greedy (cacheable); sampling uses ``seed``.
    """

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

    text: str

    def key(self) -> str:
        return hashlib.sha256(json.dumps(["rolling", self.text], ensure_ascii=False).encode()).hexdigest()


Request = LLRequest | GenRequest | RollingRequest


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
    adapter_hash: str | None = None
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
        for key in ("endpoint", "generation", "chat_template"):  # unset: keys stay those of older caches
            if not numeric[key]:
                del numeric[key]
        if not numeric.get("weights_hash"):  # fall back to the path when no hash is known
            numeric["weights_hash"] = numeric["model"]
        return hashlib.sha256(json.dumps(numeric, sort_keys=True).encode()).hexdigest()[:32]


@runtime_checkable
class LM(Protocol):
    """A language model backend (hf, openai-compatible, ...)."""

    fingerprint: ModelFingerprint

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: Any = None) -> list[LLResult]:
        """Score each request; ``progress(n_done)`` is called as batches finish."""
        ...

    def token_count(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (for throughput figures)."""
        ...


@runtime_checkable
class GenerativeLM(LM, Protocol):
    """A backend that can also generate text."""

    def generate(self, reqs: Sequence[GenRequest], progress: Any = None) -> list[str]:
        """Generate for each request; ``progress([(index, text), ...])`` is called per finished batch."""
        ...
