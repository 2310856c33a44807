"""`evalmon gate` never passes a partial or corrupt candidate (issue #10, item 1).

One real baseline (`evalmon run` on the tiny checkpoint: 3 tasks, 5 documents each, no tracking); the
candidates are copies of it with results.json / samples.jsonl.gz edited the way an interrupted, crashed or
tampered run looks. Every bad candidate must exit 2 (not comparable) with one stderr line per reason that
names the task/metric, the one `error:` line, and the markdown / JSON verdict written anyway. The
identical copy still passes. The gate subprocesses are started together (``Background``): each is mostly
imports.
"""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    show,
    suite_dict,
    write_suite,
)

from evalmon.core.results import SCHEMA_VERSION

TASKS = ["hellaswag", "mmlu_anatomy", "truthfulqa_mc2"]
LIMIT = 5

Edit = Callable[[dict[str, Any], list[dict[str, Any]]], None]  # (results.json, sample records) in place


# --------------------------------------------------------------------------- candidates
def _interrupted(res: dict[str, Any], _: list[dict[str, Any]]) -> None:
    res["status"] = "interrupted"


def _missing_task(res: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    del res["tasks"]["truthfulqa_mc2"]  # what a run interrupted before its last task leaves …
    samples[:] = [s for s in samples if s["task"] != "truthfulqa_mc2"]
    res["status"] = "finished"  # … even when the status says otherwise


def _missing_metric(res: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    task = res["tasks"]["hellaswag"]
    del task["metrics"]["acc_norm"], task["metric_kinds"]["acc_norm"]
    for s in samples:
        s["scores"].pop("acc_norm", None)


def _nan_metric(res: dict[str, Any], _: list[dict[str, Any]]) -> None:
    res["tasks"]["hellaswag"]["metrics"]["acc"]["value"] = None  # how results.json writes NaN


def _nan_doc(_: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    next(s for s in samples if s["task"] == "truthfulqa_mc2")["scores"]["mc2"] = None  # how NaN is written


def _edited_value(res: dict[str, Any], _: list[dict[str, Any]]) -> None:
    metric = res["tasks"]["mmlu_anatomy"]["metrics"]["acc"]
    metric["value"] = 1.0 if metric["value"] < 0.5 else 0.0


def _dropped_docs(_: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    hella = [i for i, s in enumerate(samples) if s["task"] == "hellaswag"]
    for i in reversed(hella[:2]):
        del samples[i]


def _empty_task(res: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    res["tasks"]["mmlu_anatomy"]["n"] = 0  # no document scored; the metric value left as it was
    samples[:] = [s for s in samples if s["task"] != "mmlu_anatomy"]


def _mmlu(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in samples if s["task"] == "mmlu_anatomy"]


def _dup_doc_id(res: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    rows = _mmlu(samples)
    rows[0].clear()
    rows[0].update(json.loads(json.dumps(rows[1])))  # document 0 never evaluated, document 1 counted twice
    res["tasks"]["mmlu_anatomy"]["metrics"]["acc"]["value"] = sum(r["scores"]["acc"] for r in rows) / len(rows)


def _extra_task(_: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    samples.append({**_mmlu(samples)[0], "task": "bogus_task"})  # rows results.json does not summarise


def _binary_out_of_range(_: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    rows = _mmlu(samples)  # the mean stays the same: only the {0, 1} check can see it
    rows[0]["scores"]["acc"] -= 0.5  # 0 or 1 becomes -0.5 or 0.5: never 0 or 1, whatever it was
    rows[1]["scores"]["acc"] += 0.5


@dataclass(frozen=True)
class Case:
    edit: Edit | None
    needles: tuple[tuple[str, ...], ...]  # each tuple: one stderr line must hold all of them
    flags: tuple[str, ...] = ()
    baseline: str = "base"  # or a candidate's name: that run is the baseline, the real run the candidate


def _rerun(res: dict[str, Any], _: list[dict[str, Any]]) -> None:
    res["run_id"] += "-rerun"  # the same numbers from another run (the very same run is not comparable)


CASES: dict[str, Case] = {
    "identical": Case(_rerun, ()),
    "interrupted": Case(_interrupted, (("candidate", "status is 'interrupted', not 'finished'"),),
                        ("--allow-incomparable",)),  # data integrity, not provenance: not forgiven
    "missing_task": Case(_missing_task, (("lacks 1 of the 3 tasks", "truthfulqa_mc2"),)),
    "missing_metric": Case(_missing_metric, (("lacks 1 metric", "hellaswag/acc_norm"),)),
    "nan_metric": Case(_nan_metric, (("NaN/inf", "hellaswag/acc = nan"),)),
    "nan_doc": Case(_nan_doc, (("per-document scores are NaN/inf", "truthfulqa_mc2/mc2 (1 of 5 documents)"),)),
    "edited_value": Case(_edited_value, (("results.json disagrees with samples.jsonl.gz", "mmlu_anatomy/acc = "),)),
    "dropped_docs": Case(_dropped_docs, (("n disagrees with samples.jsonl.gz", "hellaswag: n=5 vs 3 documents"),)),
    "empty_task": Case(_empty_task, (("candidate", "scored no documents", "mmlu_anatomy (n=0)"),),
                       ("--allow-incomparable",)),
    "dup_doc_id": Case(_dup_doc_id, (("duplicate document ids", "mmlu_anatomy", "anatomy/test/1"),)),
    "extra_task": Case(_extra_task, (("not in results.json", "bogus_task (1 rows)"),)),
    "binary_out_of_range": Case(_binary_out_of_range, (("outside {0, 1}", "mmlu_anatomy/acc (2 of 5 documents)"),)),
    # baseline side: a task with 0 documents in either run is partial
    "empty_baseline_task": Case(_empty_task, (("baseline", "scored no documents", "mmlu_anatomy (n=0)"),),
                                baseline="empty_task"),
    # a policy naming a metric the baseline lacks: nothing to gate it against (was an "unknown metric" error)
    "policy_names_missing": Case(_missing_metric, (("baseline", "lacks what the policy gates",
                                                    "hellaswag/acc_norm (policy.yaml:2)"),),
                                 ("--policy", "policy.yaml"), baseline="missing_metric"),
}


def _write_run(src: Path, dst: Path, edit: Edit | None) -> Path:
    shutil.copytree(src, dst)
    res, samples = load_results(dst), load_samples(dst)
    if edit is not None:
        edit(res, samples)
    (dst / "results.json").write_text(json.dumps(res, indent=2), encoding="utf-8")
    with gzip.open(dst / "samples.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(s) + "\n" for s in samples)
    return dst


@dataclass
class Gated:
    root: Path
    base: Path
    procs: dict[str, Background]

    def result(self, name: str) -> CompletedProcess[str]:
        return self.procs[name].result()


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, benchmarks_dir: Path) -> Iterator[Gated]:
    root = tmp_path_factory.mktemp("gate-integrity")
    write_suite(root / "suite.yaml", suite_dict(tiny_checkpoint, benchmarks_dir, limit=LIMIT, tasks=TASKS,
                                                tracking={"enabled": False}))
    proc = run_cli(root, "run", "suite.yaml", "--no-tracking")
    assert proc.returncode == 0, show(proc)
    base = only_run_dir(root / "reports")
    assert load_results(base)["status"] == "finished"
    (root / "policy.yaml").write_text("rules:\n  - {task: hellaswag, metric: acc_norm}\n", encoding="utf-8")
    runs = {name: _write_run(base, root / "runs" / name, case.edit) for name, case in CASES.items()}
    runs["base"] = base
    procs = {}
    for name, case in CASES.items():
        baseline, candidate = runs[case.baseline], (base if case.baseline != "base" else runs[name])
        procs[name] = Background(root, "gate", "--baseline", baseline, "--candidate", candidate, *case.flags,
                                 "--markdown", f"out/{name}.md", "--json", f"out/{name}.json", "--n-boot", "200")
    newer = _write_run(base, root / "runs" / "newer_schema", None)
    res = load_results(newer)
    res["schema_version"] = SCHEMA_VERSION + 1
    (newer / "results.json").write_text(json.dumps(res), encoding="utf-8")
    procs["newer_schema"] = Background(root, "gate", "--baseline", base, "--candidate", newer, "--n-boot", "200")
    procs["same_run"] = Background(root, "gate", "--baseline", base, "--candidate", _write_run(base, root / "runs" /
                                   "copy", None), "--n-boot", "200")
    yield Gated(root, base, procs)
    for p in procs.values():
        p.stop()


def _reason_lines(proc: CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("NOT COMPARABLE")]


@pytest.mark.parametrize("name", [n for n in CASES if n != "identical"])
def test_partial_or_corrupt_candidate_is_not_comparable(gated: Gated, name: str) -> None:
    proc = gated.result(name)
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "runs are not comparable" in errors[0], show(proc)
    reasons = _reason_lines(proc)
    for needles in CASES[name].needles:  # one line per reason, naming what is wrong
        assert any(all(n in line for n in needles) for line in reasons), f"{needles} not on one line:\n{show(proc)}"
    md = (gated.root / "out" / f"{name}.md").read_text(encoding="utf-8")
    assert "## evalmon gate: ⚠️ NOT COMPARABLE" in md and "### Not comparable" in md
    assert all(n in md for n in CASES[name].needles[0][1:]), md
    verdict = json.loads((gated.root / "out" / f"{name}.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "not_comparable" and verdict["exit_code"] == 2
    assert any(i["blocking"] and i["integrity"] for i in verdict["issues"])


def test_the_same_run_on_both_sides_is_not_comparable(gated: Gated) -> None:
    """A CI step whose --baseline and --candidate name one run (here a copy of its folder) compared nothing and
    passed."""
    proc = gated.result("same_run")
    assert proc.returncode == 2, show(proc)
    assert any("are the same run" in line for line in _reason_lines(proc)), show(proc)


def test_identical_finished_candidate_passes(gated: Gated) -> None:
    proc = gated.result("identical")
    assert proc.returncode == 0, show(proc)
    assert not _reason_lines(proc) and "error:" not in proc.stderr, show(proc)
    verdict = json.loads((gated.root / "out" / "identical.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "pass" and len(verdict["metrics"]) == 4  # acc, acc_norm, acc, mc2


def test_compare_shows_a_partial_run_loudly(gated: Gated) -> None:
    """compare prints/writes the whole comparison, then exits 2 on an integrity issue (was: exit 0)."""
    cand = gated.root / "runs" / "missing_task"
    proc = run_cli(gated.root, "compare", gated.base, cand, "--format", "md")
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    reasons = _reason_lines(proc)
    assert any("lacks 1 of the 3 tasks" in line and "truthfulqa_mc2" in line for line in reasons), show(proc)
    assert "**not comparable** (run): candidate" in proc.stdout and "hellaswag" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not comparable" in errors[0], show(proc)
    out = gated.root / "out" / "compare-empty.json"
    proc = run_cli(gated.root, "compare", gated.base, gated.root / "runs" / "empty_task", "--format", "json",
                   "-o", out)
    assert proc.returncode == 2 and "scored no documents" in proc.stderr, show(proc)
    assert json.loads(out.read_text(encoding="utf-8"))["metrics"], out.read_text(encoding="utf-8")


def test_newer_schema_is_refused(gated: Gated) -> None:
    proc = gated.result("newer_schema")
    assert proc.returncode == 2, show(proc)
    assert_no_traceback(proc)
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, show(proc)
    assert f"written by a newer evalmon (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION})" in proc.stderr
    assert "upgrade evalmon" in proc.stderr and "newer_schema" in proc.stderr, show(proc)


def test_mlflow_run_status_counts(gated: Gated, mlflow_server: str) -> None:
    """A candidate whose MLflow run is FAILED is partial even when its results.json says finished."""
    from mlflow import MlflowClient

    from evalmon.core.results import RunResult
    from evalmon.sinks import mlflow as tracking

    exp = f"gate-integrity-{uuid.uuid4().hex[:8]}"
    rids = {}
    for name in ("base", "cand"):
        run_dir = shutil.copytree(gated.base, gated.root / "mlflow" / name)
        out = tracking.log_run(RunResult.load(run_dir), run_dir, mlflow_server, exp, samples_table=False)
        assert out["status"] == "logged", out
        rids[name] = str(out["run_id"])
    MlflowClient(tracking_uri=mlflow_server).set_terminated(rids["cand"], "FAILED")
    proc = run_cli(gated.root, "gate", "--baseline", f"mlflow:{rids['base']}", "--candidate", f"mlflow:{rids['cand']}",
                   "--markdown", "out/mlflow.md", "--n-boot", "200", env=cli_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert proc.returncode == 2, show(proc)
    assert any(f"MLflow run {rids['cand']} status is FAILED, not FINISHED" in line
               for line in _reason_lines(proc)), show(proc)
    assert "status is FAILED" in (gated.root / "out" / "mlflow.md").read_text(encoding="utf-8")
