"""``evalmon`` end to end: the real console entry point in a subprocess, on the tiny checkpoint, the
local benchmark mirror and a real MLflow server.

One suite run (three tasks + the ``mmlu_medical`` group, logged to MLflow) is shared by the module;
the other tests rerun it (response cache), override it from the command line, add a LoRA adapter,
list the tasks and run the embedded default suite. Runs that do not depend on each other are started
together (``Background``): a run is mostly imports, and two cores do two of those at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from cli_util import (
    Background,
    assert_no_traceback,
    cli_env,
    load_results,
    load_samples,
    only_run_dir,
    run_cli,
    run_dirs,
    show,
    suite_dict,
    write_suite,
)

LIMIT = 3
GROUP_LIMIT = 2
EXPERIMENT = "cli-e2e"


@dataclass
class SuiteRun:
    cwd: Path
    suite: Path
    proc: CompletedProcess[str]
    run_dir: Path
    results: dict[str, Any]


def _ok(proc: CompletedProcess[str]) -> None:
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    assert not re.search(r"\w+Warning: ", proc.stderr), show(proc)  # no library deprecation chatter


@dataclass
class SideRuns:
    """Runs independent of the main one, started before it: CLI overrides and the embedded default."""

    overrides_cwd: Path
    overrides: Background
    default_cwd: Path
    default: Background


@pytest.fixture(scope="module")
def side_runs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path,
              benchmarks_dir: Path) -> Iterator[SideRuns]:
    # overrides: the suite names a checkpoint that does not exist, other tasks, a larger limit, tracking
    # off; the flags replace all of that and the output directory
    over = tmp_path_factory.mktemp("overrides")
    write_suite(over / "suite.yaml", suite_dict(
        over / "not-a-checkpoint", benchmarks_dir, limit=10, tasks=["mmlu_anatomy", "truthfulqa_mc2"],
        tracking={"enabled": False}))
    overrides = Background(over, "run", "suite.yaml", "--model", f"hf:{tiny_checkpoint}", "--limit", str(LIMIT),
                           "--tasks", "hellaswag", "--output", "other_dir")
    # no suite file: the embedded default, pointed at the tiny checkpoint and the mirror by environment
    dflt = tmp_path_factory.mktemp("default")
    env = cli_env(EVALMON_DEFAULT_MODEL=str(tiny_checkpoint), EVALMON_DATA_DIR=str(benchmarks_dir))
    default = Background(dflt, "run", "--limit", "2", "--no-tracking", env=env)
    yield SideRuns(over, overrides, dflt, default)
    overrides.stop()
    default.stop()


@pytest.fixture(scope="module")
def main_run(side_runs: SideRuns, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path,
             benchmarks_dir: Path, mlflow_server: str) -> SuiteRun:
    cwd = tmp_path_factory.mktemp("e2e")
    suite = write_suite(cwd / "suite.yaml", suite_dict(
        tiny_checkpoint, benchmarks_dir, limit=LIMIT,
        tasks=[{"name": "mmlu_anatomy", "num_fewshot": 5}, "hellaswag", "truthfulqa_mc2",
               {"name": "mmlu_medical", "limit": GROUP_LIMIT}],
        tracking={"uri": mlflow_server, "experiment": EXPERIMENT}))
    proc = run_cli(cwd, "run", "suite.yaml")
    _ok(proc)
    run_dir = only_run_dir(cwd / "reports")
    return SuiteRun(cwd, suite, proc, run_dir, load_results(run_dir))


@dataclass
class FollowUps:
    """Runs in the main run's directory, after it: the same suite again, and with a LoRA adapter."""

    before: set[Path]
    rerun: Background
    adapter: Background


@pytest.fixture(scope="module")
def follow_ups(main_run: SuiteRun, tiny_checkpoint: Path, tiny_lora: Path) -> Iterator[FollowUps]:
    before = set(run_dirs(main_run.cwd / "reports"))
    rerun = Background(main_run.cwd, "run", "suite.yaml")
    # same directory as the base run, so the base's cached responses are right there: they must not be used
    adapter = Background(main_run.cwd, "run", "suite.yaml", "--model", f"hf:{tiny_checkpoint},adapter={tiny_lora}",
                         "--tasks", "hellaswag", "--no-tracking")
    yield FollowUps(before, rerun, adapter)
    rerun.stop()
    adapter.stop()


def _run_dir_with(output_dir: Path, before: set[Path], run_id_of: Background) -> Path:
    """The new run directory that ``run_id_of`` printed as its ``results:`` line."""
    proc = run_id_of.result()
    _ok(proc)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("results: "))
    run_dir = output_dir / Path(line.removeprefix("results: ")).name
    assert run_dir in set(run_dirs(output_dir)) - before, line
    return run_dir


# ------------------------------------------------------------------ the main run


