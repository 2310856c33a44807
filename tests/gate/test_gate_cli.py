"""`evalmon gate` / `evalmon compare` / `evalmon baseline promote` end to end (subprocess), on results
directories built by hand, and MLflow run resolution against a real server (tests/plugins/mlflow_server.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from evalmon.core.errors import GateError, TrackingError
from evalmon.core.results import MetricValue, Provenance, RunResult, SampleRecord, TaskResult, write_samples
from evalmon.gate import (
    compare,
    comparison_markdown,
    gate,
    load_policy_text,
    promote,
    resolve_run,
    verdict_markdown,
)
from evalmon.metrics.stats import mean_stderr
from evalmon.sinks import mlflow as tracking

EVALMON = str(Path(sys.executable).parent / "evalmon")
N = 200


# --------------------------------------------------------------------------- building runs by hand
def make_run(root: Path, rid: str, scores: dict[str, dict[str, list[float]]], *, samples: bool = True,
             fewshot: int = 0, bos: str = "tokenizer-default", doc_ids: dict[str, list[str]] | None = None,
             lm_eval: str = "0.4.13", adapter: str | None = None) -> Path:
    """results.json + samples.jsonl.gz for ``{task: {metric: per-doc values}}``."""
    tasks, recs = {}, []
    for task, metrics in scores.items():
        n = len(next(iter(metrics.values())))
        ids = (doc_ids or {}).get(task) or [f"{task}/{i}" for i in range(n)]
        kinds = {m: "binary" if set(v) <= {0.0, 1.0} else "continuous" for m, v in metrics.items()}
        tasks[task] = TaskResult(
            name=task, n=n, num_fewshot=fewshot, source=f"/data/{task}.jsonl", config_hash=f"{task}-{fewshot}",
            config={"name": task, "num_fewshot": fewshot},
            metrics={m: MetricValue.with_ci(float(np.mean(v)), mean_stderr(v)) for m, v in metrics.items()},
            metric_kinds=kinds)
        recs += [SampleRecord(task=task, doc_id=ids[i], prompt_hash=f"{task}{i}",
                              scores={m: v[i] for m, v in metrics.items()}) for i in range(n)]
    result = RunResult(
        run_id=rid, suite_name="smoke", suite_hash=f"hash-{rid}", started_at="2025-05-01T10:00:00+00:00",
        finished_at="2025-05-01T10:05:00+00:00", status="finished",
        suite_config={"name": "smoke", "limit": "200", "model.path": f"/ckpt/{rid}"},
        provenance=Provenance(evalmon_version="0.1.0", lm_eval_version=lm_eval, python_version="3.11",
                              platform="linux", hostname="ci", command="evalmon run suites/smoke.yaml"),
        model={"backend": "hf", "model": f"/ckpt/{rid}", "bos_policy": bos, "max_length": 2048, "dtype": "float32",
               "adapter": adapter},
        tasks=tasks)
    run_dir = root / rid
    result.save(run_dir)
    if samples:
        write_samples(run_dir / "samples.jsonl.gz", recs)
    return run_dir


def flip(values: list[float], k: int, frm: float, to: float, start: int = 0) -> list[float]:
    """Change the first ``k`` documents (from ``start``) scoring ``frm`` to ``to``."""
    out, done = list(values), 0
    for i in range(start, len(out)):
        if done < k and out[i] == frm:
            out[i], done = to, done + 1
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-runs")
    rng = np.random.default_rng(42)
    mmlu = (rng.random(N) < 0.6).astype(float).tolist()
    hella = (rng.random(N) < 0.45).astype(float).tolist()
    mc2 = np.clip(rng.beta(2, 2, N // 2), 0, 1).round(4).tolist()
    base = {"mmlu_x": {"acc": mmlu}, "hellaswag": {"acc": hella, "acc_norm": hella}, "tqa_mc2": {"mc2": mc2}}
    noisy = {"mmlu_x": {"acc": flip(flip(mmlu, 3, 1.0, 0.0), 3, 0.0, 1.0, 100)},
             "hellaswag": {"acc": hella, "acc_norm": flip(hella, 2, 0.0, 1.0)},
             "tqa_mc2": {"mc2": (np.array(mc2) + rng.normal(0, 0.01, N // 2)).clip(0, 1).round(4).tolist()}}
    regress = {"mmlu_x": {"acc": flip(mmlu, 30, 1.0, 0.0)},  # −15 points
               "hellaswag": {"acc": flip(hella, 25, 0.0, 1.0), "acc_norm": hella},  # +12.5 points
               "tqa_mc2": {"mc2": mc2}}
    out = {
        "base": make_run(root, "base", base),
        "same": make_run(root, "same", noisy),
        "regress": make_run(root, "regress", regress),
        "fewshot5": make_run(root, "fewshot5", noisy, fewshot=5, bos="add-bos", lm_eval="0.4.9"),
        "other_tasks": make_run(root, "other_tasks", {"arc_easy": {"acc": mmlu}}),
        "no_samples": make_run(root, "no_samples", regress, samples=False),
        "shifted_ids": make_run(root, "shifted_ids", noisy, doc_ids={
            "mmlu_x": [f"mmlu_x/{i + 20}" for i in range(N)]}),
    }
    (root / "gates.yaml").write_text(
        "alpha: 0.05\n"
        "defaults:\n  max_drop: 0.02\n"
        "rules:\n"
        "  - match: '*/acc'\n"
        "  - task: tqa_mc2\n    metric: mc2\n    min_value: 0.2\n", encoding="utf-8")
    (root / "paired.yaml").write_text("require_paired: true\nrules:\n  - match: 'mmlu_x/*'\n", encoding="utf-8")
    (root / "typo.yaml").write_text("rules:\n  - match: 'mmlu_x/acc'\n  - task: hellaswag\n    metric: acc_nrom\n",
                                    encoding="utf-8")
    out["root"] = root
    return out


def evalmon(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # no COLUMNS/LINES (as cli_env): pytest-xdist workers inherit COLUMNS=80 that readline put into the controller's
    # environment, and an explicit width would wrap the compare table's cells
    drop = ("GITHUB_STEP_SUMMARY", "MLFLOW_TRACKING_URI", "COLUMNS", "LINES")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    proc = subprocess.run([EVALMON, *map(str, args)], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


# --------------------------------------------------------------------------- gate
def test_gate_header_tells_base_from_base_plus_adapter(tmp_path: Path) -> None:
    scores = {"mmlu_x": {"acc": [1.0, 0.0] * 20}}
    a = make_run(tmp_path, "base", scores)
    b = make_run(tmp_path, "tuned", scores, adapter="/adapters/med-lora")
    proc = evalmon("gate", "--baseline", a, "--candidate", b, "--markdown", tmp_path / "g.md", "--json",
                   tmp_path / "g.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "B = `/ckpt/tuned` + adapter `/adapters/med-lora`" in (tmp_path / "g.md").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))["candidate"]["adapter"] == "/adapters/med-lora"


def test_gate_pass_writes_json_and_step_summary(runs: dict[str, Path], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["same"] / "results.json",
                   "--policy", runs["root"] / "gates.yaml", "--json", tmp_path / "v.json", cwd=tmp_path,
                   env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n") and "## evalmon gate: ✅ PASS" in text  # appended
    assert "A = `/ckpt/base` · B = `/ckpt/same`" in text  # which models, not only run ids
    verdict = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "pass" and verdict["exit_code"] == 0 and verdict["correction"] == "holm"
    by_key = {m["key"]: m for m in verdict["metrics"]}
    assert set(by_key) == {"mmlu_x/acc", "hellaswag/acc", "tqa_mc2/mc2"}  # acc_norm matches no rule
    assert by_key["mmlu_x/acc"]["comparison"]["test"] == "mcnemar-exact"
    assert by_key["mmlu_x/acc"]["comparison"]["detail"] == {"baseline_only_correct": 3, "candidate_only_correct": 3}
    assert by_key["tqa_mc2/mc2"]["comparison"]["test"] == "paired-bootstrap"
    assert by_key["tqa_mc2/mc2"]["comparison"]["detail"]["seed"] == 1234
    assert by_key["tqa_mc2/mc2"]["rule"]["min_value"] == 0.2 and by_key["mmlu_x/acc"]["rule"]["max_drop"] == 0.02


def test_gate_regression_markdown_and_improvement_not_failed(runs: dict[str, Path], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["regress"], "--json", tmp_path / "v.json",
                   "--markdown", tmp_path / "verdict.md", cwd=tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    md = summary.read_text(encoding="utf-8")
    assert md.strip() == (tmp_path / "verdict.md").read_text(encoding="utf-8").strip()
    assert "## evalmon gate: ❌ REGRESSION" in md and "1 of 4 gated metrics failed" in md
    assert "- ❌ **mmlu_x/acc**: drop 0.1500 > max_drop 0, significant (Holm p=<1e-4 ≤ 0.05)" in md
    assert "| ⬆️ | hellaswag/acc |" in md  # improvement reported …
    verdict = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    status = {m["key"]: (m["status"], m["failed"]) for m in verdict["metrics"]}
    assert status["mmlu_x/acc"] == ("regression", True)
    assert status["hellaswag/acc"] == ("improved", False)  # … never failed
    assert verdict["status"] == "regression" and verdict["exit_code"] == 1


def test_improvement_alone_passes(runs: dict[str, Path]) -> None:
    v = gate(resolve_run(str(runs["regress"])), resolve_run(str(runs["base"])),
             load_policy_text("rules:\n  - task: mmlu_x\n"))
    assert v.exit_code == 0 and v.metrics[0].status == "improved" and not v.metrics[0].failed


def test_not_comparable_exits_2_unless_allowed(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["fewshot5"], cwd=tmp_path)
    one_line_error(proc, "not comparable", "model BOS policy differs")
    assert "few-shot count differs" in proc.stderr and "lm-eval version differs" in proc.stderr
    c = compare(resolve_run(str(runs["base"])), resolve_run(str(runs["fewshot5"])))
    fields = {(i.scope, i.field, i.blocking) for i in c.issues}
    assert {("run", "bos_policy", True), ("mmlu_x", "num_fewshot", True), ("run", "lm_eval_version", False)} <= fields
    assert not any(f in ("n", "doc_ids", "suite") for _, f, _ in fields)  # same n, ids, suite settings
    assert "**not comparable** (run): model BOS policy differs" in comparison_markdown(c)
    allowed = gate(resolve_run(str(runs["base"])), resolve_run(str(runs["fewshot5"])), allow_incomparable=True)
    assert allowed.exit_code == 0 and all(not i.blocking for i in allowed.issues)


# --------------------------------------------------------------------------- compare
def test_compare_table_and_json(runs: dict[str, Path], tmp_path: Path) -> None:
    table = evalmon("compare", runs["base"], runs["regress"], cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "mmlu_x/acc" in table.stdout and "-0.1500" in table.stdout and "mcnemar-exact" in table.stdout
    js = evalmon("compare", runs["base"], runs["regress"], "--format", "json", cwd=tmp_path)
    data = json.loads(js.stdout)
    by_key = {m["key"]: m for m in data["metrics"]}
    assert len(by_key) == 4 and by_key["mmlu_x/acc"]["p_value"] < 1e-4 and by_key["mmlu_x/acc"]["paired"]
    assert by_key["hellaswag/acc_norm"]["delta"] == 0 and by_key["hellaswag/acc_norm"]["p_value"] == 1
    assert data["seed"] == 1234 and data["baseline"]["run_id"] == "base"


# --------------------------------------------------------------------------- bad input
def test_no_overlapping_tasks(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["other_tasks"], cwd=tmp_path)
    one_line_error(proc, "runs share no task", "arc_easy")


def test_mismatched_sample_ids_warn_then_fail_when_paired_required(runs: dict[str, Path], tmp_path: Path) -> None:
    v = gate(resolve_run(str(runs["base"])), resolve_run(str(runs["shifted_ids"])))
    m = next(x for x in v.metrics if x.key == "mmlu_x/acc")
    assert m.comparison.paired and m.comparison.n == N - 20
    assert any("20 only in baseline, 20 only in candidate; paired tests use the 180 shared" in i.message
               for i in v.issues)
    assert "180 shared documents" in verdict_markdown(v)
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["shifted_ids"],
                   "--policy", runs["root"] / "paired.yaml", cwd=tmp_path)
    one_line_error(proc, "requires paired samples but the document ids differ")


def test_missing_samples_fall_back_loudly_or_fail(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["no_samples"], "--json",
                   tmp_path / "v.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the 15-point drop is significant even unpaired
    assert "WARNING" in proc.stderr and "samples.jsonl.gz is missing" in proc.stderr
    verdict = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    tests = {m["key"]: m["comparison"]["test"] for m in verdict["metrics"]}
    assert tests["mmlu_x/acc"] == "two-proportion-z" and tests["tqa_mc2/mc2"] == "welch"
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["no_samples"],
                   "--policy", runs["root"] / "paired.yaml", cwd=tmp_path)
    one_line_error(proc, "mmlu_x/acc requires paired samples", "samples.jsonl.gz missing for the candidate")


def test_unknown_metric_in_policy(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = evalmon("gate", "--baseline", runs["base"], "--candidate", runs["same"],
                   "--policy", runs["root"] / "typo.yaml", cwd=tmp_path)
    one_line_error(proc, "typo.yaml:3:", "unknown metric 'acc_nrom'", "did you mean: acc_norm?")
    bad = load_policy_text  # schema errors name the line too
    with pytest.raises(Exception, match=r"g.yaml:2: rules.0.max_dropp: unknown key 'max_dropp' \(did you mean"):
        bad("rules:\n  - {match: 'x/acc', max_dropp: 1}\n", "g.yaml")
    with pytest.raises(GateError, match="share no task"):
        compare(resolve_run(str(runs["base"])), resolve_run(str(runs["other_tasks"])))


# --------------------------------------------------------------------------- MLflow
def _log(src: Path, dst_root: Path, uri: str, experiment: str) -> str:
    run_dir = dst_root / src.name
    shutil.copytree(src, run_dir)
    out = tracking.log_run(RunResult.load(run_dir), run_dir, uri, experiment, samples_table=False)
    assert out["status"] == "logged", out
    return str(out["run_id"])


def test_mlflow_resolution_promote_and_registry(runs: dict[str, Path], mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    exp = f"gate-{uuid.uuid4().hex[:8]}"
    rid_base = _log(runs["base"], tmp_path / "a", mlflow_server, exp)
    rid_old = _log(runs["same"], tmp_path / "b", mlflow_server, exp)
    # by run id (prefixed and bare): results + samples come back from the artifacts
    loaded = resolve_run(f"mlflow:{rid_base}", mlflow_server)
    assert loaded.result.run_id == "base" and loaded.samples is not None and len(loaded.samples) == 2 * N + N // 2
    assert resolve_run(rid_old, mlflow_server).result.run_id == "same"
    # promote: the tag moves from the older baseline to the new one; the query finds it
    env = {"MLFLOW_TRACKING_URI": mlflow_server}  # (each subprocess importing mlflow costs seconds: only 3)
    assert promote(f"mlflow:{rid_old}", tracking_uri=mlflow_server)["demoted"] == []
    proc = evalmon("baseline", "promote", tmp_path / "a" / "base", cwd=tmp_path, env=env)  # via its mlflow.json
    assert proc.returncode == 0 and rid_old in proc.stdout, proc.stdout + proc.stderr
    client = MlflowClient(tracking_uri=mlflow_server)
    assert "baseline" not in client.get_run(rid_old).data.tags
    assert client.get_run(rid_old).data.tags["evalmon.baseline.superseded_by"] == rid_base
    query = f"mlflow:experiment={exp},tag.baseline=true"
    assert resolve_run(query, mlflow_server).mlflow_run_id == rid_base
    cand = _log(runs["regress"], tmp_path / "c", mlflow_server, exp)
    proc = evalmon("gate", "--baseline", query, "--candidate", f"mlflow:{cand}", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "REGRESSION" in proc.stdout, proc.stdout + proc.stderr
    # registered model version / alias → the run it was created from
    name = f"m-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=client.get_run(rid_base).info.artifact_uri, run_id=rid_base)
    client.set_registered_model_alias(name, "champion", mv.version)
    assert resolve_run(f"models:/{name}@champion", mlflow_server).mlflow_run_id == rid_base
    assert resolve_run(f"models:/{name}/{mv.version}", mlflow_server).result.run_id == "base"
    with pytest.raises(TrackingError, match="not found"):
        resolve_run(f"models:/{name}@nope", mlflow_server)
    with pytest.raises(TrackingError, match=r"no MLflow run .* matches"):
        resolve_run(f"mlflow:experiment={exp},tag.baseline=nope", mlflow_server)
    # a run id that does not exist: exit 2, one line
    missing = uuid.uuid4().hex
    proc = evalmon("gate", "--baseline", f"mlflow:{missing}", "--candidate", runs["same"], cwd=tmp_path, env=env)
    one_line_error(proc, f"MLflow run {missing} does not exist")


def test_groups_pair_over_members_and_empty_policy_is_an_error(runs: dict[str, Path]) -> None:
    from evalmon.core.results import GroupResult
    from evalmon.gate import LoadedRun

    def with_group(path: Path) -> LoadedRun:
        run = resolve_run(str(path))
        t = run.result.tasks
        n = t["mmlu_x"].n + t["hellaswag"].n
        value = (t["mmlu_x"].metrics["acc"].value * t["mmlu_x"].n + t["hellaswag"].metrics["acc"].value
                 * t["hellaswag"].n) / n
        run.result.groups["grp"] = GroupResult(name="grp", n=n, members=["mmlu_x", "hellaswag"],
                                               metrics={"acc": MetricValue(value=value)})
        return run

    a, b = with_group(runs["base"]), with_group(runs["regress"])
    v = gate(a, b, load_policy_text("rules:\n  - task: grp\n"))
    (m,) = v.metrics
    assert m.comparison.paired and m.comparison.n == 2 * N and m.comparison.test == "mcnemar-exact"
    assert m.comparison.detail == {"baseline_only_correct": 30, "candidate_only_correct": 25}
    assert m.comparison.delta == pytest.approx(-5 / (2 * N)) and m.status == "drop_not_significant"
    with pytest.raises(GateError, match="gates none of the"):
        gate(a, b, load_policy_text("rules:\n  - match: 'mmlu*/acc_*'\n"))
