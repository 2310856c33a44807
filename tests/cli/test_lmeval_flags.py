"""lm-eval habits on ``evalmon run``: its flags either work (aliases) or end in one line naming ours (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_util import assert_user_error, load_results, only_run_dir, run_cli, show, suite_dict, write_suite

from evalmon.cli.lmeval_flags import model_spec


@pytest.mark.parametrize(("argv", "needles"), [
    (["--model", "hf", "--model_args", "pretrained=/ckpt/m,dtype=bfloat16,peft=/ckpt/lora"],
     ["--model_args is lm-eval's flag", "--model hf:/ckpt/m,dtype=bfloat16,adapter=/ckpt/lora"]),
    (["--model_args=pretrained=org/name"], ["--model hf:org/name"]),
    (["--num_fewshot", "5"], ["--num_fewshot is lm-eval's flag", "num_fewshot: N"]),
    (["--log_samples"], ["--log_samples is lm-eval's flag", "samples.jsonl.gz", "evalmon export"]),
    (["--device", "cuda:0"], ["--device is lm-eval's flag", "hf:PATH,device=cuda"]),
    (["--use_cache", "lm_cache"], ["--use_cache is lm-eval's flag", "responses.sqlite"]),
    (["--batch_size", "auto"], ["--batch-size 'auto'", "integer ≥ 1"]),
], ids=["model_args", "model_args=", "num_fewshot", "log_samples", "device", "use_cache", "batch_size-auto"])
def test_lmeval_only_flags_get_one_line_naming_the_evalmon_way(tmp_path: Path, argv: list[str],
                                                               needles: list[str]) -> None:
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(tmp_path / "no-checkpoint", tmp_path, tasks=["hellaswag"]))
    assert_user_error(run_cli(tmp_path, "run", suite, "--tasks", "hellaswag", *argv), *needles)


def test_model_args_template_when_nothing_to_translate() -> None:
    assert model_spec("") == "hf:PATH,dtype=…,adapter=…"
    assert model_spec("pretrained=m,trust_remote_code=True,max_length=64") == (
        "hf:m,trust_remote_code=True,max_length=64")


def test_output_path_and_batch_size_are_aliases(tmp_path: Path, tiny_checkpoint: Path, benchmarks_dir: Path) -> None:
    """lm-eval's spelling runs: --output_path is --output, --batch_size N overrides the suite's batch size;
    --tasks takes lm-eval's comma list."""
    write_suite(tmp_path / "suite.yaml", suite_dict(tiny_checkpoint, benchmarks_dir, tasks=["hellaswag"],
                                                    tracking={"enabled": False}))
    proc = run_cli(tmp_path, "run", "suite.yaml", "--tasks", "hellaswag,mmlu_anatomy", "--limit", "2",
                   "--output_path", "lm_out", "--batch_size", "3")
    assert proc.returncode == 0, show(proc)
    results = load_results(only_run_dir(tmp_path / "lm_out"))
    assert not (tmp_path / "reports").exists()
    assert sorted(results["tasks"]) == ["hellaswag", "mmlu_anatomy"]
    assert results["suite_config"]["model.batch_size"] == "3"
