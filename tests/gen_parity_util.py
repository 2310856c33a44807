"""Helpers for the generative parity tests (BBH CoT, TruthfulQA generation) against lm-eval.

* :func:`random_twin` — the tiny checkpoint's tokenizer with freshly initialised weights. The
  trained tiny model answers every BBH / TruthfulQA prompt with "\\n\\n" (an empty generation under
  lm-eval's stops); the random twin writes varied text, so raw generations are worth comparing.
* :class:`ScriptedLM` / :func:`lmeval_scripted` — the same fixed answer per prompt fed to both
  pipelines, to compare filters and metrics on answers that a tiny model never produces.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalmon.core.lm import EngineStats, GenRequest, ModelFingerprint


def random_twin(src: Path, dst: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and p.suffix not in {".safetensors", ".bin"} and p.name != "config.json":
            shutil.copy(p, dst / p.name)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src)).save_pretrained(dst)
    return dst


class ScriptedLM:
    """evalmon backend answering each prompt from a dict."""

    fingerprint = ModelFingerprint(backend="scripted", model="scripted")
    capabilities = frozenset({"generate"})

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script

    def loglikelihood(self, reqs: Sequence[Any], progress: Any = None) -> list[Any]:
        raise NotImplementedError

    def stats(self) -> EngineStats:
        return EngineStats()

    def token_count(self, text: str) -> int:
        return len(text.split())

    def generate(self, reqs: Sequence[GenRequest], progress: Any = None) -> list[str]:
        out = [self.script[r.context] for r in reqs]
        if progress:
            progress(list(enumerate(out)))
        return out


def lmeval_scripted(script: dict[str, str]) -> Any:
    """lm-eval ``LM`` answering each ``generate_until`` request from the same dict."""
    from lm_eval.api.model import LM

    class Scripted(LM):  # type: ignore[misc]
        def loglikelihood(self, requests: Any) -> Any:
            raise NotImplementedError

        def loglikelihood_rolling(self, requests: Any) -> Any:
            raise NotImplementedError

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> list[str]:
            return [script[r.args[0]] for r in requests]

    return Scripted()


def lmeval_context(sample: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(context, generation kwargs) of a logged lm-eval ``generate_until`` sample."""
    args = sample["arguments"]
    if isinstance(args, dict):
        first = args["gen_args_0"]
        return first["arg_0"], first["arg_1"]
    return args[0][0], args[0][1]


def task_manager(include_path: Path) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(include_path), include_defaults=False)
