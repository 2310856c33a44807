"""The test lanes (tests/plugins/lanes.py): every test gets exactly one of unit / e2e / accuracy, by rule or mark.

Checked on a throwaway test tree collected in-process (pytester), so the rule is tested on code it has never
seen: a helper module that starts a process, a fixture that starts a server, an lm-eval import, explicit marks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PLUGIN = Path(__file__).resolve().parent / "plugins" / "lanes.py"

HELPER = '''
import subprocess

def launch():
    return subprocess.run(["true"], check=False)

def plain():
    return 1
'''

TESTS = '''
import pytest
from helper_util import launch, plain


def _indirect():
    return launch()


class Server:
    def start(self):
        from http.server import ThreadingHTTPServer
        return ThreadingHTTPServer


@pytest.fixture
def server():
    return Server()


@pytest.fixture
def uses_server(server):
    return server.start()


def test_plain():
    assert plain() == 1

def test_calls_a_launcher_of_a_helper_module():
    _indirect()

def test_fixture_chain_starts_a_server(uses_server):
    pass

def test_imports_lm_eval():
    import lm_eval.api  # noqa: F401

def test_needs_a_real_checkpoint(smollm2_checkpoint):
    pass

@pytest.mark.accuracy
def test_marked_accuracy():
    pass

@pytest.mark.unit
def test_marked_unit_wins_over_the_rule():
    launch()

@pytest.mark.slow
def test_slow_is_e2e():
    pass
'''

CONFTEST = '''
import pytest

pytest_plugins = ["lanes"]

@pytest.fixture
def smollm2_checkpoint():
    return None
'''

INI = '''[pytest]
markers =
    unit: u
    e2e: e
    accuracy: a
    slow: s
'''


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(PLUGIN, pytester.path / "lanes.py")
    pytester.makepyfile(helper_util=HELPER, test_sample=TESTS, conftest=CONFTEST)
    pytester.makeini(INI)
    pytester.syspathinsert()
    return pytester


def _selected(pytester: pytest.Pytester, lane: str) -> set[str]:
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-m", lane, "-p", "no:cacheprovider")
    return {line.split("::")[1] for line in result.outlines if "::" in line}


def test_every_test_lands_in_exactly_one_lane(tree: pytest.Pytester) -> None:
    lanes = {lane: _selected(tree, lane) for lane in ("unit", "e2e", "accuracy")}
    assert lanes["unit"] == {"test_plain", "test_marked_unit_wins_over_the_rule"}
    assert lanes["e2e"] == {"test_calls_a_launcher_of_a_helper_module", "test_fixture_chain_starts_a_server",
                            "test_needs_a_real_checkpoint", "test_slow_is_e2e"}
    assert lanes["accuracy"] == {"test_imports_lm_eval", "test_marked_accuracy"}
    assert _selected(tree, "not unit and not e2e and not accuracy") == set()


def test_two_lane_marks_on_one_test_are_a_usage_error(tree: pytest.Pytester) -> None:
    tree.makepyfile(test_both='''
import pytest

pytestmark = pytest.mark.unit

@pytest.mark.e2e
def test_both():
    pass
''')
    result = tree.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider", "test_both.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_both.py::test_both: marked e2e and unit" in result.stderr.str()
