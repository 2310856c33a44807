"""The public Python API (evalmon.api, re-exported as evalmon.<name>) drives a suite and a gate end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import evalmon


def test_import_is_light() -> None:
    """``import evalmon`` (and naming the API) must not pull torch, transformers, mlflow or pandas."""
    code = ("import sys, evalmon; evalmon.run_suite; evalmon.gate; evalmon.LLRequest; "
            "print(sorted(m for m in ('torch','transformers','mlflow','pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_suit'"):
        evalmon.run_suit  # noqa: B018


def test_run_suite_and_gate_through_the_api(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    """Two runs of one suite (file path in, RunResult out), then compare and gate them by run directory."""
    suite = tmp_path / "s.yaml"
    suite.write_text(f"""
name: api_check
output_dir: {tmp_path / "reports"}
model: {{backend: hf, path: {tiny_checkpoint}, batch_size: 4}}
data: {{data_dir: {benchmarks_dir}}}
tasks:
  - {{name: hellaswag, limit: 6}}
tracking: {{enabled: false}}
cache: {{path: {tmp_path / "cache.sqlite"}}}
""")
    cfg = evalmon.load_suite(suite)
    assert cfg.name == "api_check"
    first = evalmon.run_suite(suite)
    second = evalmon.run_suite(cfg, limit=6)
    assert first.status == second.status == "finished"
    a, b = (str(tmp_path / "reports" / r.run_id) for r in (first, second))
    assert first.tasks["hellaswag"].metrics["acc"].value == second.tasks["hellaswag"].metrics["acc"].value
    comparison = evalmon.compare(a, b)
    assert {m.metric for m in comparison.metrics} >= {"acc", "acc_norm"}
    verdict = evalmon.gate(a, b)
    assert verdict.exit_code == 0, verdict
