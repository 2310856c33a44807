"""examples/ci/eval-gate.yml, run as GitHub Actions would run it: the workflow's own ``run:`` scripts, parsed out
of the YAML (so this breaks when the workflow changes), in sequence, with its ``env:`` block and a real
``mlflow server`` behind ``MLFLOW_TRACKING_URI`` — first run (no baseline yet: passes by ``--if-no-baseline
pass``), promote, then a regression run (exit 1, verdict in gate.md and the job summary). Only the candidate
checkpoint (the tiny one, then a re-initialised copy of it) and the suite file behind ``$SUITE`` are the
test's. The unit tests check what the gate writes when it cannot give a verdict (exit 2)."""

from __future__ import annotations

import bz2
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_util import cli_env, only_run_dir

from evalmon.cli.gate import gate_cmd
from evalmon.core.errors import ConfigError, TrackingError

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "eval-gate.yml"
N_DOCS = 40


def _steps() -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = {s["name"]: s for s in wf["jobs"]["gate"]["steps"] if "name" in s}
    return wf["env"], steps


def _expr(text: str, context: dict[str, str]) -> str:
    """``${{ a || b }}`` → the first non-empty of the context's values (what the workflow uses)."""
    def one(m: re.Match[str]) -> str:
        for term in m[1].split("||"):
            value = context.get(term.strip(), "")
            if value:
                return value
        return ""
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, text)


def _hellaswag_data(data_dir: Path, tokenizer_dir: Path) -> None:
    """A HellaSwag-format file (the local klosax export) the trained tiny model answers well: the gold
    ending is English text from the tiny model's own training corpus, the three distractors are random
    vocabulary tokens (as many as the gold ending's), so a model that learnt nothing is at chance."""
    from transformers import AutoTokenizer

    from evalmon.checkpoints.tiny import corpus_texts

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    words = " ".join(corpus_texts(200_000)).split()
    rng = random.Random(13)
    lines: list[str] = []
    for i in range(N_DOCS):
        start = 50 + i * 97
        ctx, gold = " ".join(words[start:start + 12]), " ".join(words[start + 12:start + 20])
        n = len(tok(" " + gold, add_special_tokens=False)["input_ids"])
        junk = [tok.decode([rng.randrange(300, len(tok)) for _ in range(n)]).replace("\n", " ").strip()
                for _ in range(3)]
        label = i % 4
        endings = [*junk[:label], gold, *junk[label:]]
        lines += [f"Docs: {ctx}", str(label), *endings]
    path = data_dir / "hellaswag" / "klosax-hellaswag_text_data" / "hellaswag_val_full.txt.bz2"
    path.parent.mkdir(parents=True)
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode("utf-8")))


def _reinitialised(checkpoint: Path, out: Path) -> Path:
    """The same tokenizer and architecture with fresh random weights: a candidate that learnt nothing."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copytree(checkpoint, out)
    torch.manual_seed(99)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint)).save_pretrained(out)
    return out


class Runner:
    """Runs one workflow step's ``run:`` script like Actions does (bash -eo pipefail, $GITHUB_ENV)."""

    def __init__(self, ws: Path, env: dict[str, str], steps: dict[str, dict[str, Any]]) -> None:
        self.ws, self.env, self.steps = ws, env, steps

    def __call__(self, name: str) -> subprocess.CompletedProcess[str]:
        script = self.steps[name]["run"]
        assert "${{" not in script, f"step {name!r} uses an expression this test does not evaluate"
        github_env = self.ws / ".github_env"
        github_env.write_text("", encoding="utf-8")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=self.ws,
                              env={**self.env, "GITHUB_ENV": str(github_env)}, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        for line in github_env.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value
        return proc


def show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


