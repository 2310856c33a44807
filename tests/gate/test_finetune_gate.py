"""examples/finetune-gate on the real SmolLM2: train a LoRA adapter → evaluate base and base + adapter → gate.

The e2e test runs the example's own ``run.sh`` reduced (3 training steps, 8 MedMCQA documents) with the real
``evalmon`` CLI; the full run and its numbers are in examples/finetune-gate/README.md. The unit tests check
that the held-out proof in ``heldout.py`` fails when a training row leaks into the evaluation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_util import cli_env, load_results, load_samples, only_run_dir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finetune-gate"
SUITE = EXAMPLE.parents[1] / "suites" / "medical.yaml"


@pytest.fixture(scope="module")
def heldout():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import heldout as module
    finally:
        sys.path.remove(str(EXAMPLE))
    return module


@pytest.fixture(scope="module")
def evaluated50(heldout):
    """What ``evalmon run suites/medical.yaml --limit 50`` evaluates, and the suite's data dir."""
    return heldout.evaluated(SUITE, 50)


@pytest.mark.e2e
def test_finetune_evaluate_gate_pipeline(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = cli_env(STEPS="3", BATCH="4", LIMIT="8", TASKS="medmcqa", BASE=str(smollm2_checkpoint),
                  PYTHON=sys.executable, EVALMON=f"{sys.executable} -m evalmon.cli")
    proc = subprocess.run(["bash", str(EXAMPLE / "run.sh"), str(out)], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    shown = f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    assert "Traceback" not in proc.stderr, shown

    # training: held out from exactly what the runs evaluate, loss logged, adapter saved
    log = json.loads((out / "adapter" / "train_log.json").read_text(encoding="utf-8"))
    proof = log["overlap_proof"]
    assert proof["evaluated_medmcqa"] == 8 and proof["training_rows"] > 3000, proof
    assert proof["shared_ids"] == proof["shared_question_texts"] == proof["shared_prompts"] == 0, proof
    assert [p["step"] for p in log["loss_curve"]][-1] == 3 and log["settings"]["eval_limit"] == 8, log
    assert (out / "adapter" / "adapter_config.json").is_file(), shown

    # evaluation: both runs finished on the same documents; the candidate's provenance names this adapter
    base_run, cand_run = only_run_dir(out / "base"), only_run_dir(out / "candidate")
    base, cand = load_results(base_run), load_results(cand_run)
    assert base["status"] == cand["status"] == "finished", shown
    assert base["model"]["adapter"] is None and base["model"]["adapter_hash"] is None
    assert Path(cand["model"]["adapter"]) == (out / "adapter").resolve(), cand["model"]
    from evalmon.backends.hf.identity import weights_fingerprint

    assert cand["model"]["adapter_hash"] == weights_fingerprint(out / "adapter"), cand["model"]
    assert cand["model"]["weights_hash"] == base["model"]["weights_hash"]
    base_ll = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(base_run)}
    cand_ll = {s["doc_id"]: s["loglikelihoods"] for s in load_samples(cand_run)}
    assert base_ll.keys() == cand_ll.keys() and len(base_ll) == 8
    assert any(b != c for d in base_ll for b, c in zip(base_ll[d], cand_ll[d], strict=True)), \
        "the adapter did not change a single loglikelihood: it was not applied"

    # gate: paired statistics on every gated metric, and the exit code its verdict implies
    gate = json.loads((out / "gate.json").read_text(encoding="utf-8"))
    gated = {m["key"]: m for m in gate["metrics"]}
    assert set(gated) == {"medmcqa/acc"}, sorted(gated)  # gates.yaml gates acc only
    for m in gated.values():
        c = m["comparison"]
        assert c["paired"] and c["test"] == "mcnemar-exact" and c["n"] == 8, m
        assert 0.0 <= m["p_holm"] <= 1.0 and m["status"], m
    expected = 1 if any(m["failed"] for m in gated.values()) else 0
    assert gate["exit_code"] == expected and proc.returncode == expected, shown
    assert (out / "compare.md").read_text(encoding="utf-8").count("medmcqa") >= 2
    assert f"gate exit code {expected}" in proc.stdout, shown
    picks = json.loads((out / "predictions.json").read_text(encoding="utf-8"))["medmcqa"]
    assert picks["n"] == 8 and sum(picks["baseline_picks"].values()) == sum(picks["candidate_picks"].values()) == 8


@pytest.mark.unit
def test_heldout_rows_are_disjoint_from_the_evaluated_head(heldout, evaluated50) -> None:
    ev, data_dir = evaluated50
    train = heldout.training_rows(ev, data_dir, 50)
    proof = heldout.assert_disjoint(train, ev)
    assert proof["evaluated_medmcqa"] == 50 and proof["shared_ids"] == 0
    # every evaluated MedMCQA question is found by the same check that clears the training rows
    from evalmon.tasks.medical import MEDMCQA, load_rows

    head = load_rows(MEDMCQA, data_dir).rows[:50]
    assert all(ev.contains(r["question"]) for r in head)


@pytest.mark.unit
@pytest.mark.parametrize(("leak", "message"), [("same_row", "share ids"),
                                               ("same_question_new_id", "occur in evaluated prompts")])
def test_heldout_proof_fails_on_a_leaked_row(heldout, evaluated50, leak: str, message: str) -> None:
    ev, data_dir = evaluated50
    train = heldout.training_rows(ev, data_dir, 50)
    from evalmon.tasks.medical import MEDMCQA, load_rows

    rows = load_rows(MEDMCQA, data_dir)
    evaluated_row = {**rows.rows[7], "id": rows.ids[7]}
    if leak == "same_question_new_id":  # MedMCQA repeats questions under other ids
        evaluated_row = {**evaluated_row, "id": "fresh-id", "question": "  " + evaluated_row["question"].upper()}
    train.rows.append(evaluated_row)
    with pytest.raises(AssertionError, match=message):
        heldout.assert_disjoint(train, ev)


@pytest.mark.unit
def test_render_example_is_the_evaluated_prompt_with_the_gold_letter_moved(heldout, benchmarks_dir: Path) -> None:
    import random

    from evalmon.tasks.base import TaskOptions, build_task
    from evalmon.tasks.medical import MEDMCQA, load_rows

    task = build_task("medmcqa", TaskOptions(data_dir=benchmarks_dir, limit=1))
    row = load_rows(MEDMCQA, benchmarks_dir).rows[0]
    ctx, cont = heldout.render_example(row, random.Random(0))
    evaluated = task.context(task.docs()[0])
    assert ctx.split("\nChoices:\n")[0] == evaluated.split("\nChoices:\n")[0]
    options = [line[3:] for line in ctx.split("\nChoices:\n")[1].splitlines()[:4]]
    assert sorted(options) == sorted(line[3:] for line in evaluated.split("\nChoices:\n")[1].splitlines()[:4])
    assert ctx.endswith("\nAnswer:") and cont in (" A", " B", " C", " D")
    gold_text = [row["opa"], row["opb"], row["opc"], row["opd"]][row["cop"]]
    assert f"\n{cont.strip()}. {gold_text}\n" in ctx
