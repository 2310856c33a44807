"""``lm_eval_include_path:`` only means something with ``lm_eval:`` tasks: without one it is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalmon.config.suite import load_suite, load_suite_text

SUITE = {"name": "s", "model": {"backend": "hf", "path": "./ckpt"}, "tracking": {"enabled": False}}


def test_include_path_without_an_lm_eval_task_is_rejected_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("name: s\nmodel: {backend: hf, path: ./ckpt}\ntasks: [hellaswag]\n"
                    "lm_eval_include_path: [my-tasks]\n", encoding="utf-8")
    with pytest.raises(Exception) as info:
        load_suite(path)
    err = info.value
    assert getattr(err, "exit_code", None) == 2, repr(err)
    line = err.one_line()  # type: ignore[attr-defined]
    assert line.startswith(f"{path}:4: lm_eval_include_path: is set but no task is an lm-eval task"), line
    assert "{lm_eval: <task name>}" in line and "delete lm_eval_include_path" in line and "\n" not in line


def test_include_path_with_an_lm_eval_task_and_suites_without_it_still_load(tmp_path: Path) -> None:
    cfg = load_suite_text(yaml.safe_dump({**SUITE, "lm_eval_include_path": "my-tasks",
                                          "tasks": ["hellaswag", {"lm_eval": "arc_easy"}]}), "s.yaml",
                          base_dir=tmp_path)
    assert cfg.lm_eval_include_path == [tmp_path / "my-tasks"]
    assert load_suite_text(yaml.safe_dump({**SUITE, "tasks": ["hellaswag"]}), "s.yaml").lm_eval_include_path is None
