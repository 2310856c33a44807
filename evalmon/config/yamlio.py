"""YAML → plain data that remembers where every key came from, and pydantic errors → one-line messages.

Shared by every declarative file (suite, monitor, gate): ``load_yaml`` composes the document once,
rejects duplicate and non-string keys (PyYAML silently keeps the last duplicate), expands
``${VAR}`` / ``${VAR:-default}`` in string scalars, and records the 1-based line of every key and
list item. ``validation_error`` turns a pydantic ``ValidationError`` into a ``ConfigError`` reading
``<file>:<line>: <dotted.key>: <what's wrong> — <what to do>``.

Limits (a config file is small; a hostile or broken one must fail fast, not hang or exhaust memory):

* at most ``EVALMON_MAX_CONFIG_BYTES`` bytes per file (default 1 MiB), checked before parsing;
* at most ``MAX_SCALAR_CHARS`` (64 KiB) characters in one key or value (a description, a prompt);
* aliases may add at most ``MAX_ALIAS_VALUES`` (100,000) values to the document once expanded (a
  "billion laughs" bomb is refused before anything walks the expanded data); an alias inside its own
  anchor is refused too;
* no control characters (C0 except tab/newline/carriage return, DEL, C1 except NEL) or other characters
  YAML forbids; the error gives line and column.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from evalmon.config.union_errors import UNION, member_wants, union_tag
from evalmon.core.errors import ConfigError, did_you_mean

Loc = tuple[str | int, ...]

DEFAULT_MAX_CONFIG_BYTES = 1 << 20
MAX_SCALAR_CHARS = 1 << 16
MAX_ALIAS_VALUES = 100_000
_SIZE_ENV = "EVALMON_MAX_CONFIG_BYTES"

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# $${X} is a literal ${X}; ${X} and ${X:-default} expand.
_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


class _MissingVar(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; ``$${`` stays a literal ``${``."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise _MissingVar(name)

    return _ENV_RE.sub(sub, value)


@dataclass
class YamlDoc:
    """Parsed data plus the line of each key / list item (``key_lines``) and value node (``node_lines``)."""

    data: Any
    source: str
    key_lines: dict[Loc, int] = field(default_factory=dict)
    node_lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc, *, missing: bool = False) -> int:
        """Line of ``loc``; for a missing key, the line of the mapping that should hold it."""
        if missing:
            parent = loc[:-1]
            return self.key_lines.get(parent) or self.node_lines.get(parent) or 1
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.key_lines:
                return self.key_lines[loc[:n]]
        return self.node_lines.get((), 1)

    def where(self, loc: Loc) -> str:
        """``file:line: dotted.key`` prefix for a message about ``loc``."""
        prefix = f"{self.source}:{self.line(loc)}"
        return f"{prefix}: {dotted(loc)}" if loc else prefix

    def error(self, loc: Loc, what: str, hint: str, *, line: int | None = None) -> ConfigError:
        where = f"{self.source}:{line if line is not None else self.line(loc)}"
        return ConfigError(f"{where}: {dotted(loc)}: {what}" if loc else f"{where}: {what}", hint=hint)

    def normalise_loc(self, loc: tuple[Any, ...]) -> Loc:
        """Follow a pydantic ``loc`` through the data, dropping union tags that are not keys."""
        out: list[str | int] = []
        cur: Any = self.data
        for i, part in enumerate(loc):
            in_dict = isinstance(cur, dict) and part in cur
            if in_dict or (isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)):
                cur = cur[part]
            elif i < len(loc) - 1:
                continue  # a tag pydantic inserted (union member, validator name)
            out.append(part)
        return tuple(out)


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, doc: YamlDoc, environ: Mapping[str, str] | None) -> None:
        self.loader, self.doc, self.environ = loader, doc, environ
        self.seen: set[int] = set()

    def walk(self, node: Node, loc: Loc) -> None:
        self.doc.node_lines.setdefault(loc, node.start_mark.line + 1)
        if id(node) in self.seen:  # an alias of a node already walked
            return
        self.seen.add(id(node))
        if isinstance(node, ScalarNode):
            self._expand(node, loc)
            self._check_length(node.value, loc, node.start_mark.line + 1)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.doc.key_lines[(*loc, i)] = item.start_mark.line + 1
                self.walk(item, (*loc, i))
        elif isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    self.walk(value_node, (*loc, "<<"))
                    continue
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                    shown = key_node.value if isinstance(key_node, ScalarNode) else "<complex key>"
                    raise self.doc.error(loc, f"key {shown!r} is not a string",
                                         "quote it, e.g. 'yes': …", line=line)
                key = key_node.value
                self._check_length(key, loc, line, what="key")
                if key in first:
                    raise self.doc.error((*loc, key), f"duplicate key '{key}' (first at line {first[key]})",
                                         "keep only one of them", line=line)
                first[key] = line
                self.doc.key_lines[(*loc, key)] = line
                self.walk(value_node, (*loc, key))

    def _check_length(self, text: str, loc: Loc, line: int, what: str = "value") -> None:
        if len(text) > MAX_SCALAR_CHARS:
            raise self.doc.error(loc, f"a {what} of {len(text)} characters is over the limit of "
                                      f"{MAX_SCALAR_CHARS} characters per {what}",
                                 "shorten it, or keep long text in a file and give its path", line=line)

    def _expand(self, node: ScalarNode, loc: Loc) -> None:
        if node.tag != _STR_TAG or "${" not in node.value:
            return
        try:
            expanded = expand_env(node.value, self.environ)
        except _MissingVar as e:
            raise self.doc.error(loc, f"environment variable '{e.name}' is not set",
                                 f"export {e.name}=… or write ${{{e.name}:-default}}",
                                 line=node.start_mark.line + 1) from None
        if expanded != node.value:
            node.value = expanded
            if node.style is None:  # plain scalar: let `${N:-8}` become an int, `${X:-null}` None
                node.tag = self.loader.resolve(ScalarNode, expanded, (True, False))


def max_config_bytes() -> int:
    """The size limit for one config file: ``$EVALMON_MAX_CONFIG_BYTES`` or 1 MiB."""
    raw = os.environ.get(_SIZE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_CONFIG_BYTES
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{_SIZE_ENV}={raw!r}: expected a positive number of bytes",
                          hint=f"e.g. {_SIZE_ENV}=4000000, or unset it for the 1 MiB default")
    return value


def _too_big(source: str, size: int | None, limit: int) -> ConfigError:
    what = f"is {size} bytes, over" if size is not None else "is larger than"
    return ConfigError(f"{source}: {what} the {limit}-byte limit for a config file",
                       hint=f"is it the right file? shorten it, or raise the limit with {_SIZE_ENV}=<bytes>")


def _check_characters(text: str, source: str) -> None:
    """Refuse what YAML forbids (NUL and other control characters), with line and column."""
    import unicodedata

    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is None:
        return
    pos, ch = bad.start(), bad.group()
    line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    kind = "control character" if unicodedata.category(ch) == "Cc" else "character"
    name = " (NUL)" if ch == "\0" else ""
    raise ConfigError(f"{source}:{line}:{col}: {kind} U+{ord(ch):04X}{name} is not allowed in YAML",
                      hint="delete it (a value that needs one can spell it as an escape such as "
                           "\"\\x00\" in a double-quoted string)")


def _check_aliases(root: Node, source: str, limit: int = MAX_ALIAS_VALUES) -> None:
    """Refuse a document whose aliases expand to more than ``limit`` extra values, or loop.

    PyYAML shares aliased nodes, so composing a "billion laughs" is cheap; whatever walks the data
    afterwards (validation, hashing, logging) sees every copy. The expanded size of each node is
    counted once (memoised), saturating, so this costs one pass over the distinct nodes.
    """
    distinct: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in distinct:
            distinct.add(id(node))
            stack.extend(_children(node))
    cap = len(distinct) + limit + 1
    sizes: dict[int, int] = {}
    where: list[Node] = []  # innermost node whose expansion passed the limit
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to itself (the anchor "
                              "contains its own alias)", hint="YAML anchors must not be recursive; write it out")
        active.add(key)
        total = 1
        for child in _children(node):
            total = min(cap, total + size(child))
        active.discard(key)
        if total > limit and not where:
            where.append(node)
        sizes[key] = total
        return total

    if size(root) - len(distinct) > limit:
        line = where[0].start_mark.line + 1 if where else root.start_mark.line + 1
        raise ConfigError(f"{source}:{line}: YAML aliases here expand to more than {limit} values",
                          hint="an alias bomb? write the values out instead of nesting anchors and aliases (*name)")


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, source: str, *, environ: Mapping[str, str] | None = None) -> YamlDoc:
    """Parse one YAML document; every problem (limits included) is a one-line ``ConfigError`` naming ``source``."""
    limit = max_config_bytes()
    if len(text) > limit // 4 and len(size := text.encode("utf-8", "surrogatepass")) > limit:
        raise _too_big(source, len(size), limit)
    _check_characters(text, source)
    doc = YamlDoc(data=None, source=source)
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return doc
        _check_aliases(node, source)
        _Walker(loader, doc, environ).walk(node, ())
        doc.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(str(e.problem or e.context or "syntax error").split())
        if e.context and e.problem and e.context_mark and e.context_mark is not mark:
            what += f" ({e.context} at line {e.context_mark.line + 1})"
        hint = ("indent with spaces, not tabs" if "\\t" in what or "\t" in what
                else "check indentation, colons and quoting near that line")
        raise ConfigError(f"{where}: invalid YAML: {what}", hint=hint) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(e).split())}", hint="check the file's syntax") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply",
                          hint="flatten the nesting (a config needs a few levels, not hundreds)") from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


# --------------------------------------------------------------------------- pydantic errors


def _unwrap(tp: Any) -> Any:
    """Strip Annotated / Optional / unions down to a model class or a list/dict type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else args[0]
        else:
            return tp


