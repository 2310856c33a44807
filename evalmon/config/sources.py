"""``source:`` of a monitor YAML: validated by the config class its ``kind`` registered.

A source kind registers its builder in ``evalmon.core.registry.sources`` with its pydantic config class as
metadata ``config`` (a ``kind: Literal[...]`` field): evalmon's built-ins (jsonl, csv, parquet, sql,
mlflow_traces) in ``evalmon.monitor.sources``, a plugin in its own package (entry points
``evalmon.sources``). The class is looked up when ``source:`` is validated, so the config layer never
imports the monitor; a missing or unknown ``kind`` is an error at ``source.kind`` with "did you mean".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, PlainValidator, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel, first_error
from evalmon.core import registry
from evalmon.core.errors import ConfigError, did_you_mean


class _UnknownSource(ConfigModel):
    """Where a missing or unknown ``kind`` lands: the error points at ``kind`` and names the kinds."""

    model_config = ConfigDict(extra="allow")
    kind: str

    @field_validator("kind", mode="before")
    @classmethod
    def _unknown(cls, v: Any) -> Any:
        kinds = registry.sources.names()
        raise PydanticCustomError("unknown_source", "unknown source kind '{got}'{dym}", {
            "got": v, "dym": did_you_mean(str(v), kinds), "hint": f"kinds: {', '.join(kinds)}"})


def _config_class(data: Any) -> type[ConfigModel]:
    kind = data.get("kind") if isinstance(data, dict) else getattr(data, "kind", None)
    if isinstance(kind, str) and kind in registry.sources:
        cls: type[ConfigModel] = registry.sources.meta(kind)["config"]
        return cls
    return _UnknownSource


def _validate_source_config(value: Any, info: ValidationInfo) -> Any:
    """``source:`` → the config class its ``kind`` registered (``evalmon.core.registry.sources``)."""
    cls = _config_class(value)
    return value if isinstance(value, cls) else cls.model_validate(value, context=info.context)


# A source config of whichever registered ``kind`` (plugins included), validated with that kind's class.
SourceConfig = Annotated[Any, PlainValidator(_validate_source_config)]


def parse_source_config(data: Any) -> Any:
    """A dict → the matching ``*SourceConfig``; errors become one-line ``ConfigError`` s."""
    try:
        return _config_class(data).model_validate(data)
    except ValidationError as exc:
        err = first_error(exc)
        kinds = f"kind is one of {', '.join(registry.sources.names())}" if err.where in ("", "kind") else None
        hint = err.hint or kinds
        raise ConfigError(f"source{'.' + err.where if err.where else ''}: {err.msg}",
                          hint=str(hint) if hint else None) from exc
