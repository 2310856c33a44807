"""A detector's last stage over a language model's hidden state (``LMProbe``): artifact checks, which texts reach it,
and how the safety signal turns it on (unset: when the checkpoint is built in the project folder), without a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.monitor.detectors import Detector, LMProbe, Member
from evalmon.monitor.signals import embeddings, lm_hidden

pytestmark = pytest.mark.unit
DIM = 4


def _probe(**kw: object) -> LMProbe:
    base: dict = {"model": {"name": "smollm2-135m-instruct", "gguf_sha256": "ab" * 32}, "layer": 2, "max_chars": 50,
                  "escalate_above": 0.2, "threshold": 0.3,
                  "members": [Member(coef=[1.0, 0, 0, 0], intercept=0.0, a=-1.0, b=0.0)]}
    return LMProbe(**{**base, **kw})  # type: ignore[arg-type]


def _write(tmp_path: Path, probe: LMProbe, **override: object) -> Path:
    path = tmp_path / "p.lm_probe.json"
    probe.save(path)
    d = json.loads(path.read_text())
    d.update(override)
    path.write_text(json.dumps(d))
    return path


def test_probe_round_trips_and_rejects_bad_artifacts(tmp_path: Path) -> None:
    probe = LMProbe.load(_write(tmp_path, _probe()))
    assert probe.layer == 2 and probe.threshold == 0.3 and probe.members[0].coef[0] == 1.0
    with pytest.raises(DataError, match="escalate_above ≤ threshold"):
        LMProbe.load(_write(tmp_path, _probe(), escalate_above=0.5))  # a text it never saw could be flagged
    with pytest.raises(DataError, match="layer ≥ 1"):
        LMProbe.load(_write(tmp_path, _probe(), layer=0))
    with pytest.raises(DataError, match="not an lm-probe artifact"):
        LMProbe.load(_write(tmp_path, _probe(), members="x"))


class _FakeHidden:
    """Hidden state = (len(text), 0, 0, 0): the probe's probability is sigmoid(len)."""
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.array([[float(len(t)), 0, 0, 0] for t in texts])


class _FakeEmbedder:
    model_ref = "m"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[{"low": -5.0, "mid": 0.0, "high": 5.0}[t.split()[0]], 0, 0, 0] for t in texts])


def _detector(probe: LMProbe | None) -> Detector:
    return Detector(name="harmful_request", version="9", field="prompt", embedding_model="m", max_chars=100,
                    threshold=0.6, members=[Member(coef=[1.0, 0, 0, 0], intercept=0.0, a=-1.0, b=0.0)],
                    lm_probe=probe)


def test_only_texts_the_detector_finds_suspicious_reach_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeHidden()
    monkeypatch.setattr(lm_hidden, "probe_checkpoint", lambda model, where: Path("/ck"))
    monkeypatch.setattr(lm_hidden, "get_hidden_states", lambda path, layer, max_chars, pool="mean": fake)
    probe = _probe(members=[Member(coef=[-1.0, 0, 0, 0], intercept=3.0, a=-1.0, b=0.0)])  # sigmoid(3 - len)
    texts = ["low a", "mid bb", "high ccc", ""]
    full = embeddings.detector_scores(_detector(probe), _FakeEmbedder(), texts, cascade=False)  # type: ignore[arg-type]
    assert fake.seen == ["mid bb", "high ccc"]  # sigmoid(-5) = 0.007 < 0.2 keeps the detector's score
    expected = [1 / (1 + np.exp(5.0)), 1 / (1 + np.exp(-(3 - 6))), 1 / (1 + np.exp(-(3 - 8)))]
    assert np.allclose(full[:3], expected) and np.isnan(full[3])
    off = embeddings.detector_scores(_detector(probe), _FakeEmbedder(), texts, cascade=False,  # type: ignore[arg-type]
                                     lm_probe=False)
    assert len(fake.seen) == 2 and np.allclose(off[:3], [1 / (1 + np.exp(5.0)), 0.5, 1 / (1 + np.exp(-5.0))])


