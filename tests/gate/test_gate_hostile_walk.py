"""Hostile-input walk (session 10) of the files ``evalmon gate`` / ``compare`` read.

- a results.json that is not UTF-8 (PowerShell's ``>`` writes UTF-16) was ``internal error:
  UnicodeDecodeError``; one with a UTF-8 byte-order mark (an editor's save) was "Invalid JSON: expected
  value at line 1 column 1"; a validation error at the top level read "not an evalmon results.json (: …)".
- a policy ``min_value: .nan`` (or ``max_value``, or an infinite bound) was accepted: a check that silently
  never fails (NaN compares false) or always does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.config.gate import load_policy_text
from evalmon.core.errors import ConfigError
from evalmon.core.results import MetricValue, Provenance, RunResult, TaskResult
from evalmon.gate.resolve import load_local


def _run(root: Path) -> Path:
    task = TaskResult(name="t", n=2, num_fewshot=0, source="/data/t.jsonl", config_hash="h", config={"name": "t"},
                      metrics={"acc": MetricValue.with_ci(0.5, 0.5)}, metric_kinds={"acc": "binary"})
    result = RunResult(run_id="r1", suite_name="s", suite_hash="h", started_at="2025-05-01T10:00:00+00:00",
                       finished_at="2025-05-01T10:05:00+00:00", status="finished", suite_config={},
                       provenance=Provenance(evalmon_version="0.1.0", lm_eval_version="0.4.13",
                                             python_version="3.11", platform="linux", hostname="ci", command="x"),
                       model={"backend": "hf", "model": "/ckpt"}, tasks={"t": task})
    result.save(root / "r1")
    return root / "r1"


def test_results_json_with_a_bom_is_read(tmp_path: Path) -> None:
    run = _run(tmp_path)
    text = (run / "results.json").read_text(encoding="utf-8")
    (run / "results.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_local(run).result.run_id == "r1"


def test_results_json_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    run = _run(tmp_path)
    text = (run / "results.json").read_text(encoding="utf-8")
    (run / "results.json").write_bytes(text.encode("utf-16"))
    with pytest.raises(ConfigError) as exc:
        load_local(run)
    assert "not UTF-8 text" in exc.value.one_line() and "UTF-16?" in exc.value.one_line()


def test_top_level_validation_error_has_no_empty_location(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "results.json").write_text("[1, 2]")
    with pytest.raises(ConfigError) as exc:
        load_local(run)
    assert "results.json (:" not in exc.value.one_line() and "not an evalmon results.json (" in exc.value.one_line()


@pytest.mark.parametrize(("bound", "shown"), [("min_value: .nan", "nan"), ("max_value: .inf", "inf"),
                                              ("min_value: -.inf", "-inf")])
def test_policy_bound_that_is_not_finite_is_refused_at_its_line(bound: str, shown: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy_text(f"rules:\n  - {{match: '*/acc', {bound}}}\n", "gates.yaml")
    assert exc.value.one_line().startswith(f"gates.yaml:2: rules.0.{bound.split(':')[0]}: {shown} is not a finite")
    assert load_policy_text("rules:\n  - {match: '*/acc', min_value: 0.3, max_drop: .inf}\n").rules[0].min_value == 0.3


def test_negative_seed_is_a_config_error_not_a_numpy_traceback(tmp_path: Path) -> None:
    """``--seed -1`` was ``internal error: ValueError: expected non-negative integer`` (numpy's SeedSequence)."""
    from evalmon.gate import compare

    run = load_local(_run(tmp_path))
    with pytest.raises(ConfigError, match=r"--seed -1: must be ≥ 0"):
        compare(run, run, seed=-1)
