"""Model configuration models (one per ``model.backend``) and the path/ref resolution they share.

Part of the suite config (``evalmon.config.suite`` re-exports everything here); a separate module so that
each file stays small. ``ModelConfig`` validates ``model:`` with the config class registered for its
``backend`` (``evalmon.core.registry.backends``, metadata ``config``); the built-in classes live here and
``evalmon.backends.registry`` registers them with their loaders. A plugin backend brings its own class.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evalmon.config.base import StrictConfig as _Strict
from evalmon.core import registry
from evalmon.core.errors import did_you_mean

# "what to do" for a bad value, by key (and "missing:<key>" for a missing one); backends add theirs
# (registry metadata ``hints``).
_STATIC_HINTS = {
    "name": "use letters, digits, '_', '.' and '-' only",
    "missing:name": "add `name: my_suite` at the top level",
    "missing:tasks": "add a `tasks:` list of task or group names",
    "missing:model": "add a `model:` mapping with at least `path:` (or a `models:` list of named models)",
    "missing:path": "add `path:` with a local checkpoint dir or a hub id (org/name)",
    "tasks": "list at least one task or group name under `tasks:`",
    "models": "list named models: `models: [{name: a, path: …}, {name: b, path: …}]` (docs/scale.md)",
    "limit": "use a positive integer, or null for every document",
    "num_fewshot": "use 0 or a positive integer",
    "batch_size": "use an integer ≥ 1",
    "max_length": "use an integer ≥ 16, or null for the model's default",
    "seed": "use an integer from 0 to 4294967295 (numpy and torch seeds)",
    "dtype": "use float32, bfloat16, float16 or auto",
    "device": "use cpu, cuda, cuda:N, mps or auto",
    "missing:base_url": "add `base_url: http://host:port/v1` (the server's API root)",
    "base_url": "write the server's API root, e.g. http://127.0.0.1:8000/v1",
    "api_key_env": "write the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), not the key",
    "mode": "use chat (/v1/chat/completions) or completions (/v1/completions)",
    "concurrency": "use an integer ≥ 1 (parallel requests)",
    "timeout_s": "use a number of seconds > 0",
    "max_retries": "use an integer ≥ 0",
    "backoff_s": "use a number of seconds > 0 (first retry delay; doubles per retry)",
    "supports_logprobs": "use auto (probe the server once), true or false",
    "options": "give a mapping of task options",
    "tasks[]": "write a task name, or a mapping with `name:` and optional num_fewshot/limit/options",
    "adapters": "write `adapters: {name: path/to/peft_adapter, …}` (one or more PEFT adapter dirs of this base)",
    "adapters.name": "use letters, digits, '_', '.' and '-' (not 'base': that is the model without adapters)",
}
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _base_dir(info: ValidationInfo) -> Path | None:
    ctx = info.context
    return ctx.get("base_dir") if isinstance(ctx, dict) else None


def resolve_path(value: str | Path, base_dir: Path | None) -> Path:
    """``~`` expanded; relative paths joined onto ``base_dir`` and normalised (when one is given)."""
    p = Path(value).expanduser()
    if base_dir is None or p.is_absolute():
        return p
    return Path(os.path.abspath(Path(base_dir) / p))


def is_local_ref(ref: str, base_dir: Path | None) -> bool:
    """A model/adapter reference is a local path (not a hub id) by the rule in the module doc."""
    if ref in (".", "..") or ref.startswith(("/", "./", "../", "~")):
        return True
    return base_dir is not None and ((Path(base_dir) / ref).is_dir() or (Path(base_dir) / ref).is_file())


def resolve_ref(ref: str, base_dir: Path | None) -> str:
    return str(resolve_path(ref, base_dir)) if is_local_ref(ref, base_dir) else ref


class HFModelConfig(_Strict):
    """A transformers causal LM (optionally + PEFT adapter)."""

    backend: Literal["hf"] = "hf"
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "pretrained"))
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|mps|auto)$")
    batch_size: int = Field(8, ge=1)
    max_length: int | None = Field(None, ge=16)
    adapter: str | None = None
    # many LoRA adapters of this one base, evaluated in one run (name → PEFT adapter dir); docs/adapters.md
    adapters: dict[str, str] | None = None
    trust_remote_code: bool = False
    add_bos_token: bool | None = None  # None = the tokenizer's default (lm-eval ≥ 0.4.9.2 policy)
    chat_template_fallback: Literal["error", "plain"] = "error"  # no chat template: fail, or "Role: text" lines
    scoring: Literal["packed", "plain"] = "packed"  # shared-prefix trie packing, or lm-eval's per-request rows
    token_budget: int | None = Field(default=None, ge=16)  # tokens per packed forward (default 2048)
    gguf: str | None = Field(None, min_length=1)  # a .gguf file inside `path` (a dir or hub repo); evalmon.backends.hf.gguf

    @model_validator(mode="before")
    @classmethod
    def _one_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data and "pretrained" in data:
            raise PydanticCustomError("conflict", "both `path` and `pretrained` are given",
                                      {"hint": "keep one of them (`pretrained` is an alias of `path`)"})
        return data

    @field_validator("path", "adapter")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else resolve_ref(v, _base_dir(info))

    @field_validator("adapters")
    @classmethod
    def _resolve_adapters(cls, v: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if v is None:
            return None
        if not v:
            raise PydanticCustomError("adapters_empty", "no adapters listed", {"hint": _HINTS["adapters"]})
        for name, ref in v.items():
            if name == "base" or not ADAPTER_NAME.fullmatch(name):
                raise PydanticCustomError("adapter_name", "adapter name '{got}' is not allowed",
                                          {"got": name, "hint": _HINTS["adapters.name"]})
            if not ref.strip():
                raise PydanticCustomError("adapter_path", "adapter '{got}' has an empty path",
                                          {"got": name, "hint": _HINTS["adapters"]})
        return {name: resolve_ref(ref, _base_dir(info)) for name, ref in v.items()}

    @model_validator(mode="after")
    def _one_adapter_mode(self) -> HFModelConfig:
        if self.adapter is not None and self.adapters is not None:
            raise PydanticCustomError("conflict", "both `adapter` and `adapters` are given",
                                      {"hint": "keep `adapter:` for one adapter, or list it under `adapters:`"})
        return self

    @property
    def is_local(self) -> bool:
        return Path(self.path).is_absolute()


class OpenAIModelConfig(_Strict):
    """A model behind an OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp, ``transformers serve``, …).

    The API key is read at run time from the environment variable *named* by ``api_key_env`` — the
    key itself never appears in a suite file, results, logs or MLflow.
    """

    backend: Literal["openai"] = "openai"
    base_url: str = Field(min_length=1)  # API root, e.g. http://127.0.0.1:8000/v1
    model: str | None = Field(None, min_length=1)  # served model name; None = the only one /models lists
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    mode: Literal["chat", "completions"] = "chat"  # endpoint used for generation
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, gt=0)
    tokenizer: str | None = None  # local HF tokenizer (path or hub id): exact token counts + token-id prompts
    batch_size: int = Field(1, ge=1)  # unused (one request per prompt); kept for spec symmetry
    supports_logprobs: Literal["auto"] | bool = "auto"  # auto: probe the server once, on first use

    @field_validator("supports_logprobs", mode="before")
    @classmethod
    def _tristate(cls, v: Any) -> Any:
        text = str(v).strip().lower()
        if isinstance(v, bool) or text == "auto":
            return v if isinstance(v, bool) else "auto"
        if text in ("true", "false", "yes", "no", "1", "0"):
            return text in ("true", "yes", "1")
        raise PydanticCustomError("tristate", "expected auto, true or false, got '{got}'",
                                  {"got": v, "hint": _HINTS["supports_logprobs"]})

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PydanticCustomError("url", "'{got}' is not an http(s) URL",
                                      {"got": v, "hint": _HINTS["base_url"]})
        if parts.username is not None or parts.password is not None:
            raise PydanticCustomError("url_credentials", "credentials are not allowed in base_url",
                                      {"hint": "remove user:password@ and put the key in the variable named "
                                               "by api_key_env"})
        return v.strip().rstrip("/")

    @field_validator("tokenizer")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else resolve_ref(v, _base_dir(info))


class ASRModelConfig(_Strict):
    """A transformers ``automatic-speech-recognition`` checkpoint (Whisper, Wav2Vec2-CTC, …) for ``asr`` tasks."""

    backend: Literal["hf_asr"] = "hf_asr"
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "pretrained"))
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|mps|auto)$")
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)  # None = the model's generation config
    language: str | None = None  # Whisper: force a language (e.g. "en")
    chunk_length_s: float | None = Field(None, gt=0)  # long audio: pipeline chunking

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: str, info: ValidationInfo) -> str:
        return resolve_ref(v, _base_dir(info))


class NoModelConfig(_Strict):
    """No model: for tasks that score existing outputs (e.g. ``earnings21_*`` transcripts, ``asr_text``)."""

    backend: Literal["none"] = "none"


class _BackendConfigs(Mapping[str, type[BaseModel]]):
    """``backend name → config class``, read from ``evalmon.core.registry.backends`` (meta ``config``)."""

    def __getitem__(self, name: str) -> type[BaseModel]:
        if name not in registry.backends:
            raise KeyError(name)
        return registry.backends.meta(name)["config"]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(registry.backends.names())

    def __len__(self) -> int:
        return len(registry.backends.names())


class _SpecKeys(Mapping[str, str | None]):
    """``backend → the key a bare --model <backend>:<value> fills`` (meta ``spec_key``; None: key=value only)."""

    def __getitem__(self, name: str) -> str | None:
        return registry.backends.meta(name).get("spec_key") if name in registry.backends else None

    def __iter__(self) -> Iterator[str]:
        return iter(registry.backends.names())

    def __len__(self) -> int:
        return len(registry.backends.names())


class _Hints(Mapping[str, str]):
    """The static hints plus what backends registered (meta ``hints``); ``backend`` lists the backends."""

    def _all(self) -> dict[str, str]:
        out = dict(_STATIC_HINTS)
        for name in registry.backends.names():
            out.update(registry.backends.meta(name).get("hints", {}))
        described = [f"{n} ({d})" if (d := registry.backends.meta(n).get("description")) else n
                     for n in registry.backends.names()]
        head = ", ".join(described[:-1]) + " or " if len(described) > 1 else ""
        out["backend"] = f"use {head}{described[-1]}"
        return out

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


MODEL_BACKENDS: Mapping[str, type[BaseModel]] = _BackendConfigs()
MODEL_SPEC_KEYS: Mapping[str, str | None] = _SpecKeys()
_HINTS: Mapping[str, str] = _Hints()


class _UnknownBackend(BaseModel):
    """Where an unknown ``backend`` lands: the error points at the ``backend`` key and names the choices."""

    model_config = ConfigDict(extra="allow", frozen=True)
    backend: str

    @field_validator("backend", mode="before")
    @classmethod
    def _unknown(cls, v: Any) -> Any:
        names = list(MODEL_BACKENDS)
        raise PydanticCustomError("unknown_backend", "unknown backend '{got}'{dym}",
                                  {"got": v, "dym": did_you_mean(str(v), names), "hint": f"backends: {', '.join(names)}"})


def _backend_tag(value: Any) -> str:
    """The written ``backend`` (default hf), or "unknown" when no backend is registered under it."""
    tag = value.get("backend", "hf") if isinstance(value, dict) else getattr(value, "backend", "hf")
    return tag if isinstance(tag, str) and tag in MODEL_BACKENDS else "unknown"


class _Tags:
    """Names pydantic may insert into an error location for ``model`` (kept for ``suite._loc_fixup``)."""

    def __contains__(self, name: object) -> bool:
        return name == "unknown" or (isinstance(name, str) and name in MODEL_BACKENDS)


_MODEL_TAGS = _Tags()


def _validate_model_config(value: Any, info: ValidationInfo) -> Any:
    """``model:`` → the config class its ``backend`` registered (errors keep their place under ``model``)."""
    tag = _backend_tag(value)
    cls = _UnknownBackend if tag == "unknown" else MODEL_BACKENDS[tag]
    if isinstance(value, cls):
        return value
    return cls.model_validate(value, context=info.context)


# A model config of whichever backend ``backend:`` names (default hf), looked up in the registry when a
# config is validated — so a plugin backend's config class validates ``model:`` like a built-in one.
ModelConfig = Annotated[Any, PlainValidator(_validate_model_config)]
