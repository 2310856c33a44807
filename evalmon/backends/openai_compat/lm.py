"""``openai`` backend: any OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp, ``transformers serve``, …).

* generation: ``/chat/completions`` (``GenRequest.messages``, or the context as one user message) or
  ``/completions`` (the context as prompt), per ``model.mode``; at most 4 stop strings are sent (OpenAI's
  cap) and every stop string is cut client-side with lm-eval's rule, so outputs mean what the hf backend's do;
* loglikelihood: ``/completions`` with ``echo: true, logprobs: 1, max_tokens: 1`` (lm-eval's payload), summing
  the continuation's prompt-token logprobs. With ``model.tokenizer`` the pair is tokenised locally exactly
  like lm-eval (token-id prompt, split by token count); without it the split is by character offsets
  (``text_offset``), anchored at the end of the prompt so a BOS token the server prepends does not shift it.
  Whether the server returns prompt logprobs at all is probed once (``supports_logprobs: auto``).
  Chat messages (a task's ``chat_template: true``) are rendered with ``model.tokenizer``'s chat template
  exactly like the hf backend (lm-eval's ``apply_chat_template``); without ``model.tokenizer`` they are refused;
* HTTP, retries, concurrency and the API key live in ``http.py`` (``ApiClient``); the key is never in the
  fingerprint.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.backends.hf.chat import render_contexts, template_hash
from evalmon.backends.hf.generate import GenStats, cut_at_stops
from evalmon.backends.openai_compat.http import ApiClient, EndpointMissing, Refused
from evalmon.core.errors import ModelError
from evalmon.core.lm import EngineStats, GenRequest, LLRequest, LLResult, ModelFingerprint

MAX_STOPS = 4  # OpenAI's limit on `stop`
_MAX_LOGPROB = 1e-3  # above this a "log-probability" is no such thing (0 = certainty; the rest is rounding)
_PROBE_PROMPT = "The capital of France is"
_NO_LOGPROBS = ("server at {url} does not return prompt logprobs (echo+logprobs); loglikelihood tasks need a "
                "server that does (vLLM, TGI…) — use generative tasks or the hf backend")


class _NoLogprobs(Refused):
    """The response has no prompt logprobs: the server does not support echo+logprobs."""


class _BadLogprobs(Refused):
    """The prompt logprobs are there but cannot be right (NaN, > 0, too few, …): not retried."""


@dataclass
class LLStats:
    tokens_forwarded: int = 0  # prompt tokens the server reported (usage.prompt_tokens)

    def engine_stats(self) -> EngineStats:
        return EngineStats(tokens=self.tokens_forwarded)


class OpenAICompatLM:
    """An OpenAI-compatible server behind the ``LM``/``GenerativeLM`` protocols."""

    def __init__(self, cfg: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.http = ApiClient(cfg, sleep=sleep)
        self.base_url: str = self.http.base_url
        self._lock = threading.Lock()
        self.tokenizer = self._load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        served = self._served_models()
        self.model_name: str = cfg.model or self._only_model(served)
        info = next((m for m in served if m.get("id") == self.model_name), {})
        self._logprobs_ok: bool | None = None if cfg.supports_logprobs == "auto" else bool(cfg.supports_logprobs)
        root = info.get("root") if info.get("root") != self.model_name else None
        self.fingerprint = ModelFingerprint(
            backend="openai", model=self.model_name, revision=info.get("revision") or root,
            dtype="server", device=self.base_url,
            bos_policy=f"{'tokenizer-default' if self.tokenizer else 'server'}; generation: {cfg.mode}",
            max_length=int(info.get("max_model_len") or 0), batch_size=cfg.concurrency,
            tokenizer_hash=self._tokenizer_hash(), endpoint=self.base_url,  # in the cache key: servers differ
            generation={"mode": cfg.mode}, chat_template=template_hash(self.tokenizer) if self.tokenizer else None,
            extra={"base_url": self.base_url, "mode": cfg.mode, "tokenizer": cfg.tokenizer,
                   "served": {k: info[k] for k in ("id", "owned_by", "root", "max_model_len") if k in info}})
        self.last_stats = LLStats()
        self.last_gen_stats = GenStats()
        self._last: LLStats | GenStats = self.last_stats  # what stats() reports: the last call's
        # loglikelihood needs prompt logprobs: declared unless the config says the server has none
        self.capabilities = frozenset({"generate"} | ({"loglikelihood"} if cfg.supports_logprobs is not False else set()))

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _load_tokenizer(path: str) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model.tokenizer: cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}",
                             hint="give a local Hugging Face tokenizer directory, or drop model.tokenizer") from None

    def _tokenizer_hash(self) -> str | None:
        if self.tokenizer is None:
            return None
        payload = repr(sorted(self.tokenizer.get_vocab().items())) + repr(self.tokenizer("a b")["input_ids"])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _served_models(self) -> list[dict[str, Any]]:
        """``/models`` entries ([] when the server has no such endpoint)."""
        try:
            data = self.http.request("GET", "/models", None, lambda d: list(d["data"]))
        except EndpointMissing:
            return []
        return [m for m in data if isinstance(m, dict)]

    def _only_model(self, served: list[dict[str, Any]]) -> str:
        ids = [str(m.get("id")) for m in served if m.get("id")]
        if len(ids) == 1:
            return ids[0]
        listed = f"it serves {', '.join(ids[:10])}" if ids else "it lists no models at /models"
        raise ModelError(f"model.model: not set and the server at {self.base_url} does not serve exactly one model "
                         f"({listed})", hint="set model.model to the served model name")

    # ------------------------------------------------------------------ generation
    def _prompt_text(self, r: GenRequest) -> str:
        if not r.messages:
            return r.context
        template = getattr(self.tokenizer, "chat_template", None)
        if template is None:
            raise ModelError("the task sends chat messages but model.mode is completions and model.tokenizer "
                             "has no chat template to render them", hint="set model.mode: chat")
        return str(self.tokenizer.apply_chat_template([{"role": a, "content": b} for a, b in r.messages],
                                                      tokenize=False, add_generation_prompt=True))

    def _gen_payload(self, r: GenRequest) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"model": self.model_name, "max_tokens": r.max_gen_toks,
                                   "temperature": r.temperature}
        stops = [s for s in r.until if s][:MAX_STOPS]
        if stops:
            payload["stop"] = stops
        if r.top_p != 1.0:
            payload["top_p"] = r.top_p
        if r.seed is not None:
            payload["seed"] = r.seed
        if self.cfg.mode == "chat":
            turns = r.messages or (("user", r.context),)
            payload["messages"] = [{"role": role, "content": content} for role, content in turns]
            return "/chat/completions", payload
        payload["prompt"] = self._prompt_text(r)
        return "/completions", payload

    def _generate_one(self, r: GenRequest) -> str:
        path, payload = self._gen_payload(r)

        def parse(data: Any) -> tuple[str, dict[str, Any]]:
            choice = data["choices"][0]
            text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
            if not isinstance(text, str | None):
                raise TypeError("text is not a string")
            return text or "", data.get("usage")

        text, usage = self.http.request("POST", path, payload, parse)
        with self._lock:
            self.last_gen_stats.rows += 1
            self.last_gen_stats.prompt_tokens += _count(usage, "prompt_tokens") or 0
            self.last_gen_stats.generated_tokens += _count(usage, "completion_tokens") or 0
        return cut_at_stops(text, r.until)

    def generate(self, reqs: Sequence[GenRequest], progress: Callable[[list[tuple[int, str]]], None] | None = None
                 ) -> list[str]:
        self.last_gen_stats = self._last = GenStats()
        return self.http.map(len(reqs), lambda i: self._generate_one(reqs[i]), progress)

    # ------------------------------------------------------------------ loglikelihood
    def _require_logprobs(self) -> None:
        if self._logprobs_ok is None:
            payload = {"model": self.model_name, "prompt": _PROBE_PROMPT, "max_tokens": 1, "temperature": 0,
                       "echo": True, "logprobs": 1}
            try:
                self.http.request("POST", "/completions", payload, lambda d: _prompt_logprobs(d["choices"][0], 2))
                self._logprobs_ok = True
            except _NoLogprobs:
                self._logprobs_ok = False
            except ModelError as exc:  # a 400/422 for echo or logprobs means the same
                if " HTTP 4" not in exc.message or "HTTP 401" in exc.message or "HTTP 403" in exc.message:
                    raise
                self._logprobs_ok = False
        if not self._logprobs_ok:
            raise ModelError(_NO_LOGPROBS.format(url=self.base_url))

    def _split_tokens(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's ``_encode_pair`` (empty context → the BOS/EOS prefix token)."""
        tok = self.tokenizer
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if context == "":
            return [prefix], list(tok.encode(continuation, add_special_tokens=False))
        # lm-eval's tok_encode: no special tokens when the text already starts with the prefix token's text
        # (a chat template that writes BOS itself)
        text = tok.decode(prefix) if prefix is not None else ""
        special = {"add_special_tokens": False} if text and context.startswith(text) else {}
        whole = list(tok.encode(context + continuation, **special))
        ctx = list(tok.encode(context, **special))
        return ctx, whole[len(ctx):]

    def _score_one(self, r: LLRequest, context: str) -> LLResult:
        continuation = r.continuation
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:  # lm-eval: trailing context spaces belong to the continuation
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        prompt: str | list[int]
        if self.tokenizer is not None:
            ctx_ids, cont_ids = self._split_tokens(context, continuation)
            prompt, n_ctx, n_prompt = ctx_ids + cont_ids, len(ctx_ids), len(ctx_ids) + len(cont_ids)
        else:
            prompt, n_ctx, n_prompt = context + continuation, -1, -1
        payload = {"model": self.model_name, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                   "echo": True, "logprobs": 1}

        def parse(data: Any) -> tuple[list[float | None], list[Any], int]:
            choice = data["choices"][0]
            lps, tops, tokens, offsets = _prompt_logprobs(choice, 1)
            total = n_prompt if n_prompt >= 0 else (_count(data.get("usage"), "prompt_tokens") or len(lps) - 1)
            start = n_ctx if n_ctx >= 0 else _continuation_start(offsets, tokens, total, len(continuation))
            _check_logprobs(lps, tops, start, total)
            return lps[start:total], tops[start:total], total

        try:
            lps, tops, total = self.http.request("POST", "/completions", payload, parse)
        except _NoLogprobs:
            raise ModelError(_NO_LOGPROBS.format(url=self.base_url)) from None
        except _BadLogprobs as exc:
            raise ModelError(f"server at {self.base_url} returned invalid prompt logprobs: {exc}",
                             hint="the server's echo+logprobs output is broken for this model; finished requests "
                                  "are cached — fix or replace the server, or use the hf backend") from None
        if any(lp is None for lp in lps):
            raise ModelError(f"{self.base_url}: the server gave no logprob for the first prompt token, which the "
                             "continuation of an empty context starts with",
                             hint="set model.tokenizer so evalmon sends token ids with a BOS prefix (as lm-eval)")
        with self._lock:
            self.last_stats.tokens_forwarded += total
        greedy = all(isinstance(top, dict) and top and float(lp) >= max(top.values()) - 1e-6  # type: ignore[arg-type]
                     for lp, top in zip(lps, tops, strict=True))
        return LLResult(float(math.fsum(float(lp) for lp in lps if lp is not None)), greedy, len(lps))

    def loglikelihood(self, reqs: Sequence[LLRequest],
                      progress: Callable[[list[tuple[int, LLResult]]], None] | None = None) -> list[LLResult]:
        if not reqs:
            return []
        if self.tokenizer is None and any(r.messages is not None for r in reqs):
            raise ModelError("the task sends chat messages (chat_template: true) but the openai backend renders them "
                             "for loglikelihood only with a local tokenizer", hint="set model.tokenizer to the served "
                             "model's tokenizer directory (with its chat template), or drop chat_template")
        contexts = render_contexts(self.tokenizer, reqs, model=self.model_name)
        self._require_logprobs()
        self.last_stats = self._last = LLStats()
        return self.http.map(len(reqs), lambda i: self._score_one(reqs[i], contexts[i]), progress)

    def stats(self) -> EngineStats:
        return self._last.engine_stats()

    def token_count(self, text: str) -> int:
        """Exact with ``model.tokenizer``; otherwise OpenAI's rule of thumb (~4 characters per token)."""
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text))
        return math.ceil(len(text) / 4)

    def close(self) -> None:
        self.http.close()


