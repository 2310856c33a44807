"""``hf`` backend: any Hugging Face causal LM (local dir or hub id), optionally with a PEFT adapter.

Tokenisation follows lm-eval 0.4.13's ``HFLM`` exactly (``_encode_pair``, ``tok_encode``,
``prefix_token_id``, ``resolve_max_length``); batching and the forward live in
``evalmon.backends.hf.loglikelihood``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalmon.backends.hf.attention import attention_layout, packed_masks
from evalmon.backends.hf.chat import chat_identity, render_contexts, template_hash
from evalmon.backends.hf.generate import GenStats, OnGenBatch, generate_hf
from evalmon.backends.hf.identity import (
    _corrupt_weights,
    _first_line,
    generation_identity,
    weights_fingerprint,
)
from evalmon.backends.hf.loglikelihood import BatchStats, OnBatch, TokenRequest, score_token_requests
from evalmon.backends.hf.packed import score_packed
from evalmon.backends.hf.tokenlogprobs import token_logprobs as hf_token_logprobs
from evalmon.core.errors import ModelError
from evalmon.core.lm import (
    EngineStats,
    GenRequest,
    LLRequest,
    LLResult,
    ModelFingerprint,
    RollingRequest,
    TokenLogprobs,
)

DEFAULT_MAX_LENGTH = 2048
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "auto": "auto"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                    "spiece.model", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class HFSettings:
    path: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 8
    max_length: int | None = None
    adapter: str | None = None
    trust_remote_code: bool = False
    add_bos_token: bool | None = None
    chat_template_fallback: str = "error"  # error | plain ("role: content" lines) when no chat template
    scoring: str = "packed"  # packed (shared-prefix trie, evalmon.backends.hf.packed) | plain (lm-eval's batching)
    token_budget: int | None = None  # tokens per packed forward; None = 2048 (halved on out-of-memory)
    gguf: str | None = None  # a .gguf file inside `path` (or `path` itself ends in .gguf): evalmon.backends.hf.gguf


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or Path(path).expanduser().exists()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in {"0", "", "false", "False"}


def _resolve_device(device: str) -> str:
    if device == "cpu":  # no torch import: bad checkpoint paths fail fast
        return device
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"model.device: {device!r} requested but CUDA is not available on this machine",
                         hint="use device: cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("model.device: 'mps' requested but MPS is not available", hint="use device: cpu or auto")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise ModelError(f"model.device: unknown device {device!r}", hint="use cpu, cuda, cuda:N, mps or auto")
    return device


class HFCausalLM:
    """A transformers causal LM (+ optional PEFT adapter) behind the ``LM`` protocol."""

    capabilities = frozenset({"loglikelihood", "rolling", "generate", "adapters", "token_logprobs"})

    def __init__(self, settings: HFSettings) -> None:
        self.settings = settings
        self.device = _resolve_device(settings.device)
        self.tokenizer, self.model, src_hash = self._load(settings)
        self.batch_size = settings.batch_size
        self.max_length = settings.max_length or self._resolve_max_length()
        bos = self.tokenizer.bos_token_id
        prefix = bos if bos is not None else self.tokenizer.eos_token_id
        if prefix is None:
            raise ModelError(f"model.path: the tokenizer of {self._model_id} has neither a BOS nor an EOS token",
                             hint="evalmon (like lm-eval) needs one to score continuations of an empty context")
        self.prefix_token_id: int = prefix
        self._prefix_str = self.tokenizer.decode(self.prefix_token_id)
        policy = ("tokenizer-default" if settings.add_bos_token is None
                  else ("always" if settings.add_bos_token else "never"))
        self.fingerprint = ModelFingerprint(
            backend="hf",
            model=self._model_id,
            revision=settings.revision,
            weights_hash=src_hash,
            adapter=self._adapter_id,
            adapter_hash=self._adapter_hash,
            adapter_config_hash=self._adapter_config_hash,
            dtype=str(self.model.dtype).replace("torch.", ""),
            device=self.device,
            bos_policy=policy,
            max_length=self.max_length,
            batch_size=self.batch_size,
            tokenizer_hash=self._tokenizer_hash(),
            generation=generation_identity(self.model), chat_template=template_hash(self.tokenizer),
            extra={"softmax_dtype": "float32", "architecture": type(self.model).__name__,
                   "prefix_token_id": self.prefix_token_id, "adds_bos": (adds_bos := self._adds_bos()),
                   "chat": chat_identity(self.tokenizer, self._prefix_str, adds_bos)})
        if self._checkpoint:  # converted from GGUF (evalmon_checkpoint.json): which file, which quantisation
            self.fingerprint.extra["checkpoint"] = self._checkpoint
        self.last_stats = BatchStats()
        self.last_gen_stats = GenStats()
        self._last: BatchStats | GenStats = self.last_stats  # what stats() reports: the last call's
        self.scoring = settings.scoring
        self._layout = attention_layout(self.model.config)
        if self.scoring == "packed":
            reason = self._probe_packed()
            if reason:
                self.scoring = "plain"
                self.fingerprint.extra["packed_unsupported"] = reason
        self.fingerprint.extra["scoring"] = self.scoring

    # ------------------------------------------------------------------ loading
    def _load(self, s: HFSettings) -> tuple[Any, Any, str | None]:
        from evalmon.backends.hf.gguf import checkpoint_provenance, gguf_checkpoint

        gguf = gguf_checkpoint(s.path, s.gguf, revision=s.revision)  # None unless it names a GGUF file
        local = gguf is not None or _looks_local(s.path)
        path = str(gguf.directory) if gguf else str(Path(s.path).expanduser().resolve()) if local else s.path
        if local and not Path(path).is_dir():
            raise ModelError(f"model.path: checkpoint directory not found: {path}",
                             hint="build the default with `evalmon init` or point --model at a HF model dir")
        if local and not (Path(path) / "config.json").is_file():
            raise ModelError(f"model.path: {path} has no config.json — not a Hugging Face checkpoint directory")
        self._model_id = gguf.source if gguf else path
        self._checkpoint = checkpoint_provenance(Path(path)) if local else None  # GGUF sha + quantisation

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        kwargs: dict[str, Any] = {"revision": s.revision, "trust_remote_code": s.trust_remote_code}
        try:
            config = AutoConfig.from_pretrained(path, **kwargs)
        except OSError as exc:
            raise self._load_error(path, local, exc) from None
        except ValueError as exc:
            raise ModelError(f"model.path: cannot read the config of {path}: {str(exc).splitlines()[0]}") from None
        causal = not getattr(config, "is_encoder_decoder", False) and (
            config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            or (s.trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})))
        archs = list(getattr(config, "architectures", None) or [])
        remote = s.trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
        if causal and archs and not remote:  # e.g. a BertModel/LlamaModel save: no LM head to score with
            heads = {c for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() for c in ([v] if isinstance(v, str) else v)}
            causal = any(a in heads for a in archs)
        if not causal:
            arch = ",".join(archs or [config.model_type])
            raise ModelError(f"model.path: {path} is not a causal language model (architecture {arch})",
                             hint="evalmon's hf backend scores decoder-only causal LMs (…ForCausalLM checkpoints)")
        if local and not any((Path(path) / f).is_file() for f in _TOKENIZER_FILES):
            raise ModelError(f"model.path: {path} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, …)",
                             hint="save the tokenizer next to the weights: tokenizer.save_pretrained(<checkpoint dir>)")
        dtype = _DTYPES.get(s.dtype)
        if dtype is None:
            raise ModelError(f"model.dtype: unknown dtype {s.dtype!r}", hint="use float32, bfloat16, float16 or auto")
        torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
        try:
            tokenizer = configure_pad_token(AutoTokenizer.from_pretrained(path, **kwargs))
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
        except OSError as exc:
            raise self._load_error(path, local, exc) from None
        except Exception as exc:  # truncated/garbage weight files (anything else propagates)
            if not _corrupt_weights(exc):
                raise
            raise ModelError(f"model.path: the weight files in {path} look truncated or corrupt "
                             f"({_first_line(exc)})", hint="copy, download or save the checkpoint again") from None
        self._adapter_id, self._adapter_hash, self._adapter_config_hash = None, None, None
        if s.adapter:
            model = self._attach_adapter(model, s)
        model.to(self.device)
        model.eval()
        weights_hash = (f"sha256:{gguf.sha256}" if gguf else weights_fingerprint(Path(path)) if local
                        else self._hub_commit(config))
        return tokenizer, model, weights_hash

    @staticmethod
    def _hub_commit(config: Any) -> str | None:
        commit = getattr(config, "_commit_hash", None)
        return f"hub:{commit}" if commit else None

    def _load_error(self, path: str, local: bool, exc: Exception) -> ModelError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not local and _offline():
            return ModelError(f"model.path: {path!r} is not a local directory and the Hugging Face hub is offline "
                              "(HF_HUB_OFFLINE=1)", hint="download it where the hub is reachable or use a local path")
        if not local:
            return ModelError(f"model.path: cannot load hub model {path!r}: {first}",
                              hint="check the id, network access, HF_TOKEN for gated models, or use a local path")
        return ModelError(f"model.path: cannot load checkpoint {path}: {first}")

    def _attach_adapter(self, model: Any, s: HFSettings) -> Any:
        """The single-adapter mode: peft_load.attach_adapter (the one loader, shared with adapter sets)."""
        from evalmon.backends.hf.peft_load import attach_adapter

        assert s.adapter is not None
        model, ident = attach_adapter(model, s.adapter, base_id=self._model_id, revision=s.revision,
                                      load_error=self._load_error)
        self._adapter_id, self._adapter_hash, self._adapter_config_hash = (
            ident.path, ident.weights_hash, ident.config_hash)
        return model

    def _resolve_max_length(self) -> int:
        config = self.model.config
        text_config = getattr(config, "text_config", None)
        for cfg in (text_config, config):
            if cfg is None:
                continue
            for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
                val = getattr(cfg, attr, None)
                if val:
                    return int(val)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000_000:
            return int(tok_max)
        return DEFAULT_MAX_LENGTH

    def _adds_bos(self) -> bool:
        """Whether encoding a text (as lm-eval does, under this BOS policy) starts with the BOS token."""
        bos = self.tokenizer.bos_token_id
        ids = self.tok_encode("a")
        return bos is not None and bool(ids) and ids[0] == bos

    def _tokenizer_hash(self) -> str:
        vocab = self.tokenizer.get_vocab()
        payload = repr(sorted(vocab.items())) + repr(self.tokenizer("a b", add_special_tokens=True)["input_ids"])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ tokenisation (lm-eval's)
    def tok_encode(self, string: str, add_special_tokens: bool | None = None) -> list[int]:
        kwargs: dict[str, bool] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self.settings.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.settings.add_bos_token
        if add_special_tokens is None and self._prefix_str and string.startswith(self._prefix_str):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(string, **kwargs))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's ``loglikelihood`` tokenisation: empty context → prefix token; else encode-whole-then-split."""
        if context == "":
            cont = self.tok_encode(continuation, add_special_tokens=False)
            if cont and cont[0] == self.prefix_token_id:
                return cont[:1], cont[1:]
            return [self.prefix_token_id], cont
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.tok_encode(context + continuation)
        ctx = self.tok_encode(context)
        return ctx, whole[len(ctx):]

    def token_count(self, text: str) -> int:
        return len(self.tok_encode(text))

    def stats(self) -> EngineStats:
        return self._last.engine_stats()

    # ------------------------------------------------------------------ scoring
    def _forward(self, input_ids: Any) -> Any:
        return self.model(input_ids).logits

    def tokenize_requests(self, reqs: Sequence[LLRequest]) -> list[TokenRequest]:
        contexts = render_contexts(self.tokenizer, reqs, model=self._model_id)  # chat messages: lm-eval's render
        pairs = (self.encode_pair(ctx, r.continuation) for ctx, r in zip(contexts, reqs, strict=True))
        return [TokenRequest(i, tuple(ctx), tuple(cont)) for i, (ctx, cont) in enumerate(pairs)]

    def _packed_forward(self, ids: Any, mask: Any, pos: Any, keep: Any) -> Any:
        masks = packed_masks(self._layout, mask, pos, self.model.dtype)
        return self.model(input_ids=ids, attention_mask=masks, position_ids=pos, logits_to_keep=keep).logits[0]

    def _probe_packed(self) -> str | None:
        """Prove packed == plain on this model before using it; return why not, or None.

        The probe's shared context is longer than the model's sliding window / attention chunk (when
        it has one and ``max_length`` allows), so a mask rule the packed path gets wrong shows here
        instead of in the numbers; layer types that cannot be packed are refused up front.
        """
        if self._layout.unsupported:
            return self._layout.unsupported
        span = self._layout.span
        length = max(12, min(span + 16, self.max_length - 4)) if span else 12
        vocab = max(16, int(getattr(self.model.config.get_text_config(), "vocab_size", 0) or len(self.tokenizer)))
        base = tuple(5 + (7 + 31 * i) % (min(vocab, 50_000) - 10) for i in range(length))
        probe = [TokenRequest(0, base, (20, 21, 22)), TokenRequest(1, base, (23, 24)),
                 TokenRequest(2, base[: max(4, length // 3)], (25,)), TokenRequest(3, base[:4], (26, 27))]
        try:
            packed = score_packed(self._packed_forward, self._forward, probe, token_budget=4 * length + 64,
                                  max_length=self.max_length, batch_size=4, device=self.device)
        except Exception as exc:  # any failure means: not supported here
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        checked = (0, 2, 3)  # request 1 only makes the trie branch after the long context (one fewer long forward)
        worst = max(abs(packed[i].logprob - self._plain_reference(probe[i])) for i in checked)
        tol = 1e-3 if str(self.model.dtype) == "torch.float32" else 0.5
        return None if worst <= tol else f"packed and plain differ by {worst:.2e} on a {length}-token probe"

    def _plain_reference(self, r: TokenRequest) -> float:
        """One request, unpadded, with the model's own masks: the plain forward of ``(ctx + cont)[:-1]``,
        projecting only the continuation positions onto the vocabulary (a 262k vocabulary makes full
        logits over a window-long probe cost more than the forward itself)."""
        import torch

        ids = torch.tensor([[*r.context, *r.continuation[:-1]]], device=self.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids, logits_to_keep=len(r.continuation)).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        return float(logp[torch.arange(len(r.continuation)), torch.tensor(r.continuation)].double().sum())

    def loglikelihood(self, reqs: Sequence[LLRequest], progress: OnBatch | None = None) -> list[LLResult]:
        token_reqs = self.tokenize_requests(reqs)
        self.last_stats = self._last = BatchStats()
        if self.scoring == "packed":
            return score_packed(self._packed_forward, self._forward, token_reqs,
                                token_budget=self.settings.token_budget or 2048, max_length=self.max_length,
                                batch_size=self.batch_size, device=self.device, on_batch=progress,
                                stats=self.last_stats)
        return score_token_requests(self._forward, token_reqs, batch_size=self.batch_size,
                                    max_length=self.max_length, device=self.device, on_batch=progress,
                                    stats=self.last_stats)

    def token_logprobs(self, reqs: Sequence[LLRequest]) -> list[TokenLogprobs]:  # backends/hf/tokenlogprobs.py
        return hf_token_logprobs(self, reqs)

    def loglikelihood_rolling(self, reqs: Sequence[RollingRequest], progress: OnBatch | None = None
                              ) -> list[LLResult]:
        """lm-eval's ``loglikelihood_rolling``: disjoint windows of ``max_length`` tokens, prefix token
        first, window batches of ``batch_size`` scored like loglikelihood requests; summed per text."""
        windows: list[TokenRequest] = []
        owner: list[int] = []
        for i, r in enumerate(reqs):
            for ctx, cont in rolling_windows(self.tok_encode(r.text), self.prefix_token_id, self.max_length):
                windows.append(TokenRequest(len(windows), tuple(ctx), tuple(cont)))
                owner.append(i)
        totals = [0.0] * len(reqs)
        n_tokens = [0] * len(reqs)
        remaining = [owner.count(i) for i in range(len(reqs))]
        self.last_stats = self._last = BatchStats()
        for start in range(0, len(windows), self.batch_size):
            chunk = [TokenRequest(j, w.context, w.continuation) for j, w in enumerate(windows[start:start + self.batch_size])]
            done: list[tuple[int, LLResult]] = []
            for j, res in enumerate(score_token_requests(self._forward, chunk, batch_size=len(chunk),
                                                         max_length=self.max_length, device=self.device,
                                                         stats=self.last_stats)):
                i = owner[start + j]
                totals[i] += res.logprob
                n_tokens[i] += res.n_tokens
                remaining[i] -= 1
                if remaining[i] == 0:
                    done.append((i, LLResult(totals[i], False, n_tokens[i])))
            if progress and done:
                progress(done)
        empty = [(i, LLResult(0.0, False, 0)) for i in range(len(reqs)) if owner.count(i) == 0]
        if progress and empty:
            progress(empty)
        return [LLResult(totals[i], False, n_tokens[i]) for i in range(len(reqs))]

    # ------------------------------------------------------------------ generation
    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        """Render (role, content) turns with the tokenizer's chat template (generation prompt added)."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages],
                                                          tokenize=False, add_generation_prompt=True))
        if self.settings.chat_template_fallback == "plain":
            return "".join(f"{role.capitalize()}: {content}\n\n" for role, content in messages) + "Assistant:"
        raise ModelError(f"model {self._model_id} has no chat template (a base model?)",
                         hint="set model.chat_template_fallback: plain, or use a chat/instruct checkpoint")

    def generate(self, reqs: Sequence[GenRequest], progress: OnGenBatch | None = None) -> list[str]:
        contexts = [self.render_chat(r.messages) if r.messages else r.context for r in reqs]
        self.last_gen_stats = self._last = GenStats()
        return generate_hf(self.model, self.tokenizer, contexts, reqs, batch_size=self.batch_size,
                           max_length=self.max_length, device=self.device,
                           add_special_tokens=self.settings.add_bos_token, on_batch=progress,
                           stats=self.last_gen_stats)


def rolling_windows(tokens: list[int], prefix_token: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's ``get_rolling_token_windows(context_len=1)`` + ``make_disjoint_window``."""
    out: list[tuple[list[int], list[int]]] = []
    if not tokens:
        return out
    first = min(max_len, len(tokens))
    pairs = [([prefix_token, *tokens[: first - 1]], tokens[:first])]
    predicted = first
    while predicted < len(tokens):
        pred_len = min(len(tokens) - predicted, max_len)
        end = predicted + pred_len
        pairs.append((tokens[end - max_len - 1 : end - 1], tokens[end - pred_len : end]))  # end > max_len here
        predicted += pred_len
    for ctx, cont in pairs:
        out.append((ctx[: len(ctx) - (len(cont) - 1)], cont))
    return out


def configure_pad_token(tokenizer: Any) -> Any:
    """lm-eval's rule: keep the pad token, else use unk, else eos, else add ``<|pad|>``."""
    if getattr(tokenizer, "pad_token_id", None) is not None or getattr(tokenizer, "pad_token", None):
        return tokenizer
    if getattr(tokenizer, "unk_token", None):
        tokenizer.pad_token_id = tokenizer.unk_token_id
    elif getattr(tokenizer, "eos_token", None):
        tokenizer.pad_token_id = tokenizer.eos_token_id
    else:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return tokenizer


def quiet_transformers() -> None:
    """CLI runs: no loading bars or tokenizer length warnings (via the env until transformers is imported)."""
    os.environ["TRANSFORMERS_VERBOSITY"], os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "error", "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

