"""Uncertainty signals for hallucination without retrieved contexts: token log-prob statistics of a response.

Two sources of per-token log-probs, the same statistics (``token_stats``):

* ``uncertainty`` (proxy model): each response is scored given its prompt under a reference model — by
  default the embedded real checkpoint SmolLM2-135M-Instruct (``.evalmon/checkpoints/smollm2-135m-instruct``),
  or any evalmon model config whose backend declares the ``token_logprobs`` capability (found through
  ``evalmon.core.registry``; the HF backend answers on its shared-prefix packed kernel). The prompt is
  rendered with the model's chat template (``chat: true``) or used as plain text. Expensive: ``sample_rate``
  scores a deterministic share of the records (hash of prompt + response), the rest are NaN.
* ``logged_uncertainty``: the serving model's own log-probs when the traffic carries them (the optional
  record field ``token_logprobs``: a list of floats, OpenAI ``logprobs.content`` or either as JSON).

Columns (``<name>.`` prefix), NaN where a record was not scored: ``mean_logprob``, ``min_logprob``,
``p10_logprob`` (10th percentile), ``tail_share`` (share of tokens with log-prob < ``tail_logprob``),
``surprisal_bits`` (bits per token, −mean/ln 2), ``surprisal_per_char`` (nats per response character — length
normalised on the text, so tokenisers compare) and ``n_tokens``.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from evalmon.core import registry
from evalmon.core.errors import ConfigError
from evalmon.core.lm import LLRequest, TokenLogprobLM, TokenLogprobs
from evalmon.core.records import PROMPT, RESPONSE, TOKEN_LOGPROBS
from evalmon.monitor.signals.base import BaseSignal, record_keys, stable_fraction, text_series

STATS = ("mean_logprob", "min_logprob", "p10_logprob", "tail_share", "surprisal_bits", "surprisal_per_char",
         "n_tokens")
DEFAULT_TAIL_LOGPROB = -5.0  # e^-5 ≈ 0.7% probability


def token_stats(logprobs: Sequence[float], *, chars: int = 0, tail_logprob: float = DEFAULT_TAIL_LOGPROB
                ) -> dict[str, float]:
    """The statistics of one response's token log-probs (all NaN for no tokens)."""
    lp = np.asarray([v for v in logprobs if v is not None and math.isfinite(v)], dtype=float)
    if not len(lp):
        return dict.fromkeys(STATS, float("nan"))
    mean = float(lp.mean())
    return {"mean_logprob": mean, "min_logprob": float(lp.min()), "p10_logprob": float(np.percentile(lp, 10)),
            "tail_share": float(np.mean(lp < tail_logprob)), "surprisal_bits": -mean / math.log(2),
            "surprisal_per_char": float(-lp.sum() / chars) if chars > 0 else float("nan"),
            "n_tokens": float(len(lp))}


def parse_logged_logprobs(value: Any) -> list[float] | None:
    """A logged ``token_logprobs`` value → floats; None when absent or not understood."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping):  # a whole OpenAI logprobs object {"content": [...]}
        value = value.get("content")
    if not isinstance(value, list | tuple | np.ndarray):
        return None
    out: list[float] = []
    for item in value:
        v = item.get("logprob") if isinstance(item, Mapping) else item
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            return None
    return out or None


def _frame(name: str, n: int, index: pd.Index, rows: dict[int, dict[str, float]]) -> pd.DataFrame:
    out = {f"{name}.{s}": np.full(n, np.nan) for s in STATS}
    for i, stats in rows.items():
        for s, v in stats.items():
            out[f"{name}.{s}"][i] = v
    return pd.DataFrame(out, index=index)


class LoggedUncertaintySignal(BaseSignal):
    """Statistics of the serving model's own token log-probs (records that log them; NaN otherwise)."""

    name: ClassVar[str] = "logged_uncertainty"
    version: ClassVar[str] = "1"

    def __init__(self, *, tail_logprob: float = DEFAULT_TAIL_LOGPROB) -> None:
        self.tail_logprob = tail_logprob
        self.columns = tuple(f"{self.name}.{s}" for s in STATS)
        self.inputs = (RESPONSE, TOKEN_LOGPROBS)

    def options(self) -> dict[str, Any]:
        return {"tail_logprob": self.tail_logprob}

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        values = frame[TOKEN_LOGPROBS].tolist() if TOKEN_LOGPROBS in frame.columns else [None] * n
        responses = text_series(frame, RESPONSE).tolist()
        rows = {}
        for i, v in enumerate(values):
            lp = parse_logged_logprobs(v)
            if lp:
                rows[i] = token_stats(lp, chars=len(responses[i]), tail_logprob=self.tail_logprob)
        return _frame(self.name, n, frame.index, rows)


