"""Many adapters through the real CLI on the real SmolLM2-135M-Instruct: two LoRA adapters in one run → results
for base and both (same documents), the ranked adapter table printed first, reports/<run>/adapters/<name>/,
and ``evalmon gate --baseline RUN#base --candidate RUN#a`` gating one adapter against the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adapters_util import make_lora
from cli_util import (
    assert_no_traceback,
    cli_env,
    load_results,
    load_samples,
    only_run_dir,
    run_cli,
    show,
    write_suite,
)

pytestmark = pytest.mark.e2e


def test_two_adapters_one_run_then_gate(smollm2_checkpoint: Path, benchmarks_dir: Path, tmp_path: Path) -> None:
    loras = {n: make_lora(smollm2_checkpoint, tmp_path / "loras" / n, seed, alpha=32)
             for n, seed in (("a", 31), ("b", 32))}
    suite = write_suite(tmp_path / "suite.yaml", {
        "name": "adapters-e2e", "model": {"path": str(smollm2_checkpoint), "batch_size": 8},
        "data": {"data_dir": str(benchmarks_dir)}, "output_dir": str(tmp_path / "reports"),
        "tracking": {"enabled": False}, "tasks": [{"name": "hellaswag", "limit": 16}]})
    env = cli_env(EVALMON_CACHE_DIR=str(tmp_path / "evalmon-cache"), COLUMNS="200")
    proc = run_cli(tmp_path, "run", suite, "--adapters", "a=loras/a,b=loras/b", env=env)
    assert proc.returncode == 0, show(proc)
    assert_no_traceback(proc)
    out = proc.stdout
    assert "adapters, ranked" in out and out.index("adapters, ranked") < out.index("adapters-e2e ·"), show(proc)
    run_dir = only_run_dir(tmp_path / "reports")
    base = load_results(run_dir)
    assert base["model"]["adapter"] is None and base["adapters"]["variants"] == ["base", "a", "b"]
    assert {r["adapter"] for r in base["adapters"]["ranking"]} == {"a", "b"}
    base_docs = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(run_dir)}
    for name, path in loras.items():
        variant = load_results(run_dir / "adapters" / name)
        assert variant["status"] == "finished" and Path(variant["model"]["adapter"]) == path.resolve()
        docs = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(run_dir / "adapters" / name)}
        assert docs.keys() == base_docs.keys(), name  # paired: the same documents
        assert docs != base_docs, f"adapter {name} changed no loglikelihood: it was not applied"
    assert (run_dir / "summary.md").read_text().index("Adapters, ranked") < \
        (run_dir / "summary.md").read_text().index("| task | metric |")

    verdict = tmp_path / "verdict.json"
    gate = run_cli(tmp_path, "gate", "--baseline", f"{run_dir}#base", "--candidate", f"{run_dir}#a",
                   "--json", verdict, env=env)
    assert gate.returncode in (0, 1), show(gate)  # pass or regression: comparable, never exit 2
    data = json.loads(verdict.read_text())
    text = json.dumps(data)
    assert f"{base['run_id']}#a" in text and "mcnemar-exact" in text, text[:2000]
    bad = run_cli(tmp_path, "gate", "--baseline", f"{run_dir}#base", "--candidate", f"{run_dir}#zz", env=env)
    assert bad.returncode == 2 and "has no adapter 'zz'" in bad.stderr, show(bad)