def test_run_prints_results_table_with_groups(main_run: SuiteRun) -> None:
    out = main_run.proc.stdout
    rows = {m.group(2): len(m.group(1)) for m in re.finditer(r"^│ ( *)([a-z0-9_]+) +│", out, re.MULTILINE)}
    assert rows.get("mmlu_medical") == 0, out  # the group at the top level …
    assert rows.get("mmlu_anatomy") == 2 and rows.get("mmlu_virology") == 2, out  # … its members indented
    assert rows.get("hellaswag") == 0 and rows.get("truthfulqa_mc2") == 0, out
    assert "status finished" in out
    results_line = [ln for ln in out.splitlines() if ln.startswith("results: ")]
    assert results_line == [f"results: reports/{main_run.run_dir.name}"], out
    assert f"run {main_run.run_dir.name}" in main_run.proc.stderr  # progress/log go to stderr
    assert "MLflow run" in main_run.proc.stderr


def test_run_writes_reports_with_provenance(main_run: SuiteRun, tiny_checkpoint: Path) -> None:
    import evalmon
    from evalmon.backends.hf.identity import weights_fingerprint

    for name in ("results.json", "samples.jsonl.gz", "report.html", "summary.md"):
        assert (main_run.run_dir / name).is_file(), name
    res = main_run.results
    assert res["status"] == "finished" and res["run_id"] == main_run.run_dir.name
    assert res["suite_name"] == "e2e" and res["suite_path"] == str(main_run.suite.resolve())
    prov = res["provenance"]
    assert prov["evalmon_version"] == evalmon.__version__
    assert prov["lm_eval_version"] == metadata.version("lm_eval")
    assert prov["torch_version"] == metadata.version("torch")
    assert prov["transformers_version"] == metadata.version("transformers")
    if (Path(evalmon.__file__).resolve().parents[1] / ".git").exists():  # a source checkout
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"] or ""), prov
    assert prov["command"] == "evalmon run suite.yaml"
    model = res["model"]
    assert model["model"] == str(tiny_checkpoint.resolve()) and model["adapter"] is None
    assert model["weights_hash"] == weights_fingerprint(tiny_checkpoint)
    assert model["bos_policy"] == "tokenizer-default"
    assert isinstance(model["max_length"], int) and model["max_length"] > 0
    assert model["batch_size"] == 8 and model["dtype"] == "float32"

    members = {"mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_medicine", "mmlu_virology"}
    assert {"mmlu_anatomy", "hellaswag", "truthfulqa_mc2"} | members <= set(res["tasks"])
    expected_metrics = {"mmlu_anatomy": {"acc"}, "hellaswag": {"acc", "acc_norm"}, "truthfulqa_mc2": {"mc2"}}
    for name, task in res["tasks"].items():
        # first mention wins: mmlu_anatomy keeps the suite's limit and 5 shots, other members the group's limit
        assert task["n"] == (LIMIT if name in expected_metrics else GROUP_LIMIT), name
        assert set(task["metrics"]) == expected_metrics.get(name, {"acc"}), name
        for mv in task["metrics"].values():
            assert 0.0 <= mv["value"] <= 1.0 and mv["stderr"] is not None
        assert re.fullmatch(r"[0-9a-f]{16}", task["config_hash"])
        timing = task["timing"]
        assert timing["requests"] > 0 and timing["seconds"] >= 0
        assert timing["computed"] + timing["cached"] == timing["unique_requests"] <= timing["requests"]
    assert res["tasks"]["mmlu_anatomy"]["num_fewshot"] == 5
    samples = load_samples(main_run.run_dir)
    assert len(samples) == sum(t["n"] for t in res["tasks"].values())


def test_group_is_micro_averaged(main_run: SuiteRun) -> None:
    res = main_run.results
    group = res["groups"]["mmlu_medical"]
    members = [res["tasks"][m] for m in group["members"]]
    assert len(members) == 9 and group["n"] == sum(t["n"] for t in members)
    micro = sum(t["n"] * t["metrics"]["acc"]["value"] for t in members) / sum(t["n"] for t in members)
    assert group["metrics"]["acc"]["value"] == pytest.approx(micro, abs=1e-12)


