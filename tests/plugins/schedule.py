"""Heavy test files first, so that two pytest-xdist workers (``make test``: ``-n 2 --dist loadfile``) finish together.

xdist hands whole files to the workers in collection order; a file of minute-long tests taken last keeps one worker
busy while the other idles. Files are ordered by their heaviest test — real checkpoints, then the ``accuracy`` lane,
then ``e2e``, then ``unit`` — and within a rank by how many tests of that rank they hold (most first; ties keep
collection order). Runs after the lanes are assigned (``plugins/lanes.py``); only the order of whole files changes
(a file's tests keep theirs), never what runs. Only in xdist workers (where the collection the controller
schedules is made): a serial run keeps collection order.
"""

from __future__ import annotations

import pytest
from plugins.lanes import PROCESS_FIXTURES

_RANK = {"accuracy": 1, "e2e": 2, "unit": 3}


def _rank(item: pytest.Item) -> int:
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is not None and PROCESS_FIXTURES & set(fixtureinfo.names_closure):
        return 0
    return min((r for lane, r in _RANK.items() if item.get_closest_marker(lane) is not None), default=3)


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not a pytest-xdist worker (their config.option.dist reads "no")
        return
    ranks: dict[str, list[int]] = {}
    for item in items:
        ranks.setdefault(_file(item), []).append(_rank(item))
    key = {file: (min(r), -r.count(min(r))) for file, r in ranks.items()}
    items.sort(key=lambda item: key[_file(item)])  # stable: ties keep collection order