def test_ref_changes_with_the_probe() -> None:
    a, b = _detector(_probe()), _detector(_probe(threshold=0.31))
    assert a.ref != b.ref and a.ref != _detector(None).ref
    assert "lm_probe" not in a.to_json()  # saved in its own file: the detector's artifact is unchanged


def _safety(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, built: bool, sha: str = "ab" * 32,
            **kw: object):  # type: ignore[no-untyped-def]
    """The safety signal with one detector that has a probe; the checkpoint folder built (config.json) or not."""
    from evalmon.monitor.signals import safety

    ck = tmp_path / ("built" if built else "missing")
    if built:
        ck.mkdir(exist_ok=True)
        (ck / "config.json").write_text("{}")
    monkeypatch.setattr("evalmon.monitor.detectors.load_detector", lambda name, version=None: _detector(_probe()))
    monkeypatch.setattr("evalmon.checkpoints.project.project_dir", lambda name, base=None: ck)
    monkeypatch.setattr(lm_hidden, "checkpoint_sha256", lambda path: sha)
    monkeypatch.setattr(safety, "DETECTORS", {"unsafe_request": "harmful_request"})
    monkeypatch.setattr(safety, "get_embedder", lambda *a, **k: _FakeEmbedder())
    return safety.SafetySignal(refusal_classifier=False, **kw)


def test_safety_probe_unset_runs_it_when_the_checkpoint_is_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from evalmon.monitor.signals import safety

    monkeypatch.setattr(safety, "_WARNED", set())
    on = _safety(monkeypatch, tmp_path, built=True)
    assert on.lm_probe and on.thresholds["unsafe_request"] == 0.3 and "lm_probe" not in on.options()
    off = _safety(monkeypatch, tmp_path, built=False)
    assert not off.lm_probe and off.thresholds["unsafe_request"] == 0.6 and off.options()["lm_probe"] is False
    _safety(monkeypatch, tmp_path, built=False)
    err = capsys.readouterr().err
    assert err.count("lm probe is off") == 1 and "evalmon init" in err  # one warning per process
    assert not _safety(monkeypatch, tmp_path, built=True, lm_probe=False).lm_probe


def test_safety_probe_required_or_of_another_checkpoint_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not built") as e:
        _safety(monkeypatch, tmp_path, built=False, lm_probe=True)
    assert "evalmon init" in (e.value.hint or "")
    with pytest.raises(ConfigError, match="not the checkpoint the lm probe was trained on"):
        _safety(monkeypatch, tmp_path, built=True, sha="cd" * 32)


def test_signal_fingerprints_are_run_params_that_tell_different_numbers_apart() -> None:
    """A monitor's window runs carry ``signal.<name>`` = the signal's fingerprint (its options incl. detector refs and
    whether an lm probe ran): the YAML's hash alone cannot tell runs apart whose numbers differ (a checkpoint built
    since, another artifact)."""
    from evalmon.monitor.pipeline import SignalRunner

    a = SignalRunner([{"name": "usage"}, {"name": "refusal", "classifier": False}], None).fingerprints()
    b = SignalRunner([{"name": "usage"}, {"name": "refusal", "classifier": False,
                                          "extra_patterns": {"mine": "nope"}}], None).fingerprints()
    assert set(a) == {"signal.usage", "signal.refusal"} and all(len(v) == 16 for v in a.values())
    assert a["signal.usage"] == b["signal.usage"] and a["signal.refusal"] != b["signal.refusal"]
    assert SignalRunner([], None).fingerprints() == {}


