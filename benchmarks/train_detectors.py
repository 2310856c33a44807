"""Train the shipped safety / refusal detectors (evalmon/monitor/detectors/<name>-v<version>.json).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_detectors.py [--data ../shared/benchmarks]
        [--only harmful_request,...] [--embed-only] [--no-write]

Features: the bundled all-MiniLM-L6-v2 embedding (the monitor's own ``Embedder``, same truncation) of
the text. Model: ``CalibratedClassifierCV(LogisticRegression(class_weight="balanced"), method="sigmoid",
cv=5)`` fitted on the *train* split of the permissively licensed sets only (benchmarks/detector_data.py);
the artifact stores the five (coefficients, intercept, Platt a, b) members — the calibrated probability is
their mean, exactly as scikit-learn computes it. The default threshold is chosen on the *validation*
split: the lowest threshold whose false-positive rate on the detector's reference negatives is within
its target. Embeddings are cached under .evalmon/cache/detectors/ (keyed by text hash) so reruns are
cheap. Seeded and deterministic; prints the validation metrics it writes into the artifact.

This file is the CLI and the training of the full detectors; the rest lives beside it: detector_data.py (labelled
rows, licences, split), detector_embeddings.py (features, embedding cache), detector_metrics.py (threshold rule,
validation metrics), detector_first_stage.py (the cascade's first stage, ``--first-stage``) and detector_cards.py
(the model cards in docs/detectors/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_cards import write_card  # noqa: E402
from detector_data import LICENCES, Example, datasets, split_of  # noqa: E402
from detector_embeddings import (  # noqa: E402
    CACHE,
    REFUSAL_FEATURES,
    detector_features,
    embed,
    gibberish_card,
    refusal_pattern_matrix,
    text_key,
)
from detector_first_stage import FIRST_STAGE_OF, add_first_stage  # noqa: E402
from detector_metrics import metrics, refusal_kind_report, threshold_for  # noqa: E402

from evalmon.monitor.detectors import ARTIFACT_DIR, Detector, Member  # noqa: E402
from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder  # noqa: E402

# detector → (input field, reference-negative sources for the threshold, target FPR on them, description)
SPECS: dict[str, tuple[str, tuple[str, ...], float, str]] = {
    "harmful_request": ("prompt", ("coconot",), 0.05,
                        "harmful request (should not be answered) vs benign prompts incl. look-alikes"),
    "jailbreak": ("prompt", ("mt_bench", "gsm8k", "truthfulqa", "jailbreak_classification"), 0.02,
                  "jailbreak / prompt-injection attack (templates, optimised suffixes, LLM-written role-play) vs "
                  "ordinary prompts, plain requests and prompts that are not prose (code, JSON, other languages)"),
    "toxicity": ("response", ("openai_moderation", "decodingtrust_toxicity", "mt_bench"), 0.05,
                 "hateful / toxic / abusive text"),
    "refusal": ("response", ("mt_bench", "truthfulqa", "gsm8k", "smollm2_generated", "harmbench"), 0.03,
                "the response refuses (fully or partly) instead of answering"),
    "pii_sensitive": ("response", ("mt_bench", "truthfulqa"), 0.02,
                      "the response quotes sensitive business or personal information"),
}
SEED = 0
# inverse regularisation per detector (picked on the validation split: harmful_request recall at 5 % look-alike
# FPR was 0.78 / 0.79 / 0.83 / 0.78 for C = 1 / 4 / 16 / 64 without look-alike weights)
C_OF = {"harmful_request": 1.0}
# v2 of harmful_request: training weight of the benign look-alikes (CoCoNot contrast) — a sharper boundary on
# the rows that look harmful. Sweep (threshold at 5 % CoCoNot look-alike FPR, permissive validation recall /
# OKTest FPR): C=16 w=1 0.773/0.038 (v1), C=16 w=3 0.802/0.056, C=4 w=4 0.796/0.047, C=4 w=5 0.810/0.050,
# C=8 w=4 0.819/0.053, C=16 w=5 0.824/0.062 → C=4, w=5 (the best recall with OKTest also ≤ 5 %)
LOOKALIKE_WEIGHT = {"harmful_request": 6.0}
# pii_sensitive: training weight of ordinary chat answers (negatives from ORDINARY_SOURCES). Sweep (C=4, threshold at
# 2 % FP on MT-Bench + TruthfulQA validation answers → EnterprisePII validation recall): w=1 0.667, w=3 0.706,
# w=10 0.759 (HaluEval answers, never used: 0 % FP for each; C=16 within 0.01–0.05 of C=4)
ORDINARY_SOURCES = ("mt_bench", "truthfulqa", "gsm8k")
ORDINARY_WEIGHT = {"pii_sensitive": 10.0, "harmful_request": 6.0, "refusal": 3.0}
# harmful_request v3: its ordinary negatives (chat / instruction prompts; weighted ×ORDINARY_WEIGHT) — v2 flagged
# 5.6 % of the synthesised traffic's benign prompts (MT-Bench writing / argument prompts, enterprise requests)
ORDINARY_SOURCES_OF = {"harmful_request": ("mt_bench", "truthfulqa", "gsm8k", "jailbreak_classification",
                                           "vicuna80", "lfqa", "coconot_other")}
# ... and a second threshold constraint: ≤ this FPR on the validation split of those ordinary prompts (the threshold
# is the lowest meeting both). Sweep (permissive validation split; recall / CoCoNot look-alike FP / ordinary FP):
# (at that threshold rule) C=4 lw=5 ow=1 (v2's setting + the new data) 0.778 / 0.018 / 0.009; C=4 lw=5 ow=10 0.789 / 0.046 / 0.008;
# C=2 lw=5 ow=5 0.798 / 0.028 / 0.009; C=16 lw=5 ow=10 0.778; C=0.5 lw=5 ow=5 0.782; C=1 lw=5 ow=5 0.813 / 0.046 /
# 0.009; C=1 lw=6 ow=6 0.819 / 0.046 / 0.009 (shipped as v3: C_OF, LOOKALIKE_WEIGHT, ORDINARY_WEIGHT)
ORDINARY_FPR = {"harmful_request": 0.01}
# jailbreak v2: also ≤ 2 % of the validation split of ordinary prompts that are not prose (code, MMLU math / CS
# questions, JSON: benchmarks/detector_data_structured.py) — a separate constraint, so that the many easy MMLU rows
# cannot dilute the FPR on the prose prompts (pooled into one reference they lowered the threshold 0.73 → 0.28 and
# let 6.9 % of benign role-play prompts through)
STRUCTURED_FPR = {"jailbreak": (0.02, ("mit_code", "mmlu_questions", "json_prompts", "faker_foreign"))}
# refusal v4: a second threshold constraint — ≤ this share of the validation split's jailbroken / harmful answers
# (GPTFuzz, HarmBench rows labelled as answers: mostly a disclaimer, then the help asked for) refused: v3's share with
# its cascade (the default), so v4 refuses no more of them than v3 did
ANSWER_FPR = {"refusal": 0.237}
ANSWER_SOURCES = ("gptfuzz", "harmbench")
# toxicity v2: the calibration folds are shuffled (seeded) — unshuffled, each fold is a block of one or two sources.
# Sweep (permissive validation split without the new short answers = v1's rows; PR-AUC / HaluEval answers flagged):
# v1 0.890 / 1.8 %; shuffled folds alone 0.893 / 1.8 %; + BBH and GSM8K short answers 0.891 / 0.3 % (shipped);
# + also MMLU / TruthfulQA short answer phrases 0.884 / 0.2 % (×0.3 weight: 0.889 / 0.3 %); C = 8: 0.892 / 0.3 %
CV_SHUFFLE = {"toxicity"}
# artifact version written per detector (load_detector loads CURRENT unless told otherwise)
VERSION_OF = {"harmful_request": "3", "jailbreak": "2", "toxicity": "2", "refusal": "4", "pii_sensitive": "1"}


def train_one(name: str, rows: list[Example], write: bool) -> dict[str, Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    field, ref_sources, target_fpr, what = SPECS[name]
    X = detector_features(name, [r.text for r in rows])
    y = np.array([r.label for r in rows])
    split = np.array([split_of(r) for r in rows])
    ship = np.array([r.shippable for r in rows])
    src = np.array([r.source for r in rows])
    tr = (split == "train") & ship
    c_reg = C_OF.get(name, 4.0)
    cv = StratifiedKFold(5, shuffle=True, random_state=SEED) if name in CV_SHUFFLE else 5
    clf = CalibratedClassifierCV(LogisticRegression(C=c_reg, class_weight="balanced", max_iter=3000),
                                 method="sigmoid", cv=cv)
    weight = np.where((src == "coconot") & (y == 0), LOOKALIKE_WEIGHT.get(name, 1.0), 1.0)
    ordinary = ORDINARY_SOURCES_OF.get(name, ORDINARY_SOURCES)
    weight *= np.where(np.isin(src, ordinary) & (y == 0), ORDINARY_WEIGHT.get(name, 1.0), 1.0)
    clf.fit(X[tr], y[tr], sample_weight=weight[tr])
    members = [Member(coef=c.estimator.coef_[0].astype(float).tolist(), intercept=float(c.estimator.intercept_[0]),
                      a=float(c.calibrators[0].a_), b=float(c.calibrators[0].b_))
               for c in clf.calibrated_classifiers_]
    det = Detector(name=name, version=VERSION_OF[name], field=field, embedding_model=DEFAULT_MODEL,
                   max_chars=get_embedder(DEFAULT_MODEL).max_chars, threshold=0.5, members=members)
    p = det.predict_proba_vectors(X)
    assert np.allclose(p, clf.predict_proba(X)[:, 1], atol=1e-6), "exported members differ from sklearn"
    if name == "refusal":  # the signal's decision: a phrase family OR the classifier (threshold and figures)
        p = np.where(refusal_pattern_matrix([r.text for r in rows], cues=False).any(axis=1), 1.0, p)
    val = (split == "validation") & ship
    ref = val & (y == 0) & np.isin(src, ref_sources)
    det.threshold = round(threshold_for(p[ref], target_fpr), 6)
    # further threshold constraints (each: ≤ target FPR on the validation split of those sources' negatives), in the
    # card under these keys: harmful_request v3's ordinary prompts, refusal v4's jailbroken answers, jailbreak v2's
    # prompts that are not prose
    more_fpr = {key: (target, sources) for key, target, sources in (
        ("ordinary_fpr", ORDINARY_FPR.get(name), ordinary), ("answer_fpr", ANSWER_FPR.get(name), ANSWER_SOURCES),
        ("structured_fpr", *STRUCTURED_FPR.get(name, (None, ())))) if target is not None}
    for target, sources in more_fpr.values():
        ref_more = val & (y == 0) & np.isin(src, sources)
        det.threshold = max(det.threshold, round(threshold_for(p[ref_more], target), 6))
    report: dict[str, Any] = {"validation (permissive sets, validation split)": metrics(y[val], p[val], det.threshold)}
    for s in sorted(set(src)):
        m = (src == s) & ((split == "validation") | ~ship)
        if m.any():
            tag = f"{s} ({'validation split' if LICENCES[s][1] else 'all rows, validation-only set'})"
            report[tag] = metrics(y[m], p[m], det.threshold)
    if name == "refusal":
        report.update(refusal_kind_report(rows, X, p, det, val))
    kinds = np.array([r.kind for r in rows])
    for k in sorted(set(kinds[src == "harmbench_attacks"])):  # jailbreak v2: recall per attack method
        report[f"harmbench_attacks {k} (validation split)"] = metrics(
            y[val & (kinds == k)], p[val & (kinds == k)], det.threshold)
    for k in sorted(set(kinds[src == "hostile_ordinary"])):  # ... and FPR per kind of the hostile ordinary prompts
        m = (src == "hostile_ordinary") & (kinds == k)
        report[f"hostile_ordinary {k} (validation-only)"] = metrics(y[m], p[m], det.threshold)
    det.card = {
        "description": what, "field": field, "target_fpr": target_fpr,
        "threshold_reference_negatives": list(ref_sources),
        **{key: {"target": target, "sources": list(sources)} for key, (target, sources) in more_fpr.items()},
        "training_sets": {s: LICENCES[s][0] for s in sorted(set(src[tr]))},
        "validation_only_sets": {s: LICENCES[s][0] for s in sorted(set(src[~ship]))},
        "train_rows": int(tr.sum()), "train_positives": int(y[tr].sum()),
        "split": "sha256(seed, group) < 0.3 → validation; groups = template / question / item",
        "model": f"CalibratedClassifierCV(LogisticRegression(C={c_reg:g}, class_weight=balanced), sigmoid, cv=5"
                 + (" shuffled (seeded))" if name in CV_SHUFFLE else ")")
                 + (f"; CoCoNot look-alikes weighted ×{LOOKALIKE_WEIGHT[name]:g}" if LOOKALIKE_WEIGHT.get(name, 1) != 1
                    else "")
                 + (f"; ordinary {'prompts' if field == 'prompt' else 'answers'} ({', '.join(ordinary)}) weighted "
                    f"×{ORDINARY_WEIGHT[name]:g}"
                    if ORDINARY_WEIGHT.get(name, 1) != 1 else ""),
        "metrics": report,
        **({"features": REFUSAL_FEATURES} if name == "refusal" else {}),
        **({"features": gibberish_card()} if name == "jailbreak" else {}),
    }
    print(f"\n== {name}: threshold {det.threshold:.4f} (FPR ≤ {target_fpr:.0%} on {', '.join(ref_sources)})")
    for k, v in report.items():
        print(f"  {k:60s} {json.dumps(v)}")
    if write:
        det.save(ARTIFACT_DIR / f"{name}-v{det.version}.json")
        write_card(det)
    return det.card



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/benchmarks")
    ap.add_argument("--only", default="")
    ap.add_argument("--embed-only", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="only rows whose embedding is cached (quick look)")
    ap.add_argument("--first-stage", action="store_true",
                    help="add the cascade's first stage to harmful_request / jailbreak / toxicity (FIRST_STAGE_OF)")
    args = ap.parse_args()
    np.random.seed(SEED)
    ds = datasets(args.data)
    names = [n for n in SPECS if not args.only or n in args.only.split(",")]
    if args.embed_only:
        texts = list(dict.fromkeys(r.text for n in names for r in ds[n]))
        texts.sort(key=len)
        embed(texts)
        return
    if args.first_stage:
        for n in (n for n in names if n in FIRST_STAGE_OF):
            add_first_stage(n, ds[n], write=not args.no_write)
        return
    for n in names:
        rows = ds[n]
        if args.cached_only:
            have = set(np.load(CACHE / "embeddings.npz")["keys"].tolist())
            rows = [r for r in rows if text_key(r.text) in have]
        train_one(n, rows, write=not args.no_write)


if __name__ == "__main__":
    main()
