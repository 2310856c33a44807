"""``signals:`` of a monitor YAML: each entry validated by the config class its signal registered.

A signal registers its builder in ``evalmon.core.registry.signals`` with its pydantic config class as
metadata ``config`` (a ``BaseSignalConfig`` subclass with a ``name: Literal[...]`` field): evalmon's
built-ins in ``evalmon.monitor.signals``, a plugin in its own package (entry points ``evalmon.signals``).
The class is looked up when an entry is validated, so the config layer never imports the monitor — the
same way ``evalmon.config.models`` validates ``model:`` through ``registry.backends``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from evalmon.config.base import ConfigModel, first_error
from evalmon.config.yamlio import _show, describe_error
from evalmon.core import registry
from evalmon.core.errors import ConfigError, UnknownNameError, did_you_mean


class BaseSignalConfig(ConfigModel, BaseModel):  # BaseModel named for linters (mutable defaults)
    """What every signal's config subclasses (adding ``name: Literal[...]`` and its options)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


def _validate_signal_config(value: Any, info: ValidationInfo) -> Any:
    """One ``signals:`` entry → the config class its ``name`` registered in ``registry.signals``."""
    if isinstance(value, BaseModel):
        return value
    name = value.get("name") if isinstance(value, Mapping) else value
    if not isinstance(name, str) or name not in registry.signals:
        raise PydanticCustomError("unknown_signal", "unknown signal {got}", {"got": repr(name)})
    cls: type[BaseModel] = registry.signals.meta(name)["config"]
    return cls.model_validate(value, context=info.context)


def relative_to_yaml(value: str | None, info: ValidationInfo, *, only_if_there: bool = False) -> str | None:
    """A signal's file/folder option relative to the monitor YAML's folder (``base_dir`` in the validation
    context), as the monitor's own paths are — not to wherever cron started the process. ``builtin:…`` and
    absolute paths stay; ``only_if_there``: a value that may be a hub id ("org/model") is resolved only when
    it exists next to the YAML."""
    from evalmon.config.models import _base_dir, resolve_path

    base = _base_dir(info)
    if not value or base is None or value.startswith("builtin:"):
        return value
    path = resolve_path(value, base)
    return str(path) if not only_if_there or path.exists() else value


# A signal entry validated by the config class registered for its ``name`` (plugins included).
SignalConfig = Annotated[Any, PlainValidator(_validate_signal_config)]


def parse_signal_configs(items: Sequence[str | Mapping[str, Any] | BaseModel], *,
                         option: str | None = None) -> list[Any]:
    """YAML list (names or mappings) → validated configs; errors are ConfigErrors naming the item:
    ``signals[1]`` / ``signals.1.key`` — or, for a list the user typed as a command-line ``option`` (e.g.
    ``--signals``), that option and the signal's name (``--signals 'pii': entities: …``), not a list index the
    user never wrote."""
    raw: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, BaseModel):
            raw.append(item)
            continue
        at = option or f"signals[{i}]"
        if not isinstance(item, str | Mapping):
            raise ConfigError(f"{at}: expected a signal name or a mapping, got {_show(item)}",
                              hint="write a name such as `text`, or a mapping such as {name: pii, nlp: none}")
        data = {"name": item} if isinstance(item, str) else dict(item)
        name = data.get("name")
        if name is None and len(data) == 1 and (key := next(iter(data))) in registry.signals:
            opts = data[key] if isinstance(data[key], Mapping) else {}
            shown = ", ".join(f"{k}: {_show(v)}" for k, v in opts.items())
            raise ConfigError(f"{at}: {{{key}: …}} names the signal as a key",
                              hint=f"write {{name: {key}{', ' + shown if shown else ''}}}")
        if not isinstance(name, str) or name not in registry.signals:
            known = [*registry.signals.names(), *registry.signals.aliases()]
            raise UnknownNameError(f"{at}: unknown signal {name!r}{did_you_mean(str(name), known)}",
                                   hint=f"signals: {', '.join(sorted(known))}")
        raw.append(data)
    out: list[Any] = []
    for i, r in enumerate(raw):
        data = r.model_dump() if isinstance(r, BaseModel) else r
        try:
            cls = registry.signals.meta(data["name"])["config"]
            out.append(cls.model_validate(data))
        except ValidationError as e:
            err = first_error(e)
            # pydantic's own errors as every YAML key says them ("expected a number, got 'high'", not "Input
            # should be a valid number, unable to parse string as a number"); our validators' words stay as written
            own = err.hint is not None or err.type in ("value_error", "assertion_error")
            msg = err.msg if own else describe_error(e.errors(include_url=False)[0], err.loc, cls)[0]
            if option is None:
                where = f"signals.{'.'.join(str(p) for p in (i, *err.loc))}"
            else:  # --signals 'pii': entities: … (the key inside the signal's options, when there is one)
                where = f"{option} {data['name']!r}" + (f": {err.where}" if err.loc else "")
            raise ConfigError(f"{where}: {msg}", hint=err.hint) from None
    return out
