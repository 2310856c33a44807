"""The README's monitor commands, run as a new user would before the traffic exists or with a typo: exit 2 and
one ``error:`` line that says what to do — nothing printed first that claims the command started."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_util import assert_user_error, run_cli

from evalmon.core.errors import DataError
from evalmon.monitor.sources import build_source

MONITORS = Path(__file__).resolve().parents[2] / "monitors"


def test_missing_traffic_path_is_normalised_and_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "monitors").mkdir()
    with pytest.raises(DataError) as err:
        build_source({"kind": "jsonl", "path": "../traffic/traffic.jsonl"}, base_dir=tmp_path / "monitors").read()
    line = err.value.one_line()
    assert line.startswith(f"source path does not exist: {tmp_path / 'traffic' / 'traffic.jsonl'} — "), line
    assert "evalmon traffic synth" in line and "source.path" in line and ".." not in line


@pytest.mark.e2e
def test_readme_monitor_commands_before_the_traffic_exists(tmp_path: Path) -> None:
    shutil.copytree(MONITORS, tmp_path / "monitors")
    proc = run_cli(tmp_path, "monitor", "monitors/traffic.yaml")
    assert_user_error(proc, f"source path does not exist: {tmp_path / 'traffic' / 'traffic.jsonl'}",
                      "evalmon traffic synth")
    proc = run_cli(tmp_path, "monitor", "monitors/traffic.yaml", "--schedule", "5 * *")
    assert_user_error(proc, "--schedule '5 * *'", "five crontab fields")  # not after "schedule …; first run now"
