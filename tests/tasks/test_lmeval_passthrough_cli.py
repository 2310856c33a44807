"""``evalmon run --include-path DIR`` with an ``lm_eval:<name>`` suite entry, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_util import (
    assert_user_error,
    load_results,
    load_samples,
    only_run_dir,
    run_cli,
    show,
    suite_dict,
    write_suite,
)

from evalmon.harness.parity import export_lmeval_tasks

pytestmark = pytest.mark.e2e


def test_run_include_path_lmeval_task(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    names = export_lmeval_tasks(["hellaswag"], benchmarks_dir, tmp_path / "lmeval-tasks", 3)
    task = "lm_eval:" + names["hellaswag"]
    write_suite(tmp_path / "suite.yaml", suite_dict(
        tiny_checkpoint, benchmarks_dir, tasks=[{"lm_eval": names["hellaswag"]}], limit=3,
        output_dir=str(tmp_path / "reports")))
    proc = run_cli(tmp_path, "run", "suite.yaml", "--include-path", "lmeval-tasks", "--no-tracking")
    assert proc.returncode == 0, show(proc)
    run_dir = only_run_dir(tmp_path / "reports")
    result = load_results(run_dir)["tasks"][task]
    assert result["n"] == 3 and set(result["metrics"]) == {"acc", "acc_norm"}
    assert result["lm_eval_task"] == names["hellaswag"] and result["config"]["lm_eval_version"] == "0.4.13"
    assert sorted(s["doc_id"] for s in load_samples(run_dir) if s["task"] == task) == ["0", "1", "2"]
    assert task in proc.stdout  # the results table

    proc = run_cli(tmp_path, "run", "suite.yaml", "--include-path", "no-such-dir", "--no-tracking")
    assert_user_error(proc, "no-such-dir", "is not a directory")
