"""Hostile-input walk (session 10) of the files ``evalmon gate`` / ``compare`` read.

- a results.json that is not UTF-8 (PowerShell's ``>`` writes UTF-16) was ``internal error:
  UnicodeDecodeError``; one with a UTF-8 byte-order mark (an editor's save) was "Invalid JSON: expected
  value at line 1 column 1"; a validation error at the top level read "not an evalmon results.json (: …)".
- a policy ``min_value: .nan`` (or ``max_value``, or an infinite bound) was accepted: a check that silently
  never fails (NaN compares false) or always does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(("edit", "says"), [({"stderr": -0.05}, "stderr -0.05 is negative"),
                                            ({"ci_low": 0.9, "ci_high": 0.1}, "ci_low 0.9 is above ci_high 0.1")])
def test_results_json_with_an_inverted_interval_is_refused(tmp_path: Path, edit: dict[str, float], says: str) -> None:
    """A negative stderr (an edited or foreign results.json) was read as is: inverted intervals in the table."""
    run = _run(tmp_path)
    doc = json.loads((run / "results.json").read_text(encoding="utf-8"))
    doc["tasks"]["t"]["metrics"]["acc"].update(edit)
    (run / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_local(run)
    assert "not an evalmon results.json" in exc.value.one_line() and says in exc.value.one_line(), exc.value


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


# --------------------------------------------------------------------------- baseline promote (walk-score)
def _store(tmp_path: Path) -> tuple[Any, str, str]:
    """A local sqlite MLflow store with one FINISHED evalmon run already promoted as the baseline."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    eid = client.create_experiment("walk")
    good = client.create_run(eid, tags={"evalmon.run_id": "good", "baseline": "true"}).info.run_id
    client.set_terminated(good, "FINISHED")
    return client, uri, good


def test_promote_refuses_a_failed_or_foreign_run_and_keeps_the_baseline(tmp_path: Path) -> None:
    """``baseline promote mlflow:<id>`` of a FAILED run (an upload cut short) or of a run evalmon never logged
    (no results.json: every later gate is an error) moved the tag onto it, demoting the good baseline."""
    from evalmon.core.errors import TrackingError
    from evalmon.gate.resolve import promote

    client, uri, good = _store(tmp_path)
    eid = client.get_run(good).info.experiment_id
    failed = client.create_run(eid, tags={"evalmon.run_id": "cut-short"}).info.run_id
    client.set_terminated(failed, "FAILED")
    running = client.create_run(eid, tags={"evalmon.run_id": "still-uploading"}).info.run_id
    foreign = client.create_run(eid).info.run_id
    client.set_terminated(foreign, "FINISHED")
    for rid, why in ((failed, "is FAILED"), (running, "is RUNNING"), (foreign, "not an evalmon run")):
        with pytest.raises(TrackingError, match=why):
            promote(f"mlflow:{rid}", tracking_uri=uri)
        assert "baseline" not in client.get_run(rid).data.tags
    assert client.get_run(good).data.tags["baseline"] == "true"


def test_promote_with_a_tag_mlflow_refuses_is_one_line_and_demotes_nothing(tmp_path: Path) -> None:
    """``--tag "base'line=true"`` was ``internal error: MlflowException: Invalid value …`` (crash file)."""
    from evalmon.core.errors import EvalmonError
    from evalmon.gate.resolve import promote

    client, uri, good = _store(tmp_path)
    new = client.create_run(client.get_run(good).info.experiment_id, tags={"evalmon.run_id": "new"}).info.run_id
    client.set_terminated(new, "FINISHED")
    for tag in ("base'line=true", "a`b=true"):
        with pytest.raises(EvalmonError, match=r"--tag .*MLflow at .* refused") as exc:
            promote(f"mlflow:{new}", tag, tracking_uri=uri)
        assert "\n" not in exc.value.one_line()
    assert client.get_run(good).data.tags["baseline"] == "true"
    assert promote(f"mlflow:{new}", tracking_uri=uri)["demoted"] == [good]  # a valid promote still moves it


def test_promote_of_a_run_folder_with_a_corrupt_mlflow_json_says_so(tmp_path: Path) -> None:
    """A cut-short or hand-edited mlflow.json was reported as "never logged to MLflow … log it first (`evalmon
    sync`)" — sync has nothing to upload for a run that was logged."""
    from evalmon.core.errors import ConfigError
    from evalmon.gate.resolve import promote

    run = tmp_path / "reports" / "r1"
    run.mkdir(parents=True)
    for text in ('{"run_id": "ab', "[]", ""):
        (run / "mlflow.json").write_text(text)
        with pytest.raises(ConfigError, match=r"mlflow\.json holds no MLflow run id .* pass mlflow:<run_id>"):
            promote(str(run))
    (run / "mlflow.json").unlink()
    with pytest.raises(ConfigError, match="never logged to MLflow"):
        promote(str(run))


# ------------------------------------------------------------------ outputs never overwrite inputs (walk-judge)
@pytest.mark.parametrize("target", ["results.json", "samples.jsonl.gz", "summary.md"])
def test_compare_output_onto_a_file_of_an_input_run_is_refused(tmp_path: Path, target: str) -> None:
    """``compare A B -f json -o A/results.json`` replaced run A's results.json with the comparison."""
    from evalmon.cli.gate import compare_cmd

    run = _run(tmp_path)
    (run / "samples.jsonl.gz").write_bytes(b"kept")
    (run / "summary.md").write_text("# the run's own summary\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for ref in (str(run), str(run / "results.json")):
        with pytest.raises(ConfigError) as exc:
            compare_cmd(ref, ref, fmt="json", tracking_uri=None, seed=1, n_boot=100, output=run / target)
        line = exc.value.one_line()
        assert line.startswith(f"--output {run / target} is a file of run {ref}") and "nothing was written" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("flag", ["json_out", "markdown_out"])
def test_gate_outputs_onto_an_input_are_refused_before_anything_is_written(tmp_path: Path, flag: str) -> None:
    """``gate --json RUN/results.json`` (or the policy file) was overwritten with the verdict — even the error
    explanation of a gate that failed was written there."""
    from evalmon.cli.gate import gate_cmd

    run = _run(tmp_path)
    policy = tmp_path / "gates.yaml"
    policy.write_text("rules: []\n", encoding="utf-8")
    for target, says in ((run / "results.json", "is a file of run"), (policy, "is the --policy file")):
        before = target.read_bytes()
        kwargs = {"json_out": None, "markdown_out": None, flag: target}
        with pytest.raises(ConfigError, match=says):
            gate_cmd(str(run), str(run), policy=policy, alpha=None, tracking_uri=None, seed=1, n_boot=100,
                     allow_incomparable=False, **kwargs)
        assert target.read_bytes() == before


def test_new_files_next_to_the_runs_are_fine(tmp_path: Path) -> None:
    from evalmon.cli.gate import compare_cmd

    run = _run(tmp_path)
    other = _run(tmp_path / "b")  # same numbers, another folder
    doc = json.loads((other / "results.json").read_text(encoding="utf-8"))
    (other / "results.json").write_text(json.dumps({**doc, "run_id": "r2"}), encoding="utf-8")
    assert compare_cmd(str(run), str(other), fmt="md", tracking_uri=None, seed=1, n_boot=100,
                       output=run / "compare.md") == 0
    assert (run / "compare.md").read_text(encoding="utf-8").startswith("## evalmon compare")