def default_model() -> dict[str, Any]:
    """The embedded real checkpoint of the project (``evalmon init`` / ``make demo`` put it there)."""
    from evalmon.checkpoints.catalog import DEFAULT_REAL
    from evalmon.checkpoints.project import project_dir

    return {"path": str(project_dir(DEFAULT_REAL)), "backend": "hf"}


def build_scorer(model: Mapping[str, Any] | None, *, where: str = "signals.uncertainty.model") -> Any:
    """The LM for ``model`` (any registered backend; default: the embedded checkpoint); it must declare the
    ``token_logprobs`` capability."""
    from evalmon.judge.factory import judge_config

    config = judge_config(dict(model) if model else default_model(), where=where)
    backend = str(config.model_dump()["backend"])
    lm = registry.backends.get(backend, where=f"{where}.backend")(config)
    if "token_logprobs" not in lm.capabilities:
        raise ConfigError(f"{where}: backend {backend!r} cannot return per-token log-probs",
                          hint="use a backend with the token_logprobs capability (hf)")
    return lm


# The last token_logprobs call per proxy model, kept for the other live proxy signals on that model: ``uncertainty``
# and ``halludetect`` (its own proxy) send the same requests for a window's records, and the second reads the
# first's results instead of scoring again. Shared by whole call (the exact request list), not per record: the
# packed kernel's numbers depend on which requests share a pack (≈1e-5 apart), so only a whole call is bit-identical.
_LIVE: weakref.WeakSet[ProxyUncertaintySignal] = weakref.WeakSet()
_SHARED: dict[str, tuple[tuple[str, ...], list[TokenLogprobs], int]] = {}  # model → (request keys, results, readers)
_SHARED_LOCK = threading.Lock()


