"""Test lanes: every collected test gets exactly one of the markers ``unit``, ``e2e`` or ``accuracy``.

- ``unit`` (the default): in-process and fast — ``make test-fast`` runs ``pytest -m unit``.
- ``e2e``: starts processes or servers — the ``evalmon`` CLI (``run_cli``, ``Background``, …), any
  ``subprocess`` (espeak-ng included), the MLflow server fixture, a local HTTP server (model servers, fault
  servers, webhooks), headless Chromium, the real-checkpoint fixtures — or is marked ``slow``.
- ``accuracy``: numbers against a reference — parity with lm-eval (any test whose code imports ``lm_eval``
  or reads its task files) and, marked explicitly, detector PR-AUC on labelled data, official WMT22 scores,
  published numbers.

An explicit lane mark (function, class or module ``pytestmark``) always wins. Otherwise the rule reads the
code a test runs: the test function, the fixtures it requests (transitively, as pytest resolved them) and
the functions and classes those call that are defined in test modules or tests' helper modules (never the
product's). A test whose code names one of ``PROCESS_NAMES`` or requests one of ``PROCESS_FIXTURES`` is
``e2e``; else one whose code imports ``lm_eval`` (or names one of ``LMEVAL_NAMES``) is ``accuracy``; anything
else is ``unit``. A test with two different lane marks is a usage error (the lanes must partition the suite:
``make test`` runs all of them).
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]

LANES = ("unit", "e2e", "accuracy")
# names whose use means "starts a process or a server": cli_util's launchers, subprocess, chromium's entry
# points, a local HTTP/TCP server (fault-injecting model servers, webhooks, a port that never answers)
PROCESS_NAMES = frozenset({
    "run_cli", "Background", "evalmon_cmd", "signal_after_first_cached", "subprocess", "Popen",
    "dump_dom", "screenshot", "find_chromium",
    "HTTPServer", "ThreadingHTTPServer", "serve_forever", "listen",
})
# evalmon.harness.parity's readers of lm-eval's own task files (parity without importing lm_eval)
LMEVAL_NAMES = frozenset({"lmeval_tasks_dir", "export_lmeval_tasks"})
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


def _in_tests(obj: Any) -> bool:
    """Defined in a test module or a tests/ helper module (not in the product or a library)."""
    file = getattr(sys.modules.get(getattr(obj, "__module__", None) or ""), "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(TESTS_DIR)


def _traits(names: set[str]) -> frozenset[str]:
    found = set()
    if names & PROCESS_NAMES:
        found.add("process")
    if names & LMEVAL_NAMES or any(n == "lm_eval" or n.startswith("lm_eval.") for n in names):  # import lm_eval…
        found.add("lm_eval")
    return frozenset(found)


class _Reader:
    """What a function's code does (``process``, ``lm_eval``), following the tests' own functions (cached)."""

    def __init__(self) -> None:
        self._done: dict[Any, frozenset[str]] = {}

    def traits(self, funcs: list[Any]) -> frozenset[str]:
        return frozenset().union(*(self._visit(f, set()) for func in funcs for f in _functions(func)))

    def _visit(self, func: types.FunctionType, seen: set[Any]) -> frozenset[str]:
        if func in self._done:
            return self._done[func]
        if func in seen:
            return frozenset()
        seen.add(func)
        names = {n for code in _code_objects(func.__code__) for n in code.co_names}
        found = set(_traits(names))
        for name in names:
            target = func.__globals__.get(name)
            if target is not None and _in_tests(target):
                for f in _functions(target):
                    found |= self._visit(f, seen)
        self._done[func] = frozenset(found)
        return self._done[func]


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
    traits = reader.traits([f for f in funcs if f is not None and _in_tests(f)])
    return "e2e" if "process" in traits else "accuracy" if "lm_eval" in traits else "unit"


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reader = _Reader()
    for item in items:
        lane = lane_of(item, reader)
        if item.get_closest_marker(lane) is None:
            item.add_marker(lane)
