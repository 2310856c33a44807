"""lm-eval results interop: lm-eval output dirs as RUNs for compare/gate, `evalmon export --format lm-eval`.

The round trip runs real lm-eval (``simple_evaluate`` on the tiny checkpoint, HellaSwag limit 8 on the local
mirror, written by lm-eval's own ``EvaluationTracker``) and evalmon on the same rows; the unit tests use
small hand-written lm-eval files (the layout lm-eval 0.4.13 writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parity_util import export

from evalmon.core.errors import ConfigError
from evalmon.gate.compare import compare
from evalmon.gate.resolve import resolve_run
from evalmon.sinks.lmeval import find_results, read_lmeval, write_lmeval

N = 8


# --------------------------------------------------------------------------- real lm-eval, real evalmon
@pytest.fixture(scope="module")
def runs(tiny_checkpoint: Path, benchmarks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """lm-eval's output dir (results_*.json + samples) and evalmon's run dir on the same 8 HellaSwag rows."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalmon.config.suite import SuiteConfig, apply_overrides
    from evalmon.harness.run import run_suite

    tmp = tmp_path_factory.mktemp("lmeval_interop")
    names = export({"hellaswag": N}, benchmarks_dir, tmp / "tasks")
    hflm = HFLM(pretrained=str(tiny_checkpoint), batch_size=8, dtype="float32", device="cpu")
    out = lm_eval.simple_evaluate(model=hflm, tasks=list(names.values()), log_samples=True,
                                  task_manager=TaskManager(include_path=str(tmp / "tasks"), include_defaults=False),
                                  bootstrap_iters=1000, random_seed=0, numpy_random_seed=1234, torch_random_seed=1234)
    tracker = EvaluationTracker(output_path=str(tmp / "lmeval"))
    samples = out.pop("samples")
    tracker.save_results_aggregated(results=out, samples=samples)
    for task in out["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    cfg = SuiteConfig.model_validate({
        "name": "lmeval-interop", "output_dir": str(tmp / "reports"), "data": {"data_dir": str(benchmarks_dir)},
        "model": {"backend": "hf", "path": str(tiny_checkpoint), "device": "cpu", "dtype": "float32",
                  "batch_size": 8},
        "tasks": [{"name": "hellaswag", "limit": N}]})
    result = run_suite(apply_overrides(cfg, no_tracking=True))
    return {"lmeval": tmp / "lmeval", "evalmon": tmp / "reports" / result.run_id, "tmp": tmp}


def test_gate_reads_real_lmeval_output_paired(runs: dict[str, Path]) -> None:
    import evalmon.gate

    verdict = evalmon.gate(str(runs["lmeval"]), str(runs["evalmon"]))  # type: ignore[operator]
    assert verdict.exit_code == 0, [i.message for i in verdict.issues if i.blocking]
    by_key = {m.key: m.comparison for m in verdict.metrics}
    assert set(by_key) == {"hellaswag/acc", "hellaswag/acc_norm"}
    for m in by_key.values():
        assert m.paired and m.test == "mcnemar-exact" and m.n == N
        assert m.baseline == m.candidate and m.delta == 0.0
    baseline = resolve_run(str(runs["lmeval"]))
    assert baseline.origin.startswith("lm-eval output") and not baseline.notes
    assert [s.doc_id for s in baseline.samples or []] == [f"validation/{i}" for i in range(N)]
    ours = resolve_run(str(runs["evalmon"]))
    # same prompts (lm-eval's sha256 of the first context = evalmon's prompt hash) and loglikelihoods
    assert [s.prompt_hash for s in baseline.samples or []] == [s.prompt_hash for s in ours.samples or []]
    for a, b in zip(baseline.samples or [], ours.samples or [], strict=True):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-4)
    # lm-eval's results_*.json alone is a RUN too; without its samples file the test falls back to unpaired
    results = find_results(runs["lmeval"])
    assert results is not None
    lone = runs["tmp"] / "lone"
    lone.mkdir()
    (lone / results.name).write_text(results.read_text(encoding="utf-8"), encoding="utf-8")
    unpaired = compare(resolve_run(str(lone / results.name)), ours)
    assert unpaired.metrics and not any(m.paired for m in unpaired.metrics)
    assert any("samples_evalmon_parity_hellaswag_*.jsonl is missing" in i.message for i in unpaired.issues)