def _prompt_logprobs(choice: dict[str, Any], min_len: int
                     ) -> tuple[list[float | None], list[Any], list[str], list[int]]:
    """(token_logprobs, top_logprobs, tokens, text_offset) of an echoed completion choice."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("token_logprobs"), list) or len(lp["token_logprobs"]) < min_len:
        raise _NoLogprobs
    n = len(lp["token_logprobs"])
    tops = lp.get("top_logprobs") or [None] * n
    if not isinstance(tops, list):
        raise _BadLogprobs(f"top_logprobs is a {type(tops).__name__}, not a list")
    return list(lp["token_logprobs"]), tops, list(lp.get("tokens") or []), list(lp.get("text_offset") or [])


def _logprob_ok(value: Any) -> bool:
    """A log-probability: a number ≤ 0 (a hair above for rounding), -inf allowed (probability 0), NaN not."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value <= _MAX_LOGPROB


def _check_logprobs(lps: list[Any], tops: list[Any], start: int, total: int) -> None:
    """Raise ``_BadLogprobs`` when prompt tokens ``start:total`` lack a usable logprob or top_logprobs entry."""
    if len(lps) < total:
        raise _BadLogprobs(f"{len(lps)} prompt logprobs for a {total}-token prompt")
    if len(tops) < total:
        raise _BadLogprobs(f"top_logprobs has {len(tops)} entries for a {total}-token prompt")
    for i in range(start, total):
        lp, top = lps[i], tops[i]
        if lp is None and i > 0:
            raise _BadLogprobs(f"no logprob (null) for prompt token {i}")
        if lp is not None and not _logprob_ok(lp):
            raise _BadLogprobs(f"token_logprobs[{i}] is {lp!r}, not a log-probability (a number ≤ 0)")
        if top is not None and not (isinstance(top, dict) and all(_logprob_ok(v) for v in top.values())):
            raise _BadLogprobs(f"top_logprobs[{i}] is {str(top)[:60]!r}, not a {{token: logprob}} object")


def _count(usage: Any, key: str) -> int | None:
    """A ``usage`` token count, or None when it is missing, negative or not a number."""
    value = usage.get(key) if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        return None
    return int(value)


def _continuation_start(offsets: list[int], tokens: list[str], n_prompt: int, cont_chars: int) -> int:
    """Index of the first prompt token at or after the context/continuation boundary (by characters).

    Anchored at the prompt's end (the first generated token's offset), so a prepended BOS token whose
    text shifts every offset (vLLM echoes ``<s>``) does not move the boundary.
    """
    if len(offsets) < n_prompt or n_prompt <= 0:
        raise KeyError("text_offset")
    end = offsets[n_prompt] if len(offsets) > n_prompt else offsets[n_prompt - 1] + len(tokens[n_prompt - 1])
    boundary = end - cont_chars
    return next((i for i in range(n_prompt) if offsets[i] >= boundary), n_prompt)
