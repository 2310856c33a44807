"""Test lanes: every collected test gets exactly one of the markers ``unit``, ``e2e`` or ``accuracy``.

- ``unit`` (the default): in-process and fast — ``make test-fast`` runs ``pytest -m unit``.
- ``e2e``: starts processes or servers — the ``evalmon`` CLI (``run_cli``, ``Background``, …), any
  ``subprocess``, the MLflow server fixture, headless Chromium, the real-checkpoint fixtures — or is marked
  ``slow``.
- ``accuracy``: numbers against a reference (detector PR-AUC on labelled data, parity with lm-eval,
  real-checkpoint numbers). Only an explicit mark puts a test here.

An explicit lane mark (function, class or module ``pytestmark``) always wins. Otherwise the rule reads the
code a test runs: the test function, the fixtures it requests (transitively, as pytest resolved them) and,
within their own modules, the functions and classes those call. A test whose code names one of
``PROCESS_NAMES`` or requests one of ``PROCESS_FIXTURES`` is ``e2e``; anything else is ``unit``. A test with two
different lane marks is a usage error (the lanes must partition the suite: ``make test`` = all of them).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from typing import Any

import pytest

LANES = ("unit", "e2e", "accuracy")
# names whose use means "starts a process": cli_util's launchers, subprocess, chromium's entry points
PROCESS_NAMES = frozenset({
    "run_cli", "Background", "evalmon_cmd", "signal_after_first_cached", "subprocess", "Popen",
    "dump_dom", "screenshot", "find_chromium",
})
# fixtures that fetch/convert real checkpoints (minutes on a cold cache): never in the fast lane
PROCESS_FIXTURES = frozenset({"smollm2_checkpoint", "gemma3_checkpoint", "smollm2_gguf"})


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _functions(obj: Any) -> Iterator[types.FunctionType]:
    """The plain functions behind ``obj``: itself, or a class's methods (properties, static/class methods)."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, types.FunctionType):
        yield obj
    elif isinstance(obj, type):
        for member in vars(obj).values():
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                yield from (f for f in (member.fget, member.fset) if isinstance(f, types.FunctionType))
            elif isinstance(member, types.FunctionType):
                yield member


class _Reader:
    """Which names a function uses, following the functions and classes of its own module (cached)."""

    def __init__(self) -> None:
        self._starts: dict[Any, bool] = {}

    def starts_process(self, func: Any) -> bool:
        return any(self._visit(f, set()) for f in _functions(func))

    def _visit(self, func: types.FunctionType, seen: set[Any]) -> bool:
        if func in self._starts:
            return self._starts[func]
        if func in seen:
            return False
        seen.add(func)
        names = {n for code in _code_objects(func.__code__) for n in code.co_names}
        found = bool(names & PROCESS_NAMES)
        if not found:
            module = func.__module__
            for name in names:
                target = func.__globals__.get(name)
                if getattr(target, "__module__", None) != module:
                    continue  # helpers of other modules (the product, tests/*_util.py) are judged by name only
                if any(self._visit(f, seen) for f in _functions(target)):
                    found = True
                    break
        self._starts[func] = found
        return found


def lane_of(item: pytest.Item, reader: _Reader) -> str:
    marked = {m.name for m in item.iter_markers() if m.name in LANES}
    if len(marked) > 1:
        raise pytest.UsageError(f"{item.nodeid}: marked {' and '.join(sorted(marked))} — a test belongs to one "
                                "lane (unit, e2e or accuracy): keep the one that fits and remove the others")
    if marked:
        return marked.pop()
    if item.get_closest_marker("slow") is not None:
        return "e2e"
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is None:  # not a python test function (e.g. a doctest): in-process
        return "unit"
    if PROCESS_FIXTURES & set(fixtureinfo.names_closure):
        return "e2e"
    funcs = [getattr(item, "function", None)]
    funcs += [defs[-1].func for defs in fixtureinfo.name2fixturedefs.values() if defs]
    return "e2e" if any(f is not None and reader.starts_process(f) for f in funcs) else "unit"


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reader = _Reader()
    for item in items:
        lane = lane_of(item, reader)
        if item.get_closest_marker(lane) is None:
            item.add_marker(lane)
