"""``--model`` / ``--adapters`` specs: a command-line model string → a model config of ``evalmon.config.models``.

``hf:/path``, ``hf:org/name,dtype=bfloat16,…``, a bare path, ``openai:http://host:port/v1,model=NAME,…`` or
``none:`` (``parse_model_spec``), and ``--adapters a=path,b=path`` (``parse_adapters_flag``); every mistake is a
one-line ``ConfigError`` naming the flag. ``apply_overrides`` (``evalmon.config.suite``) applies them to a suite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalmon.config.models import _HINTS, MODEL_BACKENDS, MODEL_SPEC_KEYS, NoModelConfig
from evalmon.config.yamlio import describe_error, dotted
from evalmon.core.errors import ConfigError, did_you_mean

_INT_OPTIONS = ("batch_size", "max_length")
_SPEC_HINT = ("use hf:<path or org/name>[,key=value,…] (e.g. hf:./ckpt,dtype=bfloat16) or "
              "openai:<base_url>[,model=NAME,…] (e.g. openai:http://127.0.0.1:8000/v1,model=m)")


def parse_model_spec(spec: str, *, base_dir: Path | None = None) -> Any:
    """``hf:/path``, ``hf:org/name``, ``hf:/path,adapter=/p/lora,dtype=bfloat16,…``, a bare path, or
    ``openai:http://host:port/v1,model=NAME,mode=completions,concurrency=8,…``."""
    text = spec.strip()
    if not text:
        raise ConfigError("--model: empty model spec", hint=_SPEC_HINT)
    backend, rest = "hf", text
    m = re.match(r"^([A-Za-z][\w-]*):(?!//)(.*)$", text)
    if m:
        backend, rest = m.group(1).lower(), m.group(2)
        if backend not in MODEL_BACKENDS:
            raise ConfigError(f"--model: unknown backend '{backend}'{did_you_mean(backend, list(MODEL_BACKENDS))}",
                              hint=f"backends: {', '.join(MODEL_BACKENDS)}")
    cls = MODEL_BACKENDS[backend]
    if backend == "none":
        if rest.strip():
            raise ConfigError(f"--model: backend none takes no options (got '{rest}')", hint="write --model none:")
        return NoModelConfig()
    first = MODEL_SPEC_KEYS[backend]  # what a bare first item of the spec is (None: key=value only)
    allowed = [k for k in cls.model_fields if k != "backend"] + (["pretrained"] if backend == "hf" else [])
    fields: dict[str, Any] = {"backend": backend}
    for i, part in enumerate(p.strip() for p in rest.split(",")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if i == 0 and first and not (eq and key in allowed):
            key, value = first, part
        elif not eq or not key:
            raise ConfigError(f"--model: option '{part}' is not key=value", hint=_SPEC_HINT)
        elif key not in allowed:
            raise ConfigError(f"--model: unknown option '{key}'{did_you_mean(key, allowed)}",
                              hint=f"options: {', '.join(allowed)}")
        key = "path" if key == "pretrained" else key
        if key in fields:
            raise ConfigError(f"--model: option '{key}' given twice", hint="keep only one")
        value = value.strip()
        fields[key] = (None if value.lower() in ("null", "none")
                       else int(value) if key in _INT_OPTIONS and re.fullmatch(r"[+-]?\d+", value)
                       else value)
    if first and not fields.get(first):
        what = "no checkpoint path or hub id" if backend == "hf" else "no server base_url"
        raise ConfigError(f"--model: {what} in '{spec}'", hint=_SPEC_HINT)
    try:
        return cls.model_validate(fields, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = tuple(p for p in err["loc"] if isinstance(p, str) and p in cls.model_fields)
        what, hint = describe_error(err, loc, cls, _HINTS)
        raise ConfigError(f"--model: {dotted(loc) + ': ' if loc else ''}{what}", hint=hint) from None


def named_items(parts: Iterable[str], *, flag: str, noun: str, value: str, hint: str) -> Iterator[tuple[str, str]]:
    """The ``name=value`` items of a flag (``--adapters a=path,b=path``, ``--models a=SPEC,…``), stripped, in
    order; an item that is not ``name=value`` or a name given twice is a one-line ``ConfigError`` naming ``flag``."""
    seen: set[str] = set()
    for part in (p.strip() for p in parts):
        name, sep, item = part.partition("=")
        name, item = name.strip(), item.strip()
        if not sep or not name or not item:
            raise ConfigError(f"{flag}: '{part}' is not name={value}", hint=hint)
        if name in seen:
            raise ConfigError(f"{flag}: {noun} '{name}' given twice", hint="give each name once")
        seen.add(name)
        yield name, item


def parse_adapters_flag(spec: str, model: dict[str, Any]) -> dict[str, str]:
    """``--adapters a=path,b=path`` → ``{name: resolved path}`` (relative paths: from the working directory)."""
    hint = "pass --adapters name=path[,name=path…] (PEFT adapter dirs of the suite's base model)"
    if model.get("backend", "hf") != "hf":
        raise ConfigError(f"--adapters: the {model.get('backend')} backend does not load adapters",
                          hint="use an hf model (model.backend: hf)")
    if model.get("adapter"):
        raise ConfigError("--adapters: the model already has `adapter:` (one adapter)",
                          hint="drop model.adapter from the suite, or list it in --adapters")
    out = dict(named_items(spec.split(","), flag="--adapters", noun="adapter", value="path", hint=hint))
    try:
        cfg = MODEL_BACKENDS["hf"].model_validate({"path": model.get("path") or ".", "adapters": out},
                                                  context={"base_dir": Path.cwd()})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        what, why = describe_error(err, tuple(err["loc"]), MODEL_BACKENDS["hf"], _HINTS)
        raise ConfigError(f"--adapters: {what}", hint=why) from None
    return dict(cfg.adapters or {})
