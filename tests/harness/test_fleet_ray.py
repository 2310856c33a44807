"""``executor: ray`` (harness/fleet.py) on a real local Ray cluster: two replicas of the tiny checkpoint (with one
LoRA adapter: the adapter matrix fans out on the same replicas) answer a loglikelihood task and a generation task
with results and samples identical to the single-process run, for the base and the adapter, and a rerun on a warm
response cache is served on the driver (nothing reaches a replica). Several checkpoints in one suite (``models:``)
placed on the replicas equal separate runs of each (one Ray cluster for the module: its start is the slow part)."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalmon.config.suite import SuiteConfig, apply_overrides, load_suite
from evalmon.core.results import RunResult

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    import ray  # a missing ray fails the test (the dev extra installs it)

    from evalmon.harness.fleet import start_ray

    start_ray(num_cpus=2)  # ray.init(num_cpus=2), retried when a loaded machine misses Ray's start-up timeout
    yield ray
    ray.shutdown()


def _suite(tmp_path: Path, tiny: Path, benchmarks: Path, name: str, cache: str, lora: Path) -> SuiteConfig:
    text = json.dumps({
        "name": name, "model": {"path": str(tiny), "batch_size": 3, "token_budget": 160, "adapters": {"a": str(lora)}},
        "data": {"data_dir": str(benchmarks)}, "output_dir": str(tmp_path / "reports"),
        "tracking": {"enabled": False}, "cache": {"path": str(tmp_path / cache)},
        "tasks": [{"name": "hellaswag", "limit": 12},
                  {"name": "bbh_cot_fewshot_boolean_expressions", "num_fewshot": 0, "limit": 7,
                   "options": {"max_gen_toks": 8}}]})
    (tmp_path / f"{name}.yaml").write_text(text)
    return load_suite(tmp_path / f"{name}.yaml")


def _samples(run_dir: Path) -> list[dict[str, Any]]:
    with gzip.open(run_dir / "samples.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def _metrics(result: Any) -> dict[str, Any]:
    return {t: {m: (v.value, v.stderr) for m, v in r.metrics.items()} for t, r in result.tasks.items()}


def test_ray_fleet_equals_single_process(ray_cluster: Any, tiny_checkpoint: Path, tiny_lora: Path,
                                         benchmarks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.harness.fleet import FleetLM, load_fleet
    from evalmon.harness.run import run_suite

    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "evalmon-cache"))
    local = run_suite(_suite(tmp_path, tiny_checkpoint, benchmarks_dir, "local", "local.sqlite", tiny_lora))
    cfg = apply_overrides(_suite(tmp_path, tiny_checkpoint, benchmarks_dir, "fleet", "fleet.sqlite", tiny_lora),
                          executor="ray", replicas=2)
    assert cfg.executor == "ray" and cfg.replicas == 2
    fleet = load_fleet(cfg.model, cfg.replicas)
    try:
        assert isinstance(fleet, FleetLM) and fleet.replicas == 2
        remote = run_suite(cfg, lm=fleet)
        sent = list(fleet._fleet.sent)
        assert min(sent) > 0, sent  # both replicas computed
        reports = tmp_path / "reports"
        remote_a, local_a = (RunResult.load(reports / r.run_id / "adapters" / "a") for r in (remote, local))
        computed = sum(t.timing.computed for r in (remote, remote_a) for t in r.tasks.values())
        assert sum(sent) == computed  # misses only (base and adapter)
        assert remote.status == local.status == "finished"
        assert remote.model == local.model and remote_a.model == local_a.model  # the replicas' fingerprints
        assert _metrics(remote) == _metrics(local) and _metrics(remote_a) == _metrics(local_a)
        for sub in ("", "adapters/a"):
            assert _samples(reports / remote.run_id / sub) == _samples(reports / local.run_id / sub), sub
        base_ll = [s["loglikelihoods"] for s in _samples(reports / remote.run_id)]
        assert base_ll != [s["loglikelihoods"] for s in _samples(reports / remote.run_id / "adapters/a")]  # applied
        assert any(s["outputs"] for s in _samples(tmp_path / "reports" / remote.run_id))  # generation ran
        warm = run_suite(apply_overrides(_suite(tmp_path, tiny_checkpoint, benchmarks_dir, "warm", "local.sqlite", tiny_lora),
                                         executor="ray", replicas=2), lm=fleet)
        assert fleet._fleet.sent == sent  # every request was a cache hit on the driver
        assert all(t.timing.computed == 0 for t in warm.tasks.values())
        assert _metrics(warm) == _metrics(local)
    finally:
        fleet.close_fleet()


@pytest.fixture(scope="module")
def second_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny checkpoint: the session's tiny model with seeded noise on every weight (same tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny-b") / "tiny-llama-b"
    shutil.copytree(tiny_checkpoint, out)
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(out, safe_serialization=True)
    return out


MODELS_TASKS = [{"name": "hellaswag", "limit": 10}, {"name": "bbh_cot_fewshot_boolean_expressions", "num_fewshot": 0,
                                                     "limit": 4, "options": {"max_gen_toks": 6}}]


def _models_suite(tmp_path: Path, name: str, models: dict[str, Path], benchmarks: Path) -> Any:
    specs = [{"name": n, "path": str(p), "batch_size": 3, "token_budget": 160} for n, p in models.items()]
    doc: dict[str, Any] = {"name": name, "data": {"data_dir": str(benchmarks)}, "output_dir": str(tmp_path / "reports"),
                           "tracking": {"enabled": False},
                           "cache": {"path": str(tmp_path / f"{name}.sqlite")}, "tasks": MODELS_TASKS}
    if len(specs) == 1:
        doc["model"] = {k: v for k, v in specs[0].items() if k != "name"}
    else:
        doc["models"] = specs
    (tmp_path / f"{name}.yaml").write_text(json.dumps(doc))
    return load_suite(tmp_path / f"{name}.yaml")


def test_models_suite_equals_separate_runs(ray_cluster: Any, tiny_checkpoint: Path, second_checkpoint: Path,
                                           benchmarks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several checkpoints in one suite (``models:``, harness/model_matrix.py): two different tiny checkpoints,
    each evaluated alone first; then one suite run of both — on the local executor (one checkpoint at a time)
    and on Ray with two replicas (two slots of one replica: each replica loads one checkpoint, both evaluated at
    once). Per checkpoint, ``results.json`` metrics and ``samples.jsonl.gz`` equal the separate run's; the suite
    run is the first checkpoint's, the second is ``models/<name>/`` with a ranked paired table, and
    ``gate RUN#name`` resolves both (MLflow child runs: the adapter matrix's e2e, the same code)."""
    from evalmon.gate.resolve import resolve_run
    from evalmon.harness.run import run_suite

    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "evalmon-cache"))
    reports = tmp_path / "reports"
    pair = {"a": tiny_checkpoint, "b": second_checkpoint}
    alone = {n: run_suite(_models_suite(tmp_path, f"alone_{n}", {n: p}, benchmarks_dir)) for n, p in pair.items()}
    assert _metrics(alone["a"]) != _metrics(alone["b"]) or \
        _samples(reports / alone["a"].run_id) != _samples(reports / alone["b"].run_id)  # two different models

    local = run_suite(_models_suite(tmp_path, "local", pair, benchmarks_dir))  # one checkpoint at a time
    lines: list[str] = []
    fleet = run_suite(apply_overrides(_models_suite(tmp_path, "fleet", pair, benchmarks_dir), executor="ray",
                                      replicas=2), log=lines.append)
    assert "2 checkpoints on 2 replicas: 2 at a time (1, 1 replicas each)" in lines, lines  # placed, concurrent
    for run in (local, fleet):
        root = reports / run.run_id
        assert run.status == "finished" and run.adapters["kind"] == "checkpoint" and run.adapters["reference"] == "a"
        assert run.adapters["variants"] == ["a", "b"] and run.adapters["dirs"] == {"b": "models/b"}
        assert [r["adapter"] for r in run.adapters["ranking"]] == ["b"]
        child = RunResult.load(root / "models" / "b")
        assert child.run_id == f"{run.run_id}#b" and child.status == "finished"
        for name, got, where in (("a", run, root), ("b", child, root / "models" / "b")):
            assert got.model == alone[name].model, name  # the fingerprint: the response-cache key
            assert _metrics(got) == _metrics(alone[name]), (run.run_id, name)
            assert _samples(where) == _samples(reports / alone[name].run_id), (run.run_id, name)
            assert all(t.timing.computed > 0 for t in got.tasks.values())  # a fresh cache: computed here
        assert resolve_run(f"{root}#b").result.run_id == f"{run.run_id}#b"
        assert resolve_run(f"{root}#a").result.run_id == run.run_id


def test_a_replica_that_dies_fails_the_run(ray_cluster: Any, tiny_checkpoint: Path, benchmarks_dir: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica killed after the fleet started (out of memory, a lost node): the run stops with one line naming
    the dead replica and is recorded as failed with the tasks it finished only — never ``finished`` with
    documents missing."""
    from evalmon.core.errors import ModelError
    from evalmon.harness.fleet import load_fleet
    from evalmon.harness.run import run_suite

    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "evalmon-cache"))
    cfg = apply_overrides(_models_suite(tmp_path, "dies", {"a": tiny_checkpoint}, benchmarks_dir), executor="ray",
                          replicas=2)
    fleet = load_fleet(cfg.model, cfg.replicas)
    ray_cluster.kill(fleet._fleet.actors[1])
    try:
        with pytest.raises(ModelError, match="a model replica died"):
            run_suite(cfg, lm=fleet)
    finally:
        fleet.close_fleet()
    (run_dir,) = [d for d in (tmp_path / "reports").iterdir() if d.is_dir()]
    saved = RunResult.load(run_dir)
    assert saved.status == "failed" and "replica died" in (saved.error or ""), saved.error
    assert "hellaswag" not in saved.tasks  # the task the dead replica was to answer is not reported as done
