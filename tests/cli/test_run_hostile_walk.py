"""Hostile-input walk (session 10): ``evalmon run --tasks ""`` (an unset ``$TASKS`` in CI) silently ran the
suite's whole task list, while ``--tasks ,,`` was already "no task names given"."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.core.errors import ConfigError


@pytest.mark.e2e  # the run command imports the harness (~1 s)
def test_empty_tasks_flag_is_an_error_not_the_whole_suite(tmp_path: Path) -> None:
    from evalmon.cli.run import run

    (tmp_path / "s.yaml").write_text("name: s\nmodel: {backend: none}\ntasks: [hellaswag]\n")
    with pytest.raises(ConfigError, match="--tasks: no task names given"):
        run(suite=tmp_path / "s.yaml", tasks="")
