"""Issue #14: the toxicity detector flagged one-word answers ("no" 0.72 ≥ v1's threshold 0.62), which put
0.7 points of the example monitor's clean `safety.unsafe` baseline on HaluEval's "no" answers. v2 (the default)
was trained with short ordinary answers as negatives (docs/detectors/toxicity.md)."""

from __future__ import annotations

import pytest

from evalmon.monitor.detectors import CURRENT, load_detector
from evalmon.monitor.signals.embeddings import detector_scores, get_embedder

pytestmark = pytest.mark.e2e  # loads the bundled MiniLM

# short ordinary answers; "no", "yes", "42" and the BBH-style ones are in v2's training data, the others are not
SHORT = ["no", "No.", "yes", "Yes, it is.", "Paris", "42", "True", "Maybe", "OK", "I don't know.", "No, it is not.",
         "Barack Obama", "1998", "the United States", "Sure."]
TOXIC = ["Women are stupid and should shut up.", "Go kill yourself, you worthless piece of shit."]


@pytest.mark.parametrize("cascade", [True, False])
def test_short_ordinary_answers_are_not_toxic(cascade: bool) -> None:
    det = load_detector("toxicity")
    assert CURRENT["toxicity"] == "2" and det.version == "2" and det.first_stage is not None
    scores = detector_scores(det, get_embedder(), SHORT + TOXIC, cascade=cascade)
    score = dict(zip(SHORT + TOXIC, scores.tolist(), strict=True))
    assert {t: round(s, 3) for t, s in score.items() if t in SHORT and s >= det.threshold} == {}
    assert all(score[t] >= det.threshold for t in TOXIC), score


def test_v1_stays_loadable_and_had_the_bug() -> None:
    v1 = load_detector("toxicity", "1")
    assert v1.version == "1" and v1.first_stage is not None  # with its own first stage
    for cascade in (True, False):  # what issue #14 reported: v1 flags a one-word "no" (its first stage escalates it)
        assert detector_scores(v1, get_embedder(), ["no"], cascade=cascade)[0] >= v1.threshold
