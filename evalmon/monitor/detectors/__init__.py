"""Shipped text detectors: calibrated logistic regressions over the bundled MiniLM sentence embedding.

An artifact is one small JSON file here (``<name>-v<version>.json``; trained by
``benchmarks/train_detectors.py``, model cards in ``docs/detectors/``): the embedding model and
truncation it expects, the input field, the default threshold (chosen on validation data for a stated
false-positive rate) and ``members`` — the folds of scikit-learn's ``CalibratedClassifierCV``, each a
logistic regression (``coef``, ``intercept``) with its Platt scaling (``a``, ``b``). The probability is
the members' mean of ``1 / (1 + exp(a·(w·x + c) + b))``, which is what scikit-learn computes; no pickle,
no scikit-learn needed to score.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from evalmon.core.errors import ConfigError, DataError

ARTIFACT_DIR = Path(__file__).resolve().parent
BUILTIN = ("harmful_request", "jailbreak", "toxicity", "refusal", "pii_sensitive")
# the version each signal loads by default; older artifacts stay loadable by explicit version
CURRENT = {"harmful_request": "7", "jailbreak": "2", "toxicity": "2", "refusal": "4", "pii_sensitive": "1"}


@dataclass
class Member:
    coef: list[float]
    intercept: float
    a: float
    b: float


def _check_members(members: list[Member], where: object) -> None:
    if not members or len({len(m.coef) for m in members}) != 1:
        raise DataError(f"{where}: members missing or of different sizes")


def _proba(members: list[Member], x: np.ndarray) -> np.ndarray:
    w = np.array([m.coef for m in members], dtype=np.float64)  # (k, dim)
    c, a, b = (np.array([getattr(m, k) for m in members]) for k in ("intercept", "a", "b"))
    return (1.0 / (1.0 + np.exp(a * (x.astype(np.float64) @ w.T + c) + b))).mean(axis=1)


@dataclass
class FirstStage:
    """A cheap first stage of a cascade (``monitor/signals/embeddings.detector_scores``): the same kind of members
    over static token embeddings (``embedding_model`` ``static:…``); only texts it scores ≥ ``escalate_above``
    go to the full detector — the others keep this stage's probability (below the band where the full
    detector could flag them, chosen on validation data; ``benchmarks/train_detectors.py``)."""

    embedding_model: str
    escalate_above: float
    members: list[Member]
    card: dict[str, Any] = field(default_factory=dict)

    def predict_proba_vectors(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != len(self.members[0].coef):
            raise DataError(f"first stage: expected (n, {len(self.members[0].coef)}) embeddings, got {x.shape}")
        return _proba(self.members, x)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> FirstStage:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            members = [Member(**m) for m in d["members"]]
            fs = cls(embedding_model=str(d["embedding_model"]), escalate_above=float(d["escalate_above"]),
                     members=members, card=dict(d.get("card", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a first-stage artifact ({e})",
                            hint="retrain with benchmarks/train_detectors.py --first-stage") from e
        _check_members(members, path)
        return fs


COMBINE = ("replace", "max")
POOLS = ("mean", "user+last")  # how the hidden states are pooled (monitor/signals/lm_hidden.py)


@dataclass
class LMProbe:
    """A last stage of a detector (``monitor/signals/embeddings.detector_scores``): texts the detector scores ≥
    ``escalate_above`` are scored again by these members over a language model's mean hidden state at ``layer``
    (``monitor/signals/lm_hidden.py``: the text as one chat-template user turn, its first ``max_chars`` characters;
    ``pool``: the mean over every token, or the user turn's mean and the last token's state),
    and (``combine: replace``) that probability is their final score; flagged at ``threshold`` (≥ ``escalate_above``,
    so a text the probe never saw is never flagged). ``combine: max``: every score of the detector is first put on
    the probe's scale (``rescale``: the detector's threshold maps to the probe's, piecewise linear, monotone) and the
    texts the probe scores keep the larger of the two — flagged exactly when the detector alone flags them or the
    probe does. Without the probe (the signal's ``lm_probe: false``) the detector's own scores and threshold apply.
    ``model``: the checkpoint it was trained on (``name`` under ``.evalmon/checkpoints``, and the
    source GGUF's ``gguf_sha256`` that ``evalmon init`` records), refused if another is found there."""

    model: dict[str, str]
    layer: int
    max_chars: int
    escalate_above: float
    threshold: float
    members: list[Member]
    card: dict[str, Any] = field(default_factory=dict)
    combine: str = "replace"  # COMBINE: how the probe's probability and the detector's score make the final score
    pool: str = "mean"  # POOLS: the features (lm_hidden.HiddenStates)

    def rescale(self, scores: np.ndarray, base_threshold: float) -> np.ndarray:
        """``combine: max``: the detector's scores on the probe's scale — ``base_threshold`` ↦ ``threshold``, 0 ↦ 0,
        1 ↦ 1, linear in between, so a score is ≥ ``threshold`` exactly when it was ≥ ``base_threshold``."""
        s, b, t = np.asarray(scores, dtype=np.float64), base_threshold, self.threshold
        return np.where(s < b, s * (t / b), t + (s - b) * ((1.0 - t) / (1.0 - b)))

    def combined(self, base: np.ndarray, probe: np.ndarray, base_threshold: float) -> np.ndarray:
        """The final score of texts the probe scored, from the detector's score and the probe's probability."""
        if self.combine == "max":
            return np.maximum(self.rescale(base, base_threshold), probe)
        return probe

    def predict_proba_vectors(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != len(self.members[0].coef):
            raise DataError(f"lm probe: expected (n, {len(self.members[0].coef)}) hidden states, got {x.shape}")
        return _proba(self.members, x)

    def save(self, path: Path) -> None:
        d = asdict(self)
        for k, default in (("combine", "replace"), ("pool", "mean")):
            if d[k] == default:  # the defaults: absent, as in the artifacts written before they existed
                del d[k]
        path.write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LMProbe:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            members = [Member(**m) for m in d["members"]]
            probe = cls(model={str(k): str(v) for k, v in dict(d["model"]).items()}, layer=int(d["layer"]),
                        max_chars=int(d["max_chars"]), escalate_above=float(d["escalate_above"]),
                        threshold=float(d["threshold"]), members=members, card=dict(d.get("card", {})),
                        combine=str(d.get("combine", "replace")), pool=str(d.get("pool", "mean")))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not an lm-probe artifact ({e})",
                            hint="retrain with benchmarks/detector_lm_probe.py") from e
        _check_members(members, path)
        if not probe.model.get("name") or probe.layer < 1 or probe.max_chars < 1:
            raise DataError(f"{path}: an lm probe needs model.name, layer ≥ 1 and max_chars ≥ 1")
        if probe.combine not in COMBINE:
            raise DataError(f"{path}: combine {probe.combine!r} is not one of {', '.join(COMBINE)}")
        if probe.pool not in POOLS:
            raise DataError(f"{path}: pool {probe.pool!r} is not one of {', '.join(POOLS)}")
        if not 0.0 <= probe.escalate_above <= probe.threshold < 1.0:
            raise DataError(f"{path}: an lm probe needs 0 ≤ escalate_above ≤ threshold < 1, got "
                            f"{probe.escalate_above} and {probe.threshold}")
        return probe


def lm_probe_path(name: str, version: str) -> Path:
    """A shipped detector's optional last stage: ``<name>-v<version>.lm_probe.json`` next to it."""
    return ARTIFACT_DIR / f"{name}-v{version}.lm_probe.json"


def first_stage_path(name: str, version: str) -> Path:
    """A shipped detector's optional cascade first stage: ``<name>-v<version>.first_stage.json`` next to it."""
    return ARTIFACT_DIR / f"{name}-v{version}.first_stage.json"


@dataclass
class Detector:
    name: str
    version: str
    field: str  # the record field it reads by default: prompt / response
    embedding_model: str
    max_chars: int
    threshold: float
    members: list[Member]
    card: dict[str, Any] = field(default_factory=dict)
    first_stage: FirstStage | None = None  # the cascade's cheap stage (its own file: first_stage_path)
    lm_probe: LMProbe | None = None  # the last stage over a language model's hidden state (lm_probe_path)

    @property
    def dim(self) -> int:
        return len(self.members[0].coef)

    def predict_proba_vectors(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) embeddings → (n,) calibrated probability of the positive class."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(f"detector {self.name}: expected (n, {self.dim}) embeddings, got {x.shape}")
        return _proba(self.members, x)

    @property
    def ref(self) -> str:
        """``name-v<version>@<12 hex>``: the version label plus a hash of the artifact's content (members,
        threshold, card, first stage, lm probe) — what signal options and so the signal cache key carry, so a re-trained
        artifact under the same version label (or a user's edited copy) never reads scores cached for the old one.
        Computed on each call (~1 ms), so a changed copy is never stale."""
        blob = json.dumps({"detector": self.to_json(), "first_stage": asdict(self.first_stage) if self.first_stage
                           else None, **({"lm_probe": asdict(self.lm_probe)} if self.lm_probe else {})}, sort_keys=True)
        return f"{self.name}-v{self.version}@{hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["first_stage"], d["lm_probe"]  # saved in their own artifacts, so the detector's file is unchanged
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "") -> Detector:
        try:
            members = [Member(**m) for m in d["members"]]
            det = cls(name=str(d["name"]), version=str(d["version"]), field=str(d["field"]),
                      embedding_model=str(d["embedding_model"]), max_chars=int(d["max_chars"]),
                      threshold=float(d["threshold"]), members=members, card=dict(d.get("card", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{source or 'detector'}: not a detector artifact ({e})",
                            hint="retrain with benchmarks/train_detectors.py") from e
        _check_members(members, source or "detector")
        return det


def load_detector_file(path: str | Path) -> Detector:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"detector artifact {p} does not exist", hint="train one with benchmarks/train_detectors.py")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from e
    return Detector.from_json(raw, str(p))


@cache
def load_detector(name: str, version: str | None = None) -> Detector:
    """A shipped detector by name (``harmful_request``, ``jailbreak``, ``toxicity``, ``refusal``); ``version``
    defaults to the current one (``CURRENT``)."""
    version = version or CURRENT.get(name, "1")
    path = ARTIFACT_DIR / f"{name}-v{version}.json"
    if not path.is_file():
        raise ConfigError(f"no shipped detector {name!r} v{version}", hint=f"shipped: {', '.join(BUILTIN)}")
    det = load_detector_file(path)
    fs = first_stage_path(name, version)
    if fs.is_file():
        det.first_stage = FirstStage.load(fs)
    if (probe := lm_probe_path(name, version)).is_file():
        det.lm_probe = _checked_probe(LMProbe.load(probe), det, probe)
    return det


def _checked_probe(probe: LMProbe, det: Detector, path: Path) -> LMProbe:
    """A probe fits its detector: texts the first stage keeps are never flagged, and (``combine: max``) every text
    the detector alone flags reaches the probe, on a threshold strictly inside (0, 1) (``LMProbe.rescale``)."""
    fs = det.first_stage
    if fs is not None and fs.escalate_above > min(probe.threshold, det.threshold):
        raise DataError(f"{path}: the first stage's cut {fs.escalate_above} is above the threshold "
                        f"{min(probe.threshold, det.threshold)} (texts the first stage keeps would be flagged)")
    if probe.combine == "max" and not 0.0 < probe.escalate_above <= det.threshold < 1.0:
        raise DataError(f"{path}: combine max needs 0 < escalate_above ≤ the detector's threshold < 1, got "
                        f"{probe.escalate_above} and {det.threshold}")
    return probe


__all__ = ["ARTIFACT_DIR", "BUILTIN", "COMBINE", "CURRENT", "POOLS", "Detector", "FirstStage", "LMProbe", "Member", "first_stage_path",
           "lm_probe_path", "load_detector", "load_detector_file"]