def test_combine_max_flags_what_the_detector_or_the_probe_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """harmful_request v5: every score on the probe's scale (the detector's threshold 0.6 ↦ the probe's 0.3), the
    texts in the band keep the larger of that and the probe's probability — a superset of the detector's flags."""
    fake = _FakeHidden()
    monkeypatch.setattr(lm_hidden, "probe_checkpoint", lambda model, where: Path("/ck"))
    monkeypatch.setattr(lm_hidden, "get_hidden_states", lambda path, layer, max_chars, pool="mean": fake)
    probe = _probe(members=[Member(coef=[-1.0, 0, 0, 0], intercept=3.0, a=-1.0, b=0.0)], combine="max")
    det = _detector(probe)
    base = np.array([0.0, 0.3, 0.6, 0.8, 1.0])
    assert np.allclose(probe.rescale(base, 0.6), [0.0, 0.15, 0.3, 0.3 + 0.2 * 0.7 / 0.4, 1.0])
    assert (np.diff(probe.rescale(np.linspace(0, 1, 101), 0.6)) > 0).all()
    texts = ["low a", "mid bb", "high ccc", "mid " + "x" * 30]  # detector 0.007 / 0.5 / 0.993 / 0.5
    out = embeddings.detector_scores(det, _FakeEmbedder(), texts, cascade=False)  # type: ignore[arg-type]
    d = 1 / (1 + np.exp(-np.array([-5.0, 0.0, 5.0, 0.0])))
    p = 1 / (1 + np.exp(-(3 - np.array([6.0, 8.0, 35.0]))))  # the probe on the three texts in the band
    assert fake.seen == ["mid bb", "high ccc", texts[3]]
    assert np.allclose(out, [d[0] * 0.5, max(d[1] * 0.5, p[0]), max(0.3 + (d[2] - 0.6) * 0.7 / 0.4, p[1]), d[3] * 0.5])
    assert ((out >= probe.threshold) == [False, False, True, False]).all()  # "high" flagged by the detector alone
    hot = _probe(members=[Member(coef=[0.0, 0, 0, 0], intercept=2.0, a=-1.0, b=0.0)], combine="max")  # probe 0.88
    assert (embeddings.detector_scores(_detector(hot), _FakeEmbedder(), texts,  # type: ignore[arg-type]
                                       cascade=False) >= 0.3).tolist() == [False, True, True, True]


def test_combine_max_artifact_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalmon.monitor import detectors

    with pytest.raises(DataError, match="combine 'min' is not one of"):
        LMProbe.load(_write(tmp_path, _probe(), combine="min"))
    path = _write(tmp_path, _probe(combine="max"))
    assert LMProbe.load(path).combine == "max"
    assert "combine" not in json.loads(_write(tmp_path, _probe()).read_text())  # replace: written as before
    monkeypatch.setattr(detectors, "ARTIFACT_DIR", tmp_path)
    det = _detector(None)
    det.threshold = 0.15  # below the band: a text the detector flags would never reach the probe's scale
    det.save(tmp_path / "harmful_request-v77.json")
    _write(tmp_path, _probe(combine="max")).rename(tmp_path / "harmful_request-v77.lm_probe.json")
    with pytest.raises(DataError, match="combine max needs 0 < escalate_above ≤ the detector's threshold"):
        detectors.load_detector("harmful_request", "77")


def test_probe_pool_round_trips_and_reaches_the_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """harmful_request v6: ``pool: user+last`` is saved and read back, an unknown pool refused, and the encoder the
    probe reads is built with it (a mean-pooled encoder would give half the width)."""
    assert LMProbe.load(_write(tmp_path, _probe(pool="user+last"))).pool == "user+last"
    assert "pool" not in json.loads(_write(tmp_path, _probe()).read_text())  # mean: written as before
    with pytest.raises(DataError, match="pool 'max' is not one of"):
        LMProbe.load(_write(tmp_path, _probe(), pool="max"))
    seen: list[tuple] = []
    monkeypatch.setattr(lm_hidden, "probe_checkpoint", lambda model, where: Path("/ck"))
    monkeypatch.setattr(lm_hidden, "get_hidden_states", lambda *a: seen.append(a) or _FakeHidden())
    monkeypatch.setattr(lm_hidden, "_CHECKED", {})
    lm_hidden.probe_encoder(_probe(pool="user+last"), "t")
    assert seen == [(Path("/ck"), 2, 50, "user+last")]
