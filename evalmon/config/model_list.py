"""``models:`` — several named checkpoints in one suite (docs/scale.md, "Several checkpoints in one suite").

A suite either names one ``model:`` or lists ``models:``; each entry is a model config of any backend (the
same keys as ``model:``, ``backend`` defaulting to hf) plus a ``name``:

```yaml
models:
  - {name: smol, path: .evalmon/checkpoints/smollm2-135m-instruct}
  - {name: smol-sft, path: .evalmon/checkpoints/smollm2-135m-instruct, adapter: loras/sft}
  - {name: served, backend: openai, base_url: http://127.0.0.1:8000/v1, model: m}
```

The first entry is the *reference*: its run is the suite run, the others are compared with it
(``harness/matrix.py``). An entry names one model (``adapter:`` is fine, ``adapters:`` is not: list each
adapter as its own entry). ``--models a=SPEC,b=SPEC`` (``SPEC`` as in ``--model``; an item ``key=value`` whose key
is a model option belongs to the entry before it; ``;`` separates entries too) replaces the list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, create_model, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from evalmon.config.model_spec import named_items
from evalmon.config.models import ADAPTER_NAME, ModelConfig, _Strict
from evalmon.core.errors import ConfigError

MODELS_HINT = "list `models:` entries as {name: NAME, path: …} (or backend: openai, base_url: …), each name once"
NAME_HINT = "use letters, digits, '_', '.' and '-' (not 'base': RUN#base names an adapter run's base model)"
FLAG_HINT = "pass --models name=SPEC,name=SPEC (SPEC as in --model, e.g. a=./ckpt_a,b=hf:./ckpt_b,dtype=bfloat16)"


class NamedModel(_Strict):
    """One ``models:`` entry: ``name`` plus the keys of a ``model:`` mapping (validated by its backend's class)."""

    name: str
    config: ModelConfig  # written flat in YAML: the entry minus `name`

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "name" not in data:
            raise PydanticCustomError("model_name", "this models entry has no `name`", {"hint": MODELS_HINT})
        if data.get("adapters") is not None:
            raise PydanticCustomError("conflict", "`adapters:` is not allowed in a models entry",
                                      {"hint": "list each adapter as its own models entry with `adapter: path`"})
        return {"name": data["name"], "config": {k: v for k, v in data.items() if k != "name"}}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v == "base" or not ADAPTER_NAME.fullmatch(v):
            raise PydanticCustomError("model_name", "model name '{got}' is not allowed", {"got": v, "hint": NAME_HINT})
        return v

    @model_serializer(mode="plain")
    def _flat(self) -> dict[str, Any]:  # as written: {name, path, …}
        return {"name": self.name, **self.config.model_dump(mode="json")}


def check_unique(entries: list[NamedModel]) -> list[NamedModel]:
    """Each name once (field validator of ``SuiteConfig.models``)."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.name in first:
            raise PydanticCustomError("duplicate_entry", "model '{name}' is listed twice (entries {first} and {index})",
                                      {"name": entry.name, "first": first[entry.name], "index": i,
                                       "hint": "give each models entry its own name"})
        first[entry.name] = i
    return entries


def _option_keys() -> set[str]:
    from evalmon.config.models import MODEL_BACKENDS

    return {k for cls in MODEL_BACKENDS.values() for k in cls.model_fields} | {"pretrained"}


def split_models_flag(spec: str) -> list[str]:
    """``a=./p,b=hf:./q,dtype=bfloat16`` → ``["a=./p", "b=hf:./q,dtype=bfloat16"]``: an item whose key is a model
    option (``dtype``, ``batch_size``, …) continues the entry before it; ``;`` always starts a new entry."""
    keys = _option_keys()
    out: list[str] = []
    for chunk in spec.split(";"):
        start = len(out)
        for item in chunk.split(","):
            key = item.partition("=")[0].strip()
            if len(out) > start and "=" in item and key in keys:
                out[-1] += "," + item
            else:
                out.append(item)
    return out


def parse_models_flag(spec: str, parse_model_spec: Any) -> list[tuple[str, Any]]:
    """``--models a=./ckpt_a,b=hf:./ckpt_b,dtype=bfloat16`` → ``[(name, model config), …]`` (relative paths: from
    the working directory; see ``split_models_flag``)."""
    out: list[tuple[str, Any]] = []
    for name, model in named_items(split_models_flag(spec), flag="--models", noun="model", value="SPEC",
                                   hint=FLAG_HINT):
        if name == "base" or not ADAPTER_NAME.fullmatch(name):
            raise ConfigError(f"--models: model name '{name}' is not allowed", hint=NAME_HINT)
        try:
            cfg = parse_model_spec(model, base_dir=Path.cwd())
        except ConfigError as exc:
            raise ConfigError(f"--models: {name}: {exc.message.removeprefix('--model: ')}", hint=exc.hint) from None
        if getattr(cfg, "adapters", None):
            raise ConfigError(f"--models: {name}: adapters are not allowed in a models entry",
                              hint="give each adapter its own entry with adapter=PATH")
        out.append((name, cfg))
    return out


def inherit_settings(old: Any, new: Any) -> dict[str, Any]:
    """A ``--model``/``--models`` spec's config, with the suite model's runtime settings where the spec is silent
    (same backend only; never its checkpoint, adapters or ``trust_remote_code``)."""
    keep = {} if new.backend != old.backend else old.model_dump(
        exclude={"path", "revision", "adapter", "adapters", "base_url", "model", "trust_remote_code"})
    return {**keep, **new.model_dump(include=new.model_fields_set | {"path", "base_url", "backend"})}


def entry_error_schema(entries: list[Any]) -> type[BaseModel] | None:
    """For error hints ("allowed keys"): a ``models:`` entry's keys — its backend's config plus ``name`` (the
    first entry with a key its backend does not know, else the first entry)."""
    from evalmon.config.models import MODEL_BACKENDS, _backend_tag

    dicts = [e for e in entries if isinstance(e, dict)]
    odd = [e for e in dicts if _backend_tag(e) in MODEL_BACKENDS
           and set(e) - {"name", "pretrained", *MODEL_BACKENDS[_backend_tag(e)].model_fields}]
    tag = _backend_tag((odd or dicts or [{}])[0])
    if tag not in MODEL_BACKENDS:
        return None
    return create_model("ModelsEntry", __base__=MODEL_BACKENDS[tag], name=(str, ...))


def model_entries(cfg: Any) -> list[NamedModel]:
    """The suite's models (``models:``), or ``[]`` for a one-model suite."""
    return list(getattr(cfg, "models", None) or [])


__all__ = ["NamedModel", "check_unique", "entry_error_schema", "inherit_settings", "model_entries",
           "parse_models_flag"]