class ProxyUncertaintySignal(BaseSignal):
    """Token log-prob statistics of each (sampled) response given its prompt under a reference model."""

    name: ClassVar[str] = "uncertainty"
    version: ClassVar[str] = "1"
    _model_key: str | None = None

    def __init__(self, *, model: Mapping[str, Any] | None = None, lm: TokenLogprobLM | None = None,
                 sample_rate: float = 1.0, seed: int = 0, chat: bool = True, max_prompt_chars: int = 2000,
                 max_response_chars: int = 2000, tail_logprob: float = DEFAULT_TAIL_LOGPROB) -> None:
        self.model_cfg = dict(model) if model else None
        self._lm = lm
        self._lm_key = lm.fingerprint.cache_key() if lm is not None else None
        self.sample_rate, self.seed, self.chat = sample_rate, seed, chat
        self.max_prompt_chars, self.max_response_chars = max_prompt_chars, max_response_chars
        self.tail_logprob = tail_logprob
        self.columns = tuple(f"{self.name}.{s}" for s in STATS)
        self.inputs = (PROMPT, RESPONSE)
        with _SHARED_LOCK:
            _LIVE.add(self)

    @property
    def lm(self) -> TokenLogprobLM:
        if self._lm is None:
            self._lm = build_scorer(self.model_cfg)
        return self._lm

    def options(self) -> dict[str, Any]:
        # the model's identity without loading it: its config (a given LM: its fingerprint's cache key)
        ident = self._lm_key or self.model_cfg or default_model()
        return {"model": ident, "sample_rate": self.sample_rate, "seed": self.seed, "chat": self.chat,
                "max_prompt_chars": self.max_prompt_chars, "max_response_chars": self.max_response_chars,
                "tail_logprob": self.tail_logprob}

    def model_key(self) -> str:
        """The proxy model's identity (its config, or a given LM's fingerprint), as one string."""
        if self._model_key is None:
            self._model_key = json.dumps(self.options()["model"], sort_keys=True, default=str)
        return self._model_key

    def token_logprobs(self, reqs: Sequence[LLRequest]) -> list[TokenLogprobs]:
        """``self.lm.token_logprobs(reqs)``, or the results of the same call that another live proxy signal on the
        same model just made (then this one's model is not even loaded)."""
        model, keys = self.model_key(), tuple(r.key() for r in reqs)
        with _SHARED_LOCK:
            hit = _SHARED.get(model)
            if hit is not None and hit[0] == keys:
                if hit[2] <= 1:
                    del _SHARED[model]
                else:
                    _SHARED[model] = (hit[0], hit[1], hit[2] - 1)
                return list(hit[1])
        results = list(self.lm.token_logprobs(reqs))
        with _SHARED_LOCK:
            readers = sum(1 for s in list(_LIVE) if s is not self and s.model_key() == model)
            if readers:
                _SHARED[model] = (keys, results, readers)
            else:
                _SHARED.pop(model, None)
        return results

    def selected(self, frame: pd.DataFrame) -> np.ndarray:
        """Which records are scored: stable per (prompt, response), ≈ ``sample_rate`` of them."""
        if self.sample_rate >= 1.0:
            return np.ones(len(frame), dtype=bool)
        keys = record_keys(frame, (PROMPT, RESPONSE))
        return np.array([stable_fraction(k, self.seed) < self.sample_rate for k in keys], dtype=bool)

    def requests(self, prompts: Sequence[str], responses: Sequence[str]) -> list[LLRequest]:
        reqs = []
        for p, r in zip(prompts, responses, strict=True):
            p, r = p[: self.max_prompt_chars], r[: self.max_response_chars]
            reqs.append(LLRequest("", r, messages=(("user", p),)) if self.chat else LLRequest(f"{p}\n", r))
        return reqs

    def unconditional_requests(self, responses: Sequence[str]) -> list[LLRequest]:
        """Each response without its question (an empty user turn): conditioned minus unconditioned log-prob
        is the pointwise mutual information of question and answer."""
        return self.requests([""] * len(responses), responses)

    def scored_logprobs(self, frame: pd.DataFrame, *, unconditional: bool = False
                        ) -> tuple[list[int], list[TokenLogprobs], list[TokenLogprobs]]:
        """Positions of the records scored (sampled, non-empty response), their responses' token log-probs
        given the prompt and — with ``unconditional`` — without it (else an empty list); one engine call, shared
        with the other proxy signals on this model that make the same one (``token_logprobs``)."""
        prompts, responses = text_series(frame, PROMPT).tolist(), text_series(frame, RESPONSE).tolist()
        idx = [int(i) for i in np.flatnonzero(self.selected(frame)) if responses[i].strip()] if len(frame) else []
        if not idx:
            return [], [], []
        resp = [responses[i] for i in idx]
        reqs = self.requests([prompts[i] for i in idx], resp)
        results = self.token_logprobs(reqs + (self.unconditional_requests(resp) if unconditional else []))
        return idx, results[: len(idx)], results[len(idx):]

    def stats_frame(self, frame: pd.DataFrame, idx: Sequence[int], results: Sequence[TokenLogprobs]
                    ) -> pd.DataFrame:
        """The statistics columns of ``frame``: the records at positions ``idx`` from their token log-probs
        ``results``, NaN elsewhere."""
        responses = text_series(frame, RESPONSE).tolist()
        rows = {i: token_stats(res.logprobs, chars=len(responses[i][: self.max_response_chars]),
                               tail_logprob=self.tail_logprob) for i, res in zip(idx, results, strict=True)}
        return _frame(self.name, len(frame), frame.index, rows)

    def compute(self, frame: pd.DataFrame) -> pd.DataFrame:
        idx, results, _ = self.scored_logprobs(frame)
        return self.stats_frame(frame, idx, results)
