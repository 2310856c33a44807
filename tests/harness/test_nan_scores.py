"""A model whose forward gives NaN (float16 overflow, a checkpoint with NaN weights) must stop the run with one
line naming the model — not score accuracy 0 and finish (cache off), nor blame ``cache.path`` (NaN is
SQL NULL, which the cache's NOT NULL column refused)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalmon.core.errors import ModelError
from evalmon.core.lm import LLRequest, RollingRequest
from evalmon.harness.cache import ResponseCache
from evalmon.harness.engine import run_loglikelihood, run_rolling


@pytest.fixture(scope="module")
def nan_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("nan") / "tiny-nan"
    shutil.copytree(tiny_checkpoint, out)
    weights = load_file(out / "model.safetensors")
    norm = next(k for k in weights if k.endswith("layers.1.input_layernorm.weight"))
    weights[norm] = torch.full_like(weights[norm], float("nan"))
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.mark.parametrize("cached", [False, True])
def test_nan_loglikelihood_is_a_model_error(nan_checkpoint: Path, tmp_path: Path, cached: bool) -> None:
    from evalmon.backends.hf.model import HFCausalLM, HFSettings

    lm = HFCausalLM(HFSettings(path=str(nan_checkpoint), batch_size=2))
    cache = ResponseCache(tmp_path / "c.sqlite") if cached else None
    reqs = [LLRequest("The licence is", " free"), LLRequest("The licence is", " closed")]
    with pytest.raises(ModelError) as info:
        run_loglikelihood(lm, reqs, cache)
    msg = str(info.value)
    assert "loglikelihood is NaN" in msg and str(nan_checkpoint) in msg and info.value.exit_code == 2, msg
    with pytest.raises(ModelError, match="loglikelihood is NaN"):
        run_rolling(lm, [RollingRequest("Permission is hereby granted")], cache)