def test_export_round_trips_through_the_reader(runs: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from evalmon.cli.app import app

    out = runs["tmp"] / "exported"
    res = CliRunner().invoke(app, ["export", str(runs["evalmon"]), "--format", "lm-eval", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ours = resolve_run(str(runs["evalmon"]))
    back = resolve_run(str(out))
    assert back.result.tasks["hellaswag"].metrics == ours.result.tasks["hellaswag"].metrics
    assert back.result.run_id == ours.result.run_id and back.result.model == ours.result.model
    assert [s.scores for s in back.samples or []] == [s.scores for s in ours.samples or []]
    assert [s.doc_id for s in back.samples or []] == [s.doc_id for s in ours.samples or []]
    # lm-eval's layout: what lm-eval itself wrote for the same rows has the same keys and numbers
    mine = json.loads(next(out.glob("*/results_*.json")).read_text(encoding="utf-8"))
    lm_file = find_results(runs["lmeval"])
    assert lm_file is not None
    theirs = json.loads(lm_file.read_text(encoding="utf-8"))
    for key in ("results", "configs", "versions", "n-shot", "n-samples", "higher_is_better", "config",
                "group_subtasks"):
        assert key in mine, key
    their_block = theirs["results"]["evalmon_parity_hellaswag"]
    for metric in ("acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none"):
        assert mine["results"]["hellaswag"][metric] == pytest.approx(their_block[metric], abs=1e-12), metric
    assert mine["n-samples"]["hellaswag"] == {"original": N, "effective": N}
    line = json.loads(next(out.glob("*/samples_hellaswag_*.jsonl")).read_text(encoding="utf-8").splitlines()[0])
    their_line = json.loads(next(runs["lmeval"].glob("*/samples_*.jsonl")).read_text(encoding="utf-8")
                            .splitlines()[0])
    assert line["doc_id"] == their_line["doc_id"] == 0
    assert line["acc"] == their_line["acc"] and line["prompt_hash"] == their_line["prompt_hash"][:16]
    # and evalmon gates against its own export: paired, no difference
    verdict = compare(back, ours)
    assert all(m.paired and m.delta == 0.0 for m in verdict.metrics)


# --------------------------------------------------------------------------- hand-written lm-eval files
def _lmeval_dir(tmp: Path, *, samples: bool = True) -> Path:
    folder = tmp / "out" / "org__model"
    folder.mkdir(parents=True)
    doc: dict[str, Any] = {
        "results": {"truthfulqa_mc2": {"alias": "truthfulqa_mc2", "acc,none": 0.5, "acc_stderr,none": 0.25},
                    "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.5,
                              "exact_match_stderr,strict-match": 0.5}},
        "group_subtasks": {"truthfulqa_mc2": [], "gsm8k": []},
        "configs": {"truthfulqa_mc2": {"task": "truthfulqa_mc2", "validation_split": "validation",
                                       "dataset_path": "truthful_qa", "num_fewshot": 0},
                    "gsm8k": {"task": "gsm8k", "test_split": "test", "dataset_path": "gsm8k", "num_fewshot": 5}},
        "n-shot": {"truthfulqa_mc2": 0, "gsm8k": 5},
        "n-samples": {"truthfulqa_mc2": {"original": 817, "effective": 2}, "gsm8k": {"original": 9, "effective": 2}},
        "higher_is_better": {"truthfulqa_mc2": {"acc": True}, "gsm8k": {"exact_match": True}},
        "config": {"model": "hf", "model_args": "pretrained=org/model,add_bos_token=True", "model_dtype": "torch.bfloat16"},
        "model_name": "org/model", "lm_eval_version": "0.4.13", "date": 1796554311.0,
    }
    (folder / "results_2026-12-06T10-00-00.json").write_text(json.dumps(doc), encoding="utf-8")
    if samples:
        rows = [{"doc_id": i, "doc": {}, "target": "0", "arguments": {"gen_args_0": {"arg_0": f"Q{i}", "arg_1": " a"}},
                 "filtered_resps": [["-1.5", "True"], ["-2.5", "False"]], "metrics": ["acc"], "acc": v}
                for i, v in enumerate((0.25, 0.75))]
        (folder / "samples_truthfulqa_mc2_2026-12-06T10-00-00.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tmp / "out"


def test_reader_maps_names_metrics_and_model(tmp_path: Path) -> None:
    run = resolve_run(str(_lmeval_dir(tmp_path)))
    mc2, gsm = run.result.tasks["truthfulqa_mc2"], run.result.tasks["gsm8k"]
    assert mc2.metrics["mc2"].value == 0.5 and mc2.metrics["mc2"].stderr == 0.25
    assert mc2.metric_kinds["mc2"] == "continuous" and mc2.n == 2 and mc2.config_hash.startswith("lm-eval:")
    assert set(gsm.metrics) == {"exact_match_strict_match"} and gsm.num_fewshot == 5
    assert run.result.model["bos_policy"] == "always" and run.result.model["dtype"] == "bfloat16"
    assert run.result.model["model"] == "org/model" and run.result.status == "finished"
    records = [s for s in run.samples or [] if s.task == "truthfulqa_mc2"]
    assert [s.doc_id for s in records] == ["validation/0", "validation/1"]
    assert [s.scores["mc2"] for s in records] == [0.25, 0.75]
    assert records[0].loglikelihoods == [-1.5, -2.5] and records[0].is_greedy == [True, False]
    assert run.notes == [f"{tmp_path / 'out' / 'org__model'}/samples_gsm8k_*.jsonl is missing: per-document "
                         "samples unavailable, tests fall back to unpaired"]


def test_reader_without_samples_is_unpaired(tmp_path: Path) -> None:
    results, samples, notes = read_lmeval(find_results(_lmeval_dir(tmp_path, samples=False)) or Path())
    assert samples is None and len(notes) == 2 and set(results.tasks) == {"truthfulqa_mc2", "gsm8k"}


def test_reader_does_not_take_the_samples_of_a_task_whose_name_extends_this_one(tmp_path: Path) -> None:
    """Hostile walk (walk-score): ``samples_gsm8k_*.jsonl`` also globbed ``samples_gsm8k_cot_<date>.jsonl``, so
    gsm8k was paired on gsm8k_cot's per-document scores (lm-eval has lambada_openai / lambada_openai_cloze_yaml,
    evalmon pubmedqa / pubmedqa_cls)."""
    out = _lmeval_dir(tmp_path)
    row = {"doc_id": 0, "doc": {}, "target": "1", "arguments": {}, "filtered_resps": ["1"],
           "metrics": ["exact_match"], "exact_match": 1.0}
    (out / "org__model" / "samples_gsm8k_cot_2026-12-06T10-00-00.jsonl").write_text(json.dumps(row) + "\n")
    run = resolve_run(str(out))
    assert not [s for s in run.samples or [] if s.task == "gsm8k"]
    assert any("samples_gsm8k_*.jsonl is missing" in n for n in run.notes)


@pytest.mark.parametrize(("content", "needle"), [
    ("not json", "not an lm-eval results file"),
    ('{"results": {}}', "name no task"),
])
def test_bad_lmeval_results_is_one_line_error(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "results_x.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        resolve_run(str(path))
    assert needle in err.value.one_line() and str(path) in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_export_without_samples_writes_results_only(tmp_path: Path) -> None:
    run = resolve_run(str(_lmeval_dir(tmp_path, samples=False)))
    written = write_lmeval(run.result, None, tmp_path / "exp")
    assert [p.name for p in written] == [written[0].name] and written[0].name.startswith("results_")
    again, samples, _ = read_lmeval(written[0])
    assert samples is None and again.tasks["gsm8k"].metrics == run.result.tasks["gsm8k"].metrics


def test_reader_expands_nested_groups(tmp_path: Path) -> None:
    block = {"acc,none": 0.5, "acc_stderr,none": 0.1}
    doc = {"results": {"mmlu": {"alias": "mmlu", **block}, "mmlu_stem": {"alias": " - stem"},
                       "mmlu_anatomy": {"alias": "  - anatomy", **block}},
           "group_subtasks": {"mmlu": ["mmlu_stem"], "mmlu_stem": ["mmlu_anatomy"]},
           "configs": {"mmlu_anatomy": {"task": "mmlu_anatomy", "test_split": "test", "num_fewshot": 5}},
           "n-samples": {"mmlu_anatomy": {"original": 135, "effective": 135}}}
    path = tmp_path / "results_2026.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result, samples, _ = read_lmeval(path)
    assert set(result.tasks) == {"mmlu_anatomy"} and set(result.groups) == {"mmlu"}  # stem: no aggregate
    assert result.groups["mmlu"].members == ["mmlu_anatomy"] and result.groups["mmlu"].n == 135
    assert result.groups["mmlu"].metrics["acc"].value == 0.5 and samples is None


def test_export_unknown_format_is_a_user_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from evalmon.cli.app import app

    res = CliRunner().invoke(app, ["export", str(_lmeval_dir(tmp_path)), "--format", "helm", "--out",
                                   str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError)
    assert res.exception.one_line().startswith("--format 'helm' is not supported") and not (tmp_path / "x").exists()
