"""The shipped detector artifacts: load, score (the stored sklearn members, no sklearn needed), thresholds,
model-card fields, and clear errors for a broken artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalmon.core.errors import ConfigError, DataError
from evalmon.monitor.detectors import BUILTIN, Detector, Member, load_detector, load_detector_file


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_artifact_loads_with_card(name: str) -> None:
    det = load_detector(name)
    feats = det.card.get("features") or {}
    extra = len(feats.get("patterns", {}))  # refusal v3: + one column per phrase family
    extra += 384 if "tail_from" in feats else 0  # refusal v4: + the embedding of the response's tail
    extra += len(feats.get("gibberish", {}).get("columns", ()))  # jailbreak v2: + the gibberish columns
    extra += 384 if feats.get("static_embedding") else 0  # ... + the static embedding
    assert det.name == name and det.dim == 384 + extra and len(det.members) == 5
    assert det.embedding_model == "bundled:all-MiniLM-L6-v2" and det.field in ("prompt", "response")
    assert 0.0 < det.threshold < 1.0
    card = det.card
    assert card["training_sets"] and card["train_rows"] > 100 and card["target_fpr"] <= 0.05
    # only permissively licensed sets train a shipped artifact
    for s in card["training_sets"]:
        assert s not in ("oktest", "ethos", "safe_rlhf_judged", "felm", "do_not_answer", "pyrit_scorer_evals")
    val = card["metrics"]["validation (permissive sets, validation split)"]
    assert val["n"] > 100 and "roc_auc" in val
    assert (Path(__file__).resolve().parents[2] / "docs/detectors" / f"{name}.md").is_file()


def test_probability_is_the_mean_of_platt_scaled_members() -> None:
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=4), rng.normal(size=4)
    det = Detector(name="t", version="1", field="prompt", embedding_model="m", max_chars=100, threshold=0.5,
                   members=[Member(w1.tolist(), 0.1, -2.0, 0.3), Member(w2.tolist(), -0.2, -1.5, -0.1)])
    x = rng.normal(size=(3, 4))
    want = np.mean([1 / (1 + np.exp(-2.0 * (x @ w1 + 0.1) + 0.3)), 1 / (1 + np.exp(-1.5 * (x @ w2 - 0.2) - 0.1))],
                   axis=0)
    assert np.allclose(det.predict_proba_vectors(x), want)
    with pytest.raises(DataError, match="expected"):
        det.predict_proba_vectors(np.zeros((2, 5)))


def test_roundtrip_and_errors(tmp_path: Path) -> None:
    det = load_detector("refusal")
    path = tmp_path / "r.json"
    det.save(path)
    again = load_detector_file(path)
    x = np.eye(det.dim)[:3]
    assert np.allclose(again.predict_proba_vectors(x), det.predict_proba_vectors(x))
    assert load_detector("refusal", "2").dim == 384  # older versions stay loadable
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(DataError, match=r"bad\.json: not a detector artifact"):
        load_detector_file(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_detector_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_detector_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="no shipped detector"):
        load_detector("nope")


def test_ref_follows_the_artifact_content_so_the_signal_cache_key_does() -> None:
    """A detector re-trained under the same version label (or a user's edited copy) must not read scores the signal
    cache holds for the old artifact: signals put ``Detector.ref`` (label + content hash) in their options, and the
    cache key is the signal's fingerprint, a hash of its options (jailbreak v2 was re-trained in place while this was a label only)."""
    import copy

    from evalmon.monitor.signals.safety import SafetySignal

    sig = SafetySignal()
    det = sig.detectors["jailbreak"]
    assert det.ref.startswith("jailbreak-v") and "@" in det.ref
    before = sig.fingerprint
    changed = copy.deepcopy(det)
    changed.members[0].coef[0] += 1e-3
    assert changed.ref != det.ref and changed.ref.split("@")[0] == det.ref.split("@")[0]
    sig.detectors["jailbreak"] = changed
    assert sig.fingerprint != before
    sig.detectors["jailbreak"] = det
    assert sig.fingerprint == before