def test_run_is_logged_to_mlflow(main_run: SuiteRun, mlflow_server: str, tmp_path: Path) -> None:
    import pandas as pd
    from mlflow import MlflowClient

    res = main_run.results
    assert res["mlflow"]["status"] == "logged" and res["mlflow"]["tracking_uri"] == mlflow_server
    client = MlflowClient(mlflow_server)
    run = client.get_run(res["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.tags["evalmon.run_id"] == res["run_id"]
    assert run.data.tags["evalmon.model.weights_hash"] == res["model"]["weights_hash"]
    table = pd.read_json(client.download_artifacts(run.info.run_id, "metrics_table.json", str(tmp_path)),
                         orient="split").set_index(["task", "metric"])  # stderr/CI/n: a table, not charted metrics
    for kind in ("tasks", "groups"):
        for name, entry in res[kind].items():
            for metric, mv in entry["metrics"].items():
                assert run.data.metrics[f"{name}/{metric}"] == pytest.approx(mv["value"], abs=1e-12)
                assert f"{name}/{metric}_stderr" not in run.data.metrics
                assert table.loc[(name, metric), "stderr"] == pytest.approx(mv["stderr"], abs=1e-12)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "samples.jsonl.gz", "report.html", "summary.md"} <= artifacts
    out = main_run.proc.stdout + main_run.proc.stderr  # the CLI names the run and the experiment's saved view
    assert f"#/experiments/{run.info.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=" in out


def test_rerun_is_served_from_the_response_cache(main_run: SuiteRun, follow_ups: FollowUps) -> None:
    rerun = load_results(_run_dir_with(main_run.cwd / "reports", follow_ups.before, follow_ups.rerun))
    assert rerun["run_id"] != main_run.results["run_id"]
    assert rerun["tasks"].keys() == main_run.results["tasks"].keys()
    for name, task in rerun["tasks"].items():
        timing = task["timing"]
        assert timing["computed"] == 0 and timing["cached"] == timing["unique_requests"] > 0, name
        assert timing["cached"] == timing["requests"], name  # multiple-choice requests are all distinct
        assert task["metrics"] == main_run.results["tasks"][name]["metrics"], name
    assert rerun["groups"] == main_run.results["groups"]


# ------------------------------------------------------------------ command-line overrides, adapters


def test_cli_overrides_take_effect(side_runs: SideRuns, tiny_checkpoint: Path, main_run: SuiteRun) -> None:
    _ok(side_runs.overrides.result())
    cwd = side_runs.overrides_cwd
    assert not (cwd / "reports").exists()
    res = load_results(only_run_dir(cwd / "other_dir"))
    assert (cwd / "other_dir" / ".cache" / "responses.sqlite").is_file()
    assert res["model"]["model"] == str(tiny_checkpoint.resolve())
    assert list(res["tasks"]) == ["hellaswag"] and res["tasks"]["hellaswag"]["n"] == LIMIT
    assert res["suite_config"]["limit"] == str(LIMIT)
    # same checkpoint, same first three documents: the main run's numbers
    assert res["tasks"]["hellaswag"]["metrics"] == main_run.results["tasks"]["hellaswag"]["metrics"]


def test_adapter_changes_fingerprint_and_numbers(main_run: SuiteRun, follow_ups: FollowUps, tiny_lora: Path) -> None:
    run_dir = _run_dir_with(main_run.cwd / "reports", follow_ups.before, follow_ups.adapter)
    res = load_results(run_dir)
    assert res["model"]["adapter"] == str(tiny_lora.resolve())
    assert (res["model"]["adapter_hash"] or "").startswith("sha256:")
    assert res["model"]["weights_hash"] == main_run.results["model"]["weights_hash"]
    timing = res["tasks"]["hellaswag"]["timing"]
    assert timing["cached"] == 0 and timing["computed"] == timing["unique_requests"]
    base = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(main_run.run_dir) if s["task"] == "hellaswag"}
    tuned = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(run_dir) if s["task"] == "hellaswag"}
    assert tuned.keys() == base.keys() and len(base) == LIMIT
    for doc_id, lls in tuned.items():
        assert all(abs(a - b) > 1e-6 for a, b in zip(lls, base[doc_id], strict=True)), doc_id


# ------------------------------------------------------------------ other commands


def test_tasks_lists_tasks_and_groups(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "tasks")
    _ok(proc)
    names = set(re.findall(r"^│ ([a-z0-9_]+) ", proc.stdout, re.MULTILINE))
    assert {"mmlu_anatomy", "hellaswag", "truthfulqa_mc1", "truthfulqa_mc2", "medqa", "mmlu", "mmlu_medical"} <= names


def test_run_without_a_suite_uses_the_embedded_default(side_runs: SideRuns, tiny_checkpoint: Path) -> None:
    from evalmon.config.suite import DEFAULT_TASKS

    proc = side_runs.default.result()
    _ok(proc)
    assert "building the embedded default checkpoint" not in proc.stderr
    run_dir = only_run_dir(side_runs.default_cwd / "reports")
    res = load_results(run_dir)
    assert res["suite_name"] == "default" and res["status"] == "finished"
    assert list(res["tasks"]) == list(DEFAULT_TASKS)
    assert all(t["n"] == 2 for t in res["tasks"].values())
    assert res["model"]["model"] == str(tiny_checkpoint.resolve())
    assert res["mlflow"] == {}  # --no-tracking: not logged …
    assert not (side_runs.default_cwd / ".evalmon" / "mlflow.db").exists()  # … and no local store made
