"""``lm_eval:<name>`` on the real SmolLM2-135M-Instruct equals ``simple_evaluate`` (HellaSwag, 10 local rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
from parity_util import export

pytestmark = pytest.mark.accuracy

N = 10


def test_smollm2_hellaswag_equals_simple_evaluate(smollm2_checkpoint: Path, benchmarks_dir: Path,
                                                   tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalmon.backends.hf.model import HFCausalLM, HFSettings
    from evalmon.config.suite import SuiteConfig
    from evalmon.harness.run import run_suite

    names = export({"hellaswag": N}, benchmarks_dir, tmp_path / "tasks")
    name = names["hellaswag"]
    hflm = HFLM(pretrained=str(smollm2_checkpoint), batch_size=8, dtype="float32", device="cpu")
    theirs = lm_eval.simple_evaluate(model=hflm, tasks=[name], bootstrap_iters=1000,
                                     task_manager=TaskManager(include_path=str(tmp_path / "tasks"),
                                                              include_defaults=False))["results"][name]
    cfg = SuiteConfig.model_validate({
        "name": "lmeval-real", "output_dir": str(tmp_path / "reports"), "tracking": {"enabled": False},
        "lm_eval_include_path": [str(tmp_path / "tasks")],
        "model": {"backend": "hf", "path": str(smollm2_checkpoint), "batch_size": 8},
        "tasks": [{"lm_eval": name, "limit": N}]})
    lm = HFCausalLM(HFSettings(path=str(smollm2_checkpoint), batch_size=8))
    ours = run_suite(cfg, lm=lm).tasks["lm_eval:" + name]
    assert ours.n == N
    for metric in ("acc", "acc_norm"):
        assert ours.metrics[metric].value == pytest.approx(theirs[f"{metric},none"], abs=1e-6)
        assert ours.metrics[metric].stderr == pytest.approx(theirs[f"{metric}_stderr,none"], abs=1e-6)
    assert ours.metrics["acc_norm"].value > 0  # a real model: not all wrong
