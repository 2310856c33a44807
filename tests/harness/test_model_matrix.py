"""Planning of several checkpoints in one suite (harness/model_matrix.py, fleet.plan_slots) and what the shared
matrix writes for them (harness/matrix.py with kind ``checkpoint``): replicas per concurrent slot, the check of
local paths before anything runs, the ranked table's reference, ``gate RUN#name`` and the MLflow child tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalmon.config.suite import load_suite_text
from evalmon.core.errors import ConfigError, ModelError
from evalmon.core.results import MetricValue, Provenance, RunResult, SampleRecord, TaskResult
from evalmon.harness.fleet import plan_slots
from evalmon.harness.matrix import comparison_table, variant_dir, variant_run
from evalmon.harness.model_matrix import precheck


@pytest.mark.parametrize(("replicas", "checkpoints", "slots"), [
    (2, 2, [1, 1]),  # one replica per checkpoint, both at once
    (1, 3, [1]),  # one replica works through the checkpoints in turn
    (2, 3, [1, 1]),  # two slots; the third checkpoint goes to the first slot that is free
    (5, 2, [3, 2]),  # more replicas than checkpoints: each checkpoint sharded over several
    (4, 1, [4]),  # one checkpoint: the plain fleet
    (8, 3, [3, 3, 2]),
])
def test_plan_slots(replicas: int, checkpoints: int, slots: list[int]) -> None:
    got = plan_slots(replicas, checkpoints)
    assert got == slots and sum(got) == replicas and len(got) <= checkpoints


def test_precheck_names_the_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text("{}")
    cfg = load_suite_text(f"name: s\nmodels:\n  - {{name: a, path: {tmp_path / 'a'}}}\n"
                          f"  - {{name: b, path: {tmp_path / 'b'}}}\ntasks: [hellaswag]\n", "s.yaml")
    with pytest.raises(ModelError) as exc:
        precheck(cfg.models)
    assert exc.value.one_line().startswith(f"models.1 (b): path {tmp_path / 'b'} does not exist"), exc.value
    precheck(cfg.models[:1])
    (tmp_path / "a" / "config.json").unlink()
    with pytest.raises(ModelError, match=r"models.0 \(a\): .* has no config.json"):  # a dir that is no checkpoint
        precheck(cfg.models[:1])


def _run(run_id: str, acc: list[float], variant: dict | None = None) -> tuple[RunResult, list[SampleRecord]]:
    prov = Provenance(evalmon_version="0", python_version="3", platform="p", hostname="h")
    task = TaskResult(name="t", n=len(acc), num_fewshot=0, source="x", config_hash="c",
                      metric_kinds={"acc": "binary"}, metrics={"acc": MetricValue(value=float(np.mean(acc)))})
    samples = [SampleRecord(task="t", doc_id=str(i), prompt_hash="p", scores={"acc": v}) for i, v in enumerate(acc)]
    return RunResult(run_id=run_id, suite_name="s", suite_hash="h", started_at="", provenance=prov, model={},
                     tasks={"t": task}, adapters=variant or {}), samples


def test_checkpoint_table_and_gate_refs(tmp_path: Path) -> None:
    from evalmon.gate.resolve import resolve_run
    from evalmon.sinks.mlflow.payload import run_tags
    from evalmon.sinks.report_adapters import adapter_view, variant_note

    ref, ref_samples = _run("r", [1, 0, 1, 0, 1, 0, 1, 0])
    other, other_samples = _run("r#b", [1, 1, 1, 1, 1, 1, 1, 0])
    table = comparison_table(ref, ref_samples, {"b": (other, other_samples)}, seed=1, dirs={"b": "models/b"},
                             reference="a", kind="checkpoint")
    assert table["variants"] == ["a", "b"] and table["kind"] == "checkpoint" and table["reference"] == "a"
    assert table["family"] == "Holm over 1 checkpoint × task/metric tests vs a"
    cell = table["rows"][0]["adapters"]["b"]
    assert cell["test"] == "mcnemar-exact" and cell["delta"] == pytest.approx(0.375)
    view = adapter_view(table)
    assert view is not None and view["kind"] == "checkpoint" and [r.name for r in view["ranked"]] == ["b", "a"]
    ref.adapters = table
    run_dir = tmp_path / "r"
    ref.save(run_dir)
    child = variant_run(ref, "b", {}, "checkpoint")
    child.tasks = other.tasks
    child.save(variant_dir(run_dir, "b", "checkpoint"))
    assert variant_dir(run_dir, "b", "checkpoint") == run_dir / "models" / "b"
    assert "checkpoint b of run r" in (variant_note(child.adapters) or "")
    assert resolve_run(f"{run_dir}#b").result.run_id == "r#b"
    assert resolve_run(f"{run_dir}#a").result.run_id == "r"  # the reference is the suite run itself
    with pytest.raises(ConfigError, match="has no checkpoint 'c'"):
        resolve_run(f"{run_dir}#c")
    child.adapters["parent_mlflow_run_id"] = "p123"
    tags = run_tags(child)
    assert tags["evalmon.checkpoint"] == "b" and tags["mlflow.parentRunId"] == "p123" and "evalmon.adapter" not in tags
    assert run_tags(ref)["evalmon.checkpoints"] == "b" and run_tags(ref)["evalmon.checkpoint"] == "a"


@pytest.mark.e2e  # writes three runs' reports: 0.7 s on loaded cores, over the unit lane's per-test budget
def test_failed_checkpoint_is_recorded_and_the_rest_not_started(tmp_path: Path) -> None:
    from evalmon.harness import run as harness_run
    from evalmon.harness.model_matrix import RunHooks, _Context, _finish, _Job, _record
    from evalmon.harness.roles import Models

    cfg = load_suite_text(f"name: s\noutput_dir: {tmp_path}\ntracking: {{enabled: false}}\nmodels:\n"
                          "  - {name: a, path: /a}\n  - {name: b, path: /b}\n  - {name: c, path: /c}\n"
                          "tasks: [hellaswag]\n", "s.yaml")
    hooks = RunHooks(aggregate=lambda r: None, finalize=harness_run.finalize, error_line=harness_run.error_line,
                     now=harness_run._now)
    parent, _ = _run("r", [1, 0, 1])  # the reference computed a task (else no run dir is left at all)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    jobs = [_Job(0, "a", None, parent, run_dir, started=True)]
    jobs += [_Job(i, n, None, variant_run(parent, n, {}, "checkpoint"), variant_dir(run_dir, n, "checkpoint"))
             for i, n in ((1, "b"), (2, "c"))]
    ctx = _Context(cfg, [], None, lambda _m: None, hooks, Models(None))
    parent.status = "finished"
    _record(jobs[0], KeyboardInterrupt(), ctx)  # a signal after its last task: still finished
    assert parent.status == "finished"
    jobs[1].started = True
    _record(jobs[1], ModelError("model.path: /b has no config.json"), ctx)
    _finish(jobs, ctx, run_dir, None)
    b, c = (RunResult.load(run_dir / "models" / n) for n in ("b", "c"))
    assert b.status == "failed" and b.error == "ModelError: models.1 (b): model.path: /b has no config.json"
    assert c.status == "failed" and c.error.startswith("not run: the run stopped (ModelError: models.1 (b)")
    assert RunResult.load(run_dir).adapters["kind"] == "checkpoint" and str(ctx.errors[0]).startswith("models.1 (b)")
