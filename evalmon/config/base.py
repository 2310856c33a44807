"""``ConfigModel``: the pydantic base of every declarative config section (suite, model, monitor, gate policy).

Pydantic's lax mode turns ``true`` into ``1`` for an ``int`` field and ``1.0`` for a ``float`` one, so
``limit: true`` would silently evaluate one document. A config model rejects a boolean wherever its
field (or the items of a list/dict field) takes a number and not a boolean; everything else (``"8"`` for
an int, ``1`` for a float) validates as before. It is a model-level check on the raw input (a field-level
``mode="before"`` validator would break discriminated unions) that raises pydantic's own ``int_type`` /
``float_type`` errors at the key's (or item's) location, so ``evalmon.config.yamlio`` reports it as
``file:line: key: expected an integer, got true — …`` and every other reader of the errors sees the key.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

_NUMBER = {int: "an integer", float: "a number"}


def _number_kind(tp: Any) -> str | None:
    """"an integer" / "a number" when ``tp`` takes a number but not a bool; else None."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _number_kind(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if bool in args or typing.Any in args:
            return None
        kinds = {_number_kind(a) for a in args} - {None}
        return ("a number" if "a number" in kinds else "an integer") if kinds else None
    return _NUMBER.get(tp) if isinstance(tp, type) else None


def _items(tp: Any, value: Any) -> tuple[Any, list[tuple[Any, Any]]] | None:
    """(item type, [(index or key, item)]) when ``tp`` is a list/tuple/set/dict type and ``value`` one."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return None
        tp = args[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not args or not isinstance(origin, type):
        return None
    if issubclass(origin, Mapping) and isinstance(value, dict) and len(args) == 2:
        return args[1], list(value.items())
    if issubclass(origin, (list, set, frozenset, Sequence)) and isinstance(value, list) and not issubclass(origin, str):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return None
        return args[0], list(enumerate(value))
    return None


def bool_errors(tp: Any, value: Any, key: str) -> list[InitErrorDetails]:
    """Errors for booleans where ``tp`` (the type of field ``key``) means a number: the value, or items."""
    if isinstance(value, bool):
        return _error(_number_kind(tp), (key,), value)
    inner = _items(tp, value)
    if inner is None:
        return []
    kind = _number_kind(inner[0])
    return [e for k, item in inner[1] if isinstance(item, bool) for e in _error(kind, (key, k), item)]


def _error(kind: str | None, loc: tuple[Any, ...], value: bool) -> list[InitErrorDetails]:
    if kind is None:
        return []
    err = PydanticCustomError("int_type" if kind == "an integer" else "float_type",
                              f"expected {kind}, got {str(value).lower()}")
    return [InitErrorDetails(type=err, loc=loc, input=value)]


class ConfigModel(BaseModel):
    """Base of config sections: a boolean never passes for a number (see the module doc)."""

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        errors = [e for name, field in cls.model_fields.items() for key in _input_names(name, field) if key in data
                  for e in bool_errors(field.annotation, data[key], key)]
        if errors:  # a ValidationError raised here keeps each error's own location (key, item)
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


@dataclass(frozen=True)
class FirstError:
    """The first error of a pydantic ``ValidationError``, for configs that do not come from a YAML file
    (flags, task options, plugin sections, results files); YAML files use ``yamlio.validation_error``."""

    loc: tuple[Any, ...]
    msg: str
    type: str
    hint: str | None  # the error's own hint (``ctx["hint"]`` of a ``PydanticCustomError``), if any

    @property
    def where(self) -> str:
        """The location dotted: ``judge.max_tokens``, ``rules.0.metric``; ``""`` for the whole value."""
        return ".".join(str(p) for p in self.loc)


def first_error(exc: ValidationError) -> FirstError:
    err = exc.errors(include_url=False)[0]
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")  # pydantic's, not ours
    return FirstError(tuple(err["loc"]), msg, err["type"], (err.get("ctx") or {}).get("hint"))


class StrictConfig(ConfigModel):
    """A config section as users write it: an unknown key is an error, the validated value is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _input_names(name: str, field: FieldInfo) -> list[str]:
    names = [name]
    for alias in (field.alias, field.validation_alias):
        if isinstance(alias, str):
            names.append(alias)
        elif alias is not None:
            names += [c for c in getattr(alias, "choices", []) if isinstance(c, str)]
    return list(dict.fromkeys(names))


MAX_SEED = 2**32 - 1  # numpy's RandomState / default_rng take 0..2**32-1


def _seed_in_range(v: int) -> int:
    if not 0 <= v <= MAX_SEED:
        raise PydanticCustomError("seed", "{value} is outside numpy's seed range 0..4294967295",
                                  {"value": v, "hint": "use an integer from 0 to 4294967295"})
    return v


Seed = typing.Annotated[int, AfterValidator(_seed_in_range)]  # a seed that numpy accepts (refused at load)
