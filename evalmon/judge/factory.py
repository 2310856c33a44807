"""The one judge factory: a judge model from a model config over ANY backend, by name through the registry.

Used by MT-Bench (its ``options.judge``: the harness builds the judge role's model here) and by the
monitor's hallucination signal (``judge.model``), so a judge may be a local checkpoint (``backend: hf``),
a served model (``backend: openai``: vLLM, TGI, ``transformers serve``, a hosted API) or a plugin backend.

* ``judge_config(mapping, where=…)``: validate a judge's model config with its backend's config class
  (registry metadata ``config``); no ``backend`` key means ``hf``. Errors are one line naming ``where``.
* ``build_judge(config)``: the LM, built by the backend's registered loader; it must be able to generate.
* ``judge_fn(config or LM)``: a ``prompt -> text`` callable (+ ``batch``) for code that only needs text
  back; greedy, short answers; the model is built on first use.
* ``ask_judge(judge, prompts)``: the replies, ``None`` for a prompt whose call failed (an HTTP error after the
  backend's retries, a timeout, a lost connection): that item is *not judged*, the others keep their replies,
  and the failure is logged (one line). Each prompt is sent at most once; after a failure that is not the
  server rejecting that one request (HTTP 4xx other than 401/403/429) nothing more is sent to it. A judge that
  cannot be built (bad config, server unreachable at start) still raises.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from evalmon.config.base import first_error
from evalmon.core import registry
from evalmon.core.errors import ConfigError, ModelError
from evalmon.core.lm import LM, GenerativeLM, GenRequest

log = logging.getLogger("evalmon.judge")
_REJECTED = re.compile(r": HTTP 4(?!01|03|29)\d\d\b")  # the server refused this one request (not auth, not rate)


def judge_config(cfg: Mapping[str, Any] | BaseModel, *, base_dir: Path | None = None,
                 where: str = "judge") -> BaseModel:
    """``cfg`` validated by its backend's model-config class (relative paths against ``base_dir``)."""
    if isinstance(cfg, BaseModel):
        return cfg
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a model config mapping (e.g. {{backend: openai, base_url: …}}), "
                          f"got {type(cfg).__name__}")
    backend = str(cfg.get("backend", "hf"))
    registry.backends.get(backend, where=f"{where}.backend")  # unknown → one line with "did you mean"
    cls: type[BaseModel] = registry.backends.meta(backend)["config"]
    try:
        return cls.model_validate({**cfg, "backend": backend}, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        err = first_error(e)
        raise ConfigError(f"{where}.{err.where}: {err.msg}" if err.where else f"{where}: {err.msg}") from None


def build_judge(cfg: Mapping[str, Any] | BaseModel, *, where: str = "judge") -> LM:
    """The judge LM for ``cfg`` (any registered backend); it must declare the "generate" capability."""
    config = judge_config(cfg, where=where)
    backend = str(config.model_dump()["backend"])  # every registered config class has its backend tag
    lm: LM = registry.backends.get(backend, where=f"{where}.backend")(config)
    if "generate" not in lm.capabilities:
        raise ConfigError(f"{where}: backend {backend!r} cannot generate text, so it cannot judge",
                          hint="use a generative backend (hf, openai)")
    return lm


class LMJudge:
    """``judge(prompt) -> text`` and ``judge.batch(prompts)`` over a judge LM (``lm``, or built by ``make`` on
    first use): greedy generation of at most ``max_gen_toks`` tokens, cut at ``until``."""

    def __init__(self, *, lm: LM | None = None, make: Callable[[], LM] | None = None, max_gen_toks: int = 8,
                 until: tuple[str, ...] = ("\n",)) -> None:
        if (lm is None) == (make is None):  # pragma: no cover - programming error
            raise ValueError("LMJudge needs exactly one of lm= and make=")
        self._lm, self._make = lm, make
        self.max_gen_toks, self.until = max_gen_toks, until

    @property
    def lm(self) -> LM:
        if self._lm is None:
            assert self._make is not None
            self._lm = self._make()
        return self._lm

    def __call__(self, prompt: str) -> str:
        return self.batch([prompt])[0]

    def _requests(self, prompts: Sequence[str]) -> tuple[GenerativeLM, list[GenRequest]]:
        lm = self.lm
        if "generate" not in lm.capabilities:
            raise ConfigError(f"judge: backend {lm.fingerprint.backend!r} cannot generate text")
        reqs = [GenRequest(context=p, until=self.until, max_gen_toks=self.max_gen_toks) for p in prompts]
        return cast(GenerativeLM, lm), reqs

    def batch(self, prompts: Sequence[str]) -> list[str]:
        lm, reqs = self._requests(prompts)
        return [str(t) for t in lm.generate(reqs)]

    def try_batch(self, prompts: Sequence[str]) -> tuple[list[str | None], list[str]]:
        """Replies (``None``: the call failed, not judged) and the failures' one-line messages.

        A served judge (a backend with ``concurrency``) gets one request per prompt, ``concurrency`` at a time,
        so one failing call costs only its own prompt; a local one gets one batch (a failure: none judged)."""
        lm, reqs = self._requests(prompts)
        workers = int(getattr(getattr(lm, "cfg", None), "concurrency", 0) or 0)
        if workers < 1 or len(reqs) < 2:
            try:
                return [str(t) for t in lm.generate(reqs)], []
            except ModelError as exc:
                return [None] * len(reqs), [exc.one_line()]
        out: list[str | None] = [None] * len(reqs)
        errors: list[str] = []
        healthy = threading.Event()
        healthy.set()

        def one(i: int) -> None:
            if not healthy.is_set():  # the server is failing: send nothing more
                return
            try:
                out[i] = str(lm.generate([reqs[i]])[0])
            except ModelError as exc:
                errors.append(exc.one_line())
                if not _REJECTED.search(exc.message):
                    healthy.clear()

        with ThreadPoolExecutor(max_workers=min(workers, len(reqs)), thread_name_prefix="evalmon-judge") as pool:
            list(pool.map(one, range(len(reqs))))
        return out, errors


def judge_fn(cfg: Mapping[str, Any] | BaseModel, *, max_gen_toks: int = 8, where: str = "judge") -> LMJudge:
    """A ``LMJudge`` over a judge model config: validated now, the model built on first use."""
    config = judge_config(cfg, where=where)
    return LMJudge(make=lambda: build_judge(config, where=where), max_gen_toks=max_gen_toks)


def ask_judge(judge: Callable[[str], str] | Any, prompts: Sequence[str], *, where: str) -> list[str | None]:
    """The judge's reply to each prompt, ``None`` where its call failed (see the module doc); a judge object
    without ``try_batch`` (a plain callable, or one with ``batch``) is called as before."""
    if not prompts:
        return []
    if isinstance(judge, LMJudge):
        replies, errors = judge.try_batch(prompts)
        if errors:
            missed = sum(r is None for r in replies)
            log.warning("%s: %d of %d judge call(s) not judged (%d failed; first: %s)", where, missed, len(replies),
                        len(errors), errors[0])
        return replies
    batch = getattr(judge, "batch", None)
    return [str(r) for r in batch(prompts)] if callable(batch) else [str(judge(p)) for p in prompts]
