"""The file order for the xdist workers (tests/plugins/schedule.py): heavy files first, whole files, ties stable."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from plugins.schedule import pytest_collection_modifyitems


class _Item:
    def __init__(self, nodeid: str, lane: str, fixtures: tuple[str, ...] = ()) -> None:
        self.nodeid, self._lane = nodeid, lane
        self._fixtureinfo = SimpleNamespace(names_closure=list(fixtures))

    def get_closest_marker(self, name: str) -> Any:
        return object() if name == self._lane else None


def _items() -> list[Any]:
    return [
        _Item("tests/a.py::t1", "unit"), _Item("tests/b.py::t1", "e2e"), _Item("tests/a.py::t2", "unit"),
        _Item("tests/c.py::t1", "accuracy"), _Item("tests/c.py::t2", "unit"),
        _Item("tests/d.py::t1", "unit"), _Item("tests/d.py::t2", "e2e", ("smollm2_checkpoint",)),
        _Item("tests/e.py::t1", "e2e"), _Item("tests/e.py::t2", "e2e"), _Item("tests/f.py::t1", "unit"),
    ]


def _config(worker: bool) -> Any:
    return SimpleNamespace(workerinput={"workerid": "gw0"}) if worker else SimpleNamespace()


def test_real_checkpoints_then_accuracy_then_e2e_then_unit_files_keep_their_tests_together() -> None:
    items = _items()
    pytest_collection_modifyitems(_config(worker=True), items)
    assert [i.nodeid for i in items] == [
        "tests/d.py::t1", "tests/d.py::t2",  # a test on a real checkpoint: first, with the rest of its file
        "tests/c.py::t1", "tests/c.py::t2",  # accuracy
        "tests/e.py::t1", "tests/e.py::t2", "tests/b.py::t1",  # e2e: more e2e tests first
        "tests/a.py::t1", "tests/a.py::t2", "tests/f.py::t1",  # unit: more tests first, then collection order
    ]


def test_a_serial_run_keeps_collection_order() -> None:
    items = _items()
    pytest_collection_modifyitems(_config(worker=False), items)
    assert [i.nodeid for i in items] == [i.nodeid for i in _items()]
