"""The cascade's first stage of the detectors (issue #14 throughput; ``benchmarks/train_detectors.py
--first-stage``): a cheap static-embedding model that imitates the shipped MiniLM detector and decides which
texts the full detector scores."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
from detector_cards import write_card
from detector_data import LICENCES, Example, split_of
from detector_embeddings import embed, tail_matrix
from detector_metrics import metrics

from evalmon.monitor.detectors import Member

# detectors that get a first stage (attached to the version train_detectors.py writes; its own artifact file
# <name>-v<version>.first_stage.json, so the detector's file and numbers stay as they are)
FIRST_STAGE_OF = ("harmful_request", "jailbreak", "toxicity", "refusal", "pii_sensitive")
# ridge penalty of the first stage's regression on the full detector's logit (0.1 vs 1: less escalation of
# ordinary prompts at the same recall loss for harmful_request / toxicity, measured on the validation split)
FIRST_STAGE_ALPHA = 0.1
# most recall (absolute, at the default threshold, permissive validation split) the cascade may lose
FIRST_STAGE_MAX_RECALL_LOSS = 0.01
# refusal v4: the cut also loses ≤ that much recall on each refusal kind (benchmarks/detector_data.py), not only on
# all positives — v3's cut kept the total loss at 0.01 but cost the soft refusals 0.05 (0.842 → 0.789): they are the
# refusals the classifier alone catches, with scores near the threshold. Cost: more ordinary answers escalated
FIRST_STAGE_KINDS = {"refusal": ("full", "partial", "soft")}


def escalation_cut(p1: np.ndarray, full_flag: np.ndarray, y: np.ndarray, max_loss: float) -> float:
    """The highest first-stage cut t such that flagging only texts with p1 ≥ t (and flagged by the full
    detector) loses at most ``max_loss`` recall; FPR can only fall (a flag still needs the full detector)."""
    pos = y == 1
    base = full_flag[pos].mean()
    cut = 0.0
    for t in np.unique(p1):
        if base - (full_flag & (p1 >= t))[pos].mean() <= max_loss + 1e-12:
            cut = float(t)
        else:
            break
    return cut


def add_first_stage(name: str, rows: list[Example], write: bool) -> dict[str, Any]:
    """Keep the shipped MiniLM detector as it is and add a cheap first stage that imitates it: a ridge
    regression from the static embedding (distilled from MiniLM, ``evalmon/monitor/signals/static_embed.py``)
    to the full detector's logit on the train rows (the teacher's score, not the labels: the two stages then
    rank alike, so mixing their scores costs little ranking quality — a label-trained first stage dropped
    harmful_request's validation-only ROC-AUC 0.746 → 0.701, this one → 0.744); p1 = sigmoid(prediction),
    one member with a = -1, b = 0. Its escalation cut is chosen on the permissive validation split."""
    from sklearn.linear_model import Ridge
    from train_detectors import VERSION_OF

    from evalmon.monitor.detectors import FirstStage, first_stage_path, load_detector
    from evalmon.monitor.signals.static_embed import get_static_embedder

    base_v = VERSION_OF[name]  # the MiniLM detector's version (harmful_request v4 / v5 copy v3's first stage with
    # their own cut: benchmarks/detector_lm_probe.py)
    det = copy.deepcopy(load_detector(name, base_v))  # load_detector is cached: never mutate its object
    texts = [r.text for r in rows]
    feats = det.card.get("features") or {}  # refusal v3: + one 0/1 column per phrase family, in both stages
    if feats.get("patterns"):
        import pandas as pd

        from evalmon.monitor.signals.refusal import pattern_hits

        extra = pattern_hits(pd.Series(texts), feats["patterns"], int(feats.get("head_chars", 400))).astype(float)
    else:  # jailbreak v2: its gibberish columns (the same function the signal calls)
        from evalmon.monitor.signals.embeddings import own_columns

        own = own_columns(det, texts)
        extra = np.zeros((len(texts), 0)) if own is None else own
    p_full = det.predict_proba_vectors(np.hstack([embed(texts), extra, tail_matrix(texts, feats)]))  # refusal v4
    static = get_static_embedder()
    x1 = np.hstack([static.encode(texts), extra])
    y = np.array([r.label for r in rows])
    split = np.array([split_of(r) for r in rows])
    ship = np.array([r.shippable for r in rows])
    src = np.array([r.source for r in rows])
    tr, val = (split == "train") & ship, (split == "validation") & ship
    q = np.clip(p_full, 1e-6, 1 - 1e-6)
    reg = Ridge(alpha=FIRST_STAGE_ALPHA).fit(x1[tr], np.log(q / (1 - q))[tr])
    members = [Member(coef=reg.coef_.astype(float).tolist(), intercept=float(reg.intercept_), a=-1.0, b=0.0)]
    fs = FirstStage(embedding_model=static.model_ref, escalate_above=0.0, members=members)
    p1 = fs.predict_proba_vectors(x1)
    assert np.allclose(p1, 1 / (1 + np.exp(-reg.predict(x1))), atol=1e-6), "exported member differs from sklearn"
    full_flag = p_full >= det.threshold
    cut = escalation_cut(p1[val], full_flag[val], y[val], FIRST_STAGE_MAX_RECALL_LOSS)
    kinds = np.array([r.kind for r in rows])
    for k in FIRST_STAGE_KINDS.get(name, ()):  # refusal v4: ≤ the same loss on each refusal kind too
        m = val & (kinds == k) & (y == 1)
        cut = min(cut, escalation_cut(p1[m], full_flag[m], y[m], FIRST_STAGE_MAX_RECALL_LOSS))
    fs.escalate_above = float(np.floor(cut * 1e6) / 1e6)  # rounded down: the text at the cut still escalates
    assert fs.escalate_above <= det.threshold, "a kept text could be flagged by the first stage's score"
    esc = p1 >= fs.escalate_above
    p_casc = np.where(esc, p_full, p1)
    report: dict[str, Any] = {}
    for tag, m in [("validation (permissive sets, validation split)", val)] + [
            (f"{s} ({'validation split' if LICENCES[s][1] else 'all rows, validation-only set'})",
             (src == s) & ((split == "validation") | ~ship)) for s in sorted(set(src))]:
        if m.any():
            report[tag] = {"escalated": round(float(esc[m].mean()), 4),
                           "full": metrics(y[m], p_full[m], det.threshold),
                           "cascade": metrics(y[m], p_casc[m], det.threshold)}
    fs.card = {"model": f"Ridge(alpha={FIRST_STAGE_ALPHA:g}) from the static embedding to the full detector's logit "
                        "(p1 = its sigmoid), train split only",
               "escalate_above": f"the highest cut losing ≤ {FIRST_STAGE_MAX_RECALL_LOSS:g} recall at the default "
                                 "threshold on the permissive validation split"
                                 + (f", on all positives and on each of {', '.join(FIRST_STAGE_KINDS[name])} refusals"
                                    if name in FIRST_STAGE_KINDS else ""),
               "metrics": report}
    det.first_stage = fs
    print(f"\n== {name} v{base_v}: first stage escalates p1 ≥ {fs.escalate_above:.4f}")
    for k, v in report.items():
        print(f"  {k:60s} esc={v['escalated']:.3f} full={json.dumps(v['full'])}\n  {'':60s} casc={json.dumps(v['cascade'])}")
    if write:
        fs.save(first_stage_path(name, base_v))
        write_card(det)
    return fs.card
