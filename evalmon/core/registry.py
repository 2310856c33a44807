"""The one registry: tasks, backends, monitor signals, sources and corpus metrics found by name.

Everything registers the same way, built-ins included: a Python **entry point** in a distribution's
``pyproject.toml`` points at a module, and importing that module registers its names with the decorator::

    # pyproject.toml of evalmon itself, or of any third-party package
    [project.entry-points."evalmon.tasks"]
    my_tasks = "my_pkg.tasks"            # a module: importing it runs the @register decorators below

    # my_pkg/tasks.py
    from evalmon.core import registry

    @registry.tasks.register("my_task", family="custom")
    def build(options): ...

An entry point may also name an object (``my_task = "my_pkg.tasks:build"``): the object is registered under
the entry point's name (without metadata) unless importing its module already registered it.

Entry points are read lazily, on the first ``get``/``names``/``in`` of a registry, so ``evalmon --help`` pays
nothing. A plugin that fails to import, or a name registered twice by different code, is a one-line
``PluginError`` naming the distribution and entry point; an unknown name is an ``UnknownNameError`` (a
``ConfigError``) with "did you mean" suggestions and the command that lists the names.
This module imports nothing heavy (stdlib + ``core.errors``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from evalmon.core.errors import ConfigError, UnknownNameError, did_you_mean

T = TypeVar("T")
_Obj = TypeVar("_Obj")

__all__ = ["PluginError", "Registry", "backends", "metrics", "signals", "sources", "task_groups", "tasks"]


class PluginError(ConfigError):
    """A plugin (entry point) cannot be loaded, or two pieces of code register the same name."""


def _source_of(obj: object) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


def _same_definition(a: object, b: object) -> bool:
    """The same object, the same function/class executed again (a module re-imported), or equal values."""
    if a is b:
        return True
    if hasattr(a, "__qualname__") and hasattr(b, "__qualname__"):
        return _source_of(a) == _source_of(b) and "<lambda>" not in _source_of(a)
    try:
        return bool(a == b)
    except Exception:
        return False


def _caller_module() -> str:
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    return f"module {frame.f_globals.get('__name__', '?')}" if frame is not None else "an unknown module"


class Registry(Generic[T]):
    """Names → objects of one kind, filled by decorators and by the entry-point group ``group``.

    ``kind`` words the messages ("unknown task 'x'"); ``list_command`` is the command that lists the names
    (else the message lists them); ``load_with`` shares another registry's entry-point loading (task groups
    are registered by the same modules as tasks); ``require_builtin`` checks that evalmon's own entry points
    are installed (a stale editable install otherwise looks like "no tasks at all").
    """

    def __init__(self, kind: str, group: str, *, list_command: str | None = None,
                 load_with: Registry[Any] | None = None, require_builtin: bool = False) -> None:
        self.kind = kind
        self.group = group
        self.list_command = list_command
        self._load_with = load_with
        self._require_builtin = require_builtin
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}
        self._origin: dict[str, str] = {}
        self._loaded = False
        self._loading: str | None = None  # "distribution entry point" while an entry point is being loaded
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registering
    def register(self, name: str, *, aliases: tuple[str, ...] | list[str] = (),
                 **meta: Any) -> Callable[[_Obj], _Obj]:
        """Decorator: ``@registry.tasks.register("name", family=...)`` registers the decorated object."""

        def decorate(obj: _Obj) -> _Obj:
            self.add(name, obj, aliases=aliases, **meta)  # type: ignore[arg-type]
            return obj

        return decorate

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] | list[str] = (), **meta: Any) -> T:
        """Register ``obj`` under ``name`` (and ``aliases``); the same definition twice is a no-op."""
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"{self.kind} names must be non-empty strings, got {name!r}",
                              hint=f"registered by {_caller_module()}")
        with self._lock:
            loader = self._load_with or self
            origin = loader._loading or _caller_module()
            for key in (name, *aliases):
                self._check_free(key, name, obj, origin)
            self._items[name] = obj
            self._meta[name] = dict(meta)
            self._origin[name] = origin
            for alias in aliases:
                self._aliases[alias] = name
        return obj

    def remove(self, name: str) -> None:
        """Forget ``name`` and its aliases (tests and interactive sessions; entry points are not re-read)."""
        with self._lock:
            key = self._aliases.get(name, name)
            for table in (self._items, self._meta, self._origin):
                table.pop(key, None)
            self._aliases = {a: n for a, n in self._aliases.items() if n != key}

    def _check_free(self, key: str, name: str, obj: T, origin: str) -> None:
        owner = self._aliases.get(key, key)
        if owner not in self._items:
            return
        if owner == name and _same_definition(self._items[owner], obj):
            return
        raise PluginError(f"{self.kind} {key!r} is registered twice: by {self._origin[owner]} "
                          f"and by {origin}", hint="rename one of them (names are global across installed plugins)")

    # ------------------------------------------------------------------ looking up
    def get(self, name: str, *, where: str | None = None) -> T:
        """The object registered as ``name`` (or an alias); ``where`` prefixes the error ("suite.yaml: tasks")."""
        self._ensure_loaded()
        key = self._aliases.get(name, name)
        if key in self._items:
            return self._items[key]
        raise UnknownNameError(self.unknown_message(name, where=where), hint=self._listing_hint())

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases (unknown → ``UnknownNameError``)."""
        self.get(name)
        return self._aliases.get(name, name)

    def meta(self, name: str) -> dict[str, Any]:
        """A copy of the metadata given at registration (``{}`` when none)."""
        self.get(name)
        return dict(self._meta[self._aliases.get(name, name)])

    def names(self) -> list[str]:
        """Registered names, sorted (aliases excluded)."""
        self._ensure_loaded()
        return sorted(self._items)

    def aliases(self) -> list[str]:
        """Registered aliases, sorted."""
        self._ensure_loaded()
        return sorted(self._aliases)

    def items(self) -> list[tuple[str, T]]:
        self._ensure_loaded()
        return sorted(self._items.items())

    def origin(self, name: str) -> str:
        """Where ``name`` came from: "<distribution> entry point <name>" or the defining object's path."""
        self.get(name)
        return self._origin[self._aliases.get(name, name)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and self._aliases.get(name, name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.group!r}, {len(self._items)} registered)"

    def unknown_message(self, name: str, *, where: str | None = None) -> str:
        prefix = f"{where}: " if where else ""
        return f"{prefix}unknown {self.kind} {name!r}{did_you_mean(name, self._all_keys())}"

    def _all_keys(self) -> list[str]:
        return sorted(set(self._items) | set(self._aliases))

    def _listing_hint(self) -> str:
        if self.list_command:
            return f"run `{self.list_command}` to list them"
        return f"known: {', '.join(self.names()) or 'none'}"

    # ------------------------------------------------------------------ entry points
    def _ensure_loaded(self) -> None:
        if self._load_with is not None:
            self._load_with._ensure_loaded()
            return
        if self._loaded:
            return
        with self._lock:  # other threads wait here until loading is done
            if self._loaded or self._loading is not None:
                return  # loaded, or a plugin module of this thread looks names up while being imported
            points = list(metadata.entry_points(group=self.group))
            if self._require_builtin and not any(_dist_name(ep) == "evalmon" for ep in points):
                raise PluginError(f"evalmon's own entry points for {self.group!r} are not installed "
                                  "(stale install)", hint="reinstall evalmon: pip install -e .")
            try:
                for ep in points:
                    self._load_one(ep)
            finally:
                self._loading = None
            self._loaded = True

    def _load_one(self, ep: metadata.EntryPoint) -> None:
        dist = _dist_name(ep) or "an unknown distribution"
        self._loading = f"distribution {dist!r} entry point {ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
        except PluginError:
            raise  # a name registered twice while importing: already one line naming both origins
        except Exception as exc:  # any import failure of a plugin becomes one line
            detail = " ".join(str(exc).split()) or "no message"
            raise PluginError(
                f"cannot load {self.kind} plugin: distribution {dist!r}, entry point {ep.name!r} = "
                f"{ep.value!r} (group {self.group}): {type(exc).__name__}: {detail}",
                hint=f"fix or uninstall {dist}") from exc
        if not isinstance(obj, ModuleType) and not (ep.name in self._items and self._items[ep.name] is obj):
            self.add(ep.name, obj)


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else None


tasks: Registry[Any] = Registry("task", "evalmon.tasks", list_command="evalmon tasks", require_builtin=True)
"""Task factories ``(TaskOptions) -> Task``; meta: family, local_source, hub_source, default_fewshot."""
task_groups: Registry[Any] = Registry("task group", "evalmon.tasks", list_command="evalmon tasks",
                                     load_with=tasks)
"""Task groups: members (names of tasks or groups); meta: metrics, description. Same modules as the tasks."""
backends: Registry[Any] = Registry("backend", "evalmon.backends", require_builtin=True)
"""Model backends; meta ``config`` = the pydantic model-config class for ``model.backend: <name>``."""
signals: Registry[Any] = Registry("signal", "evalmon.signals", require_builtin=True)
"""Monitor signals (per-record columns)."""
sources: Registry[Any] = Registry("source", "evalmon.sources", require_builtin=True)
"""Monitor traffic sources."""
metrics: Registry[Any] = Registry("metric", "evalmon.metrics", require_builtin=True)
"""Corpus-level metrics (BLEU, chrF, WER, …)."""
