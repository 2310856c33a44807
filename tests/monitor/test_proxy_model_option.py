"""The proxy model of ``uncertainty`` / ``halludetect``: a missing default names the real ways to give one
(``evalmon signals score --model``, the signal's ``model:``), and ``--model`` reaches both signals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evalmon.core.errors import ConfigError
from evalmon.monitor.signal_scoring import score_file, with_proxy_model
from evalmon.monitor.signals import build_signals


def _traffic(path: Path) -> Path:
    rows = [{"request_id": f"r{i}", "timestamp": f"2026-11-01T00:0{i}:00Z", "prompt": f"What is {i} + {i}?",
             "response": f"It is {2 * i}."} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("signal", "key", "entry"), [
    ("uncertainty", "signals.uncertainty.model", "{name: uncertainty, model: {path: DIR}}"),
    ("halludetect", "signals.halludetect.uncertainty.model", "{name: halludetect, uncertainty: {model: {path: DIR}}}"),
])
def test_missing_default_proxy_model_names_the_real_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            signal: str, key: str, entry: str) -> None:
    monkeypatch.chdir(tmp_path)  # no .evalmon/checkpoints here
    with pytest.raises(ConfigError) as info:
        build_signals([signal])
    line = info.value.one_line()
    assert line.startswith(f"{key}: not set") and str(tmp_path / ".evalmon" / "checkpoints") in line, line
    assert "--model hf:DIR" in line and entry in line and "evalmon init" in line, line
    assert "\n" not in line


def test_signals_score_fails_before_scoring_without_a_proxy_model(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"signals\.halludetect\.uncertainty\.model: not set"):
        score_file(_traffic(tmp_path / "t.jsonl"), ["halludetect"], tmp_path / "s.jsonl")
    assert not (tmp_path / "s.jsonl").exists()


def test_with_proxy_model_sets_the_model_of_both_proxy_signals() -> None:
    model = {"backend": "hf", "path": "/ckpt"}
    got = with_proxy_model(["text", "uncertainty", {"name": "halludetect", "uncertainty": {"sample_rate": 0.5}}],
                           model)
    assert got[0] == "text"
    assert got[1] == {"name": "uncertainty", "model": model}
    assert got[2] == {"name": "halludetect", "uncertainty": {"sample_rate": 0.5, "model": model}}
    with pytest.raises(ConfigError, match="--model: no signal here uses a proxy model"):
        with_proxy_model(["text", "pii"], model)
    plain = with_proxy_model(["uncertainty", "halludetect"], None, chat=False)  # --no-chat on the default model
    assert plain == [{"name": "uncertainty", "chat": False}, {"name": "halludetect", "uncertainty": {"chat": False}}]
    with pytest.raises(ConfigError, match="--no-chat: no signal here uses a proxy model"):
        with_proxy_model(["text"], None, chat=False)
    assert with_proxy_model(["text"], None) == ["text"]


@pytest.mark.e2e
def test_signals_score_with_model_scores_uncertainty_under_that_model(tmp_path: Path, tiny_checkpoint: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.config.suite import parse_model_spec

    monkeypatch.chdir(tmp_path)  # no .evalmon/checkpoints here: only --model can make this work
    proxy = parse_model_spec(f"hf:{tiny_checkpoint}").model_dump(exclude_none=True)  # what --model hands over
    res = score_file(_traffic(tmp_path / "t.jsonl"), ["uncertainty"], tmp_path / "s.parquet", proxy_model=proxy,
                     proxy_chat=False)  # --no-chat: the tiny checkpoint has no chat template
    out = pd.read_parquet(res.out)
    assert res.records == 3 and out["uncertainty.n_tokens"].gt(0).all(), out
    assert out["uncertainty.mean_logprob"].lt(0).all()
