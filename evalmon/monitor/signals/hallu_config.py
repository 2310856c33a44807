"""YAML configs and builders of the context-free hallucination signals (import-light: no numpy/torch here).

::

    signals:
      - {name: uncertainty, sample_rate: 0.2}             # proxy model (default: the embedded SmolLM2)
      - {name: uncertainty, model: {backend: hf, path: ./ckpt}, chat: false}
      - logged_uncertainty                                 # the serving model's own token logprobs
      - {name: halludetect}                                # the trained detector (embeddings + uncertainty)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from evalmon.config.signals import BaseSignalConfig, relative_to_yaml
from evalmon.core import registry
from evalmon.monitor.contracts import Signal

DEFAULT_TAIL_LOGPROB = -5.0


class UncertaintyConfig(BaseSignalConfig, BaseModel):
    name: Literal["uncertainty"] = "uncertainty"
    model: dict[str, Any] | None = None  # an evalmon model config; None: the embedded real checkpoint
    sample_rate: float = Field(1.0, ge=0, le=1)
    seed: int = 0
    chat: bool = True  # render the prompt with the model's chat template
    max_prompt_chars: int = Field(2000, ge=16)
    max_response_chars: int = Field(2000, ge=16)
    tail_logprob: float = Field(DEFAULT_TAIL_LOGPROB, lt=0)


class LoggedUncertaintyConfig(BaseSignalConfig, BaseModel):
    name: Literal["logged_uncertainty"] = "logged_uncertainty"
    tail_logprob: float = Field(DEFAULT_TAIL_LOGPROB, lt=0)


class HalluDetectConfig(BaseSignalConfig, BaseModel):
    name: Literal["halludetect"] = "halludetect"
    artifact: str | None = None  # a detector JSON file; None: the one shipped in the package
    threshold: float | None = Field(None, ge=0, le=1)  # None: the artifact's validation-chosen threshold
    uncertainty: UncertaintyConfig = UncertaintyConfig()  # the proxy model the detector's features need
    batch_size: int = Field(64, ge=1)
    allow_download: bool = False

    @field_validator("artifact")
    @classmethod
    def _near_yaml(cls, v: str | None, info: ValidationInfo) -> str | None:
        return relative_to_yaml(v, info)


def _uncertainty(cfg: UncertaintyConfig, *, where: str = "signals.uncertainty", **_: Any) -> Signal:
    from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal

    if cfg.model is None:
        _require_default_model(where)
    return ProxyUncertaintySignal(model=cfg.model, sample_rate=cfg.sample_rate, seed=cfg.seed, chat=cfg.chat,
                                  max_prompt_chars=cfg.max_prompt_chars,
                                  max_response_chars=cfg.max_response_chars, tail_logprob=cfg.tail_logprob)


def _require_default_model(where: str) -> None:
    """No ``model:``: the embedded checkpoint must be there (checked when the signal is built, so a missing one
    is a one-line error naming the signal's key — not the HF backend's, which names ``evalmon run``'s flags)."""
    from pathlib import Path

    from evalmon.core.errors import ConfigError
    from evalmon.monitor.signals.uncertainty import default_model

    path = Path(default_model()["path"])
    entry = ("{name: halludetect, uncertainty: {model: {path: DIR}}}" if "halludetect" in where
             else "{name: uncertainty, model: {path: DIR}}")
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{where}.model: not set, and the default proxy model (SmolLM2-135M-Instruct) is not in {path}",
            hint="run `evalmon init` in this directory to fetch it, or name a model that returns token log-probs: "
                 f"`--model hf:DIR` (evalmon signals score) or `{entry}` (monitor YAML signals:)")


def _logged(cfg: LoggedUncertaintyConfig, **_: Any) -> Signal:
    from evalmon.monitor.signals.uncertainty import LoggedUncertaintySignal

    return LoggedUncertaintySignal(tail_logprob=cfg.tail_logprob)


def _halludetect(cfg: HalluDetectConfig, *, allow_download: bool = False, **kw: Any) -> Signal:
    from evalmon.monitor.signals.halludetect import HalluDetectSignal, load_artifact

    # the cheap check first: a malformed artifact is the error (naming its path), not a missing proxy model
    load_artifact(cfg.artifact)
    return HalluDetectSignal(artifact=cfg.artifact, threshold=cfg.threshold,
                             proxy=_uncertainty(cfg.uncertainty, where="signals.halludetect.uncertainty"),
                             batch_size=cfg.batch_size,
                             allow_download=cfg.allow_download or allow_download)


def register() -> None:
    for name, build, config in (("uncertainty", _uncertainty, UncertaintyConfig),
                                ("logged_uncertainty", _logged, LoggedUncertaintyConfig),
                                ("halludetect", _halludetect, HalluDetectConfig)):
        registry.signals.add(name, build, config=config)