def _field(cls: type[BaseModel], key: str) -> Any:
    for name, info in cls.model_fields.items():
        if key == name or key in _aliases(info):
            return info.annotation
    return None


def _aliases(info: Any) -> list[str]:
    va = info.validation_alias
    if va is None:
        return []
    if isinstance(va, str):
        return [va]
    return [c for c in getattr(va, "choices", []) if isinstance(c, str)]


def keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (field names, then aliases), or [] when not a model."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            if typing.get_origin(tp) not in (list, tuple):
                return []
            tp = typing.get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = _field(tp, part)
        else:
            return []
    tp = _unwrap(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    names = list(tp.model_fields)
    return names + [a for info in tp.model_fields.values() for a in _aliases(info) if a not in names]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(err: Mapping[str, Any], loc: Loc, model: type[BaseModel],
                   hints: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(what's wrong, what to do) for one pydantic error at ``loc``."""
    hints = hints or {}
    key = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    # hints are looked up by the last key, or "<list key>[]" for a list item
    slot = key if not loc or isinstance(loc[-1], str) else f"{key}[]"
    hint = str(ctx["hint"]) if "hint" in ctx else hints.get(slot, "fix the value")
    if kind == UNION:
        return _union_message(err, loc, model, hints)
    if kind == "missing":
        return f"required key '{key}' is missing", hints.get(f"missing:{key}", f"add `{key}: …` here")
    if kind == "extra_forbidden":
        allowed = keys_at(model, loc[:-1])
        dym = did_you_mean(key, allowed)
        return f"unknown key '{key}'{dym}", ("fix the spelling" if dym
                                            else f"remove it; allowed keys: {', '.join(allowed)}")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op, bound = {"greater_than": (">", "gt"), "greater_than_equal": ("≥", "ge"),
                     "less_than": ("<", "lt"), "less_than_equal": ("≤", "le")}[kind]
        return f"must be {op} {ctx.get(bound)}, got {_show(got)}", hint
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {_show(got)}", hint
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {_show(got)}", hint
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_show(got)}", hint
    if kind == "string_type":
        return f"expected a string, got {_show(got)}", "quote the value"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {_show(got)}", hint
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {_show(got)}", hint
    if kind == "too_short":
        return "must not be empty", hint
    if kind == "literal_error":
        dym = did_you_mean(str(got), re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"must be one of {ctx.get('expected')}, got {_show(got)}{dym}", hint
    if kind == "string_pattern_mismatch":
        return f"{_show(got)} is not a valid {key or 'value'}", hint
    msg = str(err.get("msg", kind))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:], hint


def _union_message(err: Mapping[str, Any], loc: Loc, model: type[BaseModel],
                   hints: Mapping[str, str]) -> tuple[str, str]:
    """``expected 'auto' or a mapping, got 5`` for the union members that each rejected the value."""
    wants = member_wants(err["members"])
    if wants is None:  # a member that failed otherwise (a validator): its own words
        return describe_error(err["members"][0], loc, model, hints)
    keys = keys_at(model, loc)
    key = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    hint = hints.get(key) or (f"a mapping takes {', '.join(keys)}" if keys and "a mapping" in wants
                              else "fix the value")
    got = err.get("input")
    dym = did_you_mean(got, re.findall(r"'([^']*)'", " ".join(wants))) if isinstance(got, str) else ""
    return f"expected {' or '.join(wants)}, got {_show(got)}{dym}", hint


def validation_error(exc: ValidationError, doc: YamlDoc, model: type[BaseModel], *,
                     hints: Mapping[str, str] | None = None,
                     loc_fixup: Callable[[Mapping[str, Any], Loc], Loc] | None = None) -> ConfigError:
    """The first (topmost in the file) pydantic error as a one-line ``ConfigError``. A value that fits no member
    of a union (``columns: 5`` for ``Literal["auto"] | DriftColumns``) is one error saying what each member
    takes (``expected 'auto' or a mapping, got 5``), at the key — not pydantic's member tags
    (``columns.literal['auto']``)."""
    found: list[tuple[int, Loc, Mapping[str, Any]]] = []
    members: dict[Loc, list[Mapping[str, Any]]] = {}  # union members that rejected the value at loc
    for err in exc.errors(include_url=False):
        loc = doc.normalise_loc(tuple(err["loc"]))
        if loc_fixup is not None:
            loc = loc_fixup(err, loc)
        if union_tag(doc.data, loc, err):
            members.setdefault(loc[:-1], []).append(err)
            continue
        found.append((doc.line(loc, missing=err["type"] == "missing"), loc, err))
    for loc, errs in members.items():  # a member that took the value's shape failed deeper: that error says more
        if not any(other[:len(loc)] == loc and len(other) > len(loc) for _, other, _ in found):
            found.append((doc.line(loc), loc, {**errs[0], "type": UNION, "members": errs}))
    found.sort(key=lambda t: t[0])
    line, loc, err = found[0]
    what, hint = describe_error(err, loc, model, hints)
    if len(found) > 1:
        more = len(found) - 1
        hint += f" ({more} more problem{'s' if more > 1 else ''} in this file)"
    return doc.error(loc, what, hint, line=line)


def read_config_file(path: str | Path, what: str, *, dir_hint: str = "pass the .yaml file inside it",
                     encode_as: str | None = None) -> tuple[str, Path]:
    """Read a YAML config file (``what``: "suite file", "monitor file"); returns (text, resolved path).

    Every failure is a one-line ``ConfigError`` naming the path and what to do.
    """
    p = Path(path).expanduser()
    limit = max_config_bytes()
    try:
        with p.open("rb") as fh:  # never more than the limit (a huge file, /dev/zero, a pipe)
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise _too_big(str(path), p.stat().st_size if p.is_file() else None, limit)
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # like read_text's newlines
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found", hint=f"check the path (relative to {Path.cwd()})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}", hint=dir_hint) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})",
                          hint=f"save the {encode_as or what} as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}", hint="check the path and its permissions") from None
    return text, p.resolve()


def require_mapping(doc: YamlDoc, source_name: str, what: str, *, empty_hint: str, keys_hint: str) -> dict[str, Any]:
    """The document's top level must be a non-empty mapping (``what``: "suite", "monitor")."""
    if doc.data is None:
        raise ConfigError(f"{source_name}:1: {what} is empty", hint=empty_hint)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"a {type(doc.data).__name__}"
        raise ConfigError(f"{source_name}:{doc.line(())}: top level must be a mapping, got {kind}", hint=keys_hint)
    return doc.data
