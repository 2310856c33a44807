"""A fully cached rerun loads no model: the hf fingerprint comes from a memo (equal to the eager one, so caches
written before still hit), the model loads on the first response-cache miss, and the run says so."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from cli_util import (
    assert_no_traceback,
    cli_env,
    load_results,
    run_cli,
    run_dirs,
    show,
    suite_dict,
    write_suite,
)

from evalmon.backends.hf.fingerprint import memo_key
from evalmon.backends.hf.lazy import FORBID_ENV, LazyHFCausalLM, load_hf
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ModelError
from evalmon.core.lm import LLRequest


@pytest.fixture()
def memo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALMON_CACHE_DIR", str(tmp_path / "evalmon-cache"))
    monkeypatch.delenv(FORBID_ENV, raising=False)
    return tmp_path / "evalmon-cache"


def _same_fingerprint(settings: HFSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    eager = load_hf(settings)  # memo miss: loaded now, fingerprint stored
    assert isinstance(eager, HFCausalLM)
    monkeypatch.setenv(FORBID_ENV, "1")  # from here on, loading the model fails
    lazy = load_hf(settings)
    assert isinstance(lazy, LazyHFCausalLM) and not lazy.loaded
    assert lazy.fingerprint.cache_key() == eager.fingerprint.cache_key()
    assert json.dumps(lazy.fingerprint.to_dict(), sort_keys=True) == json.dumps(eager.fingerprint.to_dict(),
                                                                                sort_keys=True)
    assert lazy.stats().computed == 0 and not lazy.loaded
    other_batch = load_hf(replace(settings, batch_size=settings.batch_size + 1))  # only recorded: still lazy
    assert isinstance(other_batch, LazyHFCausalLM) and other_batch.fingerprint.batch_size == settings.batch_size + 1
    assert other_batch.fingerprint.cache_key() == eager.fingerprint.cache_key()
    with pytest.raises(ModelError, match=FORBID_ENV):
        lazy.loglikelihood([LLRequest("a", " b")])


def test_lazy_fingerprint_equals_eager_tiny(tiny_checkpoint: Path, memo_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _same_fingerprint(HFSettings(path=str(tiny_checkpoint), batch_size=4), monkeypatch)


def test_lazy_fingerprint_equals_eager_tiny_lora(tiny_checkpoint: Path, tiny_lora: Path, memo_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _same_fingerprint(HFSettings(path=str(tiny_checkpoint), adapter=str(tiny_lora)), monkeypatch)


def test_lazy_fingerprint_equals_eager_smollm2(smollm2_checkpoint: Path, memo_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _same_fingerprint(HFSettings(path=str(smollm2_checkpoint)), monkeypatch)


def test_lazy_model_loads_on_first_miss_with_the_same_numbers(tiny_checkpoint: Path, memo_dir: Path) -> None:
    settings = HFSettings(path=str(tiny_checkpoint))
    eager = load_hf(settings)
    lazy = load_hf(settings)
    assert isinstance(lazy, LazyHFCausalLM) and not lazy.loaded
    reqs = [LLRequest("The cat sat on the", " mat"), LLRequest("", " hello")]
    assert lazy.loglikelihood(reqs) == eager.loglikelihood(reqs)
    assert lazy.loaded and lazy.token_count("a b c") == eager.token_count("a b c")


def test_memo_key_changes_with_files_settings_and_adapter(tiny_checkpoint: Path, tiny_lora: Path,
                                                          tmp_path: Path) -> None:
    ckpt = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    base = memo_key(HFSettings(path=str(ckpt)))
    assert base and base == memo_key(HFSettings(path=str(ckpt)))
    assert memo_key(HFSettings(path=str(ckpt), max_length=64)) != base
    assert memo_key(HFSettings(path=str(ckpt), batch_size=3)) == base  # recorded, not computed
    assert memo_key(HFSettings(path=str(ckpt), adapter=str(tiny_lora))) not in {None, base}
    config = ckpt / "config.json"
    st = config.stat()
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a rewritten file: new key
    assert memo_key(HFSettings(path=str(ckpt))) != base
    assert memo_key(HFSettings(path="org/not-a-local-dir")) is None  # hub ids: no memo


def test_fully_cached_rerun_does_not_load_the_model(tiny_checkpoint: Path, benchmarks_dir: Path,
                                                    tmp_path: Path) -> None:
    """CLI: cold run, then the same run with model loading forbidden — same results, nothing loaded; a run
    with a request the cache lacks then fails with one line naming the hook."""
    out = tmp_path / "reports"
    suite = write_suite(tmp_path / "suite.yaml", suite_dict(
        tiny_checkpoint, benchmarks_dir, tasks=[{"name": "mmlu_anatomy", "num_fewshot": 0}], limit=4,
        output_dir=str(out), tracking={"enabled": False}))
    env = cli_env(EVALMON_CACHE_DIR=str(tmp_path / "evalmon-cache"))
    cold = run_cli(tmp_path, "run", suite, env=env)
    assert cold.returncode == 0, show(cold)
    assert "model not loaded" not in cold.stderr
    warm = run_cli(tmp_path, "run", suite, env={**env, FORBID_ENV: "1"})
    assert warm.returncode == 0, show(warm)
    assert "model not loaded: every request was cached" in warm.stderr, show(warm)
    first, second = (load_results(d) for d in run_dirs(out))
    assert first["model"] == second["model"]
    assert first["tasks"]["mmlu_anatomy"]["metrics"] == second["tasks"]["mmlu_anatomy"]["metrics"]
    assert second["tasks"]["mmlu_anatomy"]["timing"]["computed"] == 0
    missed = run_cli(tmp_path, "run", suite, "--limit", "5", env={**env, FORBID_ENV: "1"})
    assert missed.returncode == 2, show(missed)
    assert_no_traceback(missed)
    assert FORBID_ENV in missed.stderr.strip().splitlines()[-1], show(missed)