@pytest.mark.e2e
def test_workflow_commands_first_run_promote_regression(tiny_checkpoint: Path, mlflow_server: str,
                                                        benchmarks_dir: Path, tmp_path: Path) -> None:
    wf_env, steps = _steps()
    ws = tmp_path / "workspace"  # the checkout: the policy file at the path the workflow names
    (ws / "examples" / "ci").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "ci" / "gates.yaml", ws / "examples" / "ci" / "gates.yaml")
    context = {"github.workspace": str(ws), "inputs.candidate": "", "vars.CANDIDATE_CHECKPOINT": str(tiny_checkpoint),
               "secrets.MLFLOW_TRACKING_URI": mlflow_server}
    env = {k: _expr(str(v), context) for k, v in wf_env.items()}
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server and env["CANDIDATE"] == str(tiny_checkpoint)
    summary = tmp_path / "step_summary.md"
    env = {**cli_env(), **env, "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    data = Path(env["EVALMON_DATA_DIR"])
    _hellaswag_data(data, tiny_checkpoint)
    for task in ("truthfulqa", "medqa"):  # the other tasks gates.yaml names, from the shared mirror
        (data / task).symlink_to(benchmarks_dir / task)
    suite = ws / env["SUITE"]  # the suite behind $SUITE: small and fast instead of suites/smoke.yaml
    suite.parent.mkdir(parents=True)
    suite.write_text(yaml.safe_dump({
        "name": "smoke", "model": {"backend": "hf", "path": str(tiny_checkpoint), "dtype": "float32",
                                   "batch_size": 8},
        "data": {"data_dir": "${EVALMON_DATA_DIR}"}, "limit": N_DOCS, "tracking": {"experiment": "evalmon-smoke"},
        "tasks": ["hellaswag", {"name": "truthfulqa_mc2", "limit": 4}, {"name": "medqa", "limit": 4}]}),
        encoding="utf-8")
    run = Runner(ws, env, steps)

    # 1. first run: evaluated into the team server (only MLFLOW_TRACKING_URI set), no baseline yet → pass
    proc = run("Evaluate the candidate")
    assert proc.returncode == 0, show(proc)
    assert f"MLflow: {mlflow_server} (from $MLFLOW_TRACKING_URI), experiment 'evalmon-smoke'" in proc.stderr
    assert not (ws / ".evalmon" / "mlflow.db").exists(), "logged to a throwaway local store"
    first = ws / env["RUN_DIR"]  # relative, as the workflow's `ls -td ci-reports/*/` writes it
    assert first.resolve() == only_run_dir(ws / "ci-reports").resolve()
    cached = [p for p in steps["Restore benchmark data, model downloads and the response cache"]["with"]["path"]
              .split() if p.endswith(".sqlite")]
    assert cached and all((ws / p).is_file() for p in cached), f"the workflow caches {cached}, not the cache"
    logged = json.loads((first / "results.json").read_text(encoding="utf-8"))["mlflow"]
    assert logged["status"] == "logged" and logged["tracking_uri"] == mlflow_server, logged
    tasks = json.loads((first / "results.json").read_text())["tasks"]
    baseline_acc = tasks["hellaswag"]["metrics"]["acc"]["value"]
    assert baseline_acc >= 0.7, baseline_acc  # the data is built so the trained tiny model does well

    proc = run("Gate against the promoted baseline")
    assert proc.returncode == 0, show(proc)
    assert f"MLflow: {mlflow_server} (from $MLFLOW_TRACKING_URI)" in proc.stderr
    assert "no baseline yet" in proc.stderr, show(proc)
    gate_md = (ws / "gate.md").read_text(encoding="utf-8")
    assert "PASS (no baseline yet" in gate_md and "evalmon-smoke" in gate_md, gate_md
    assert summary.read_text(encoding="utf-8").count("no baseline yet") == 1
    assert json.loads((ws / "gate.json").read_text())["verdict"] == "no_baseline"

    # 2. promote (the workflow's last step, on main with promote: true): says where it tagged
    proc = run("Promote the candidate to baseline")
    assert proc.returncode == 0, show(proc)
    out = " ".join(proc.stdout.split())
    assert f"promoted MLflow run {logged['run_id']}" in out and "experiment 'evalmon-smoke'" in out, out
    assert mlflow_server in out, out

    # 3. a regression: the same architecture and tokenizer, weights that learnt nothing → exit 1
    env["CANDIDATE"] = str(_reinitialised(tiny_checkpoint, tmp_path / "untrained"))
    proc = run("Evaluate the candidate")
    assert proc.returncode == 0, show(proc)
    assert (ws / env["RUN_DIR"]).resolve() != first.resolve()
    proc = run("Gate against the promoted baseline")
    assert proc.returncode == 1, show(proc)
    verdict = json.loads((ws / "gate.json").read_text(encoding="utf-8"))
    failed = [m["key"] for m in verdict["metrics"] if m["failed"]]
    assert "hellaswag/acc" in failed, verdict["metrics"]  # (medqa's floor may fail too: 4 documents)
    gate_md = (ws / "gate.md").read_text(encoding="utf-8")
    assert "hellaswag/acc" in gate_md and "FAIL" in gate_md.upper(), gate_md
    step_summary = summary.read_text(encoding="utf-8")
    assert step_summary.count("hellaswag/acc") >= 1 and gate_md.strip() in step_summary


# --------------------------------------------------------------------------- exit 2 still explains itself
def test_gate_error_still_writes_markdown_json_and_step_summary(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md, js = tmp_path / "gate.md", tmp_path / "gate.json"
    with pytest.raises(ConfigError, match="no such results directory"):
        gate_cmd(str(tmp_path / "missing-baseline"), str(tmp_path / "missing-candidate"), policy=None,
                 json_out=js, markdown_out=md, alpha=None, tracking_uri=None, seed=1, n_boot=100,
                 allow_incomparable=False, if_no_baseline="pass")
    text = md.read_text(encoding="utf-8")
    assert "ERROR (exit 2" in text and "missing-baseline: no such results directory" in text, text
    assert summary.read_text(encoding="utf-8").startswith("earlier step\n") and text in summary.read_text()
    assert json.loads(js.read_text())["exit_code"] == 2


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_gate_error_markdown_hides_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    md = tmp_path / "gate.md"
    with pytest.raises(TrackingError, match="unreachable"):  # port 9 (discard) answers nothing here
        gate_cmd("mlflow:experiment=x,tag.baseline=true", str(tmp_path / "nope"), policy=None, json_out=None,
                 markdown_out=md, alpha=None, tracking_uri="http://bob:hunter2@127.0.0.1:9", seed=1, n_boot=100,
                 allow_incomparable=False)
    text = md.read_text(encoding="utf-8")
    assert "unreachable" in text and "127.0.0.1:9" in text and "hunter2" not in text, text
