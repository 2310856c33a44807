"""Train the context-free hallucination detector (signal ``halludetect``) and report it on held-out data.

    .venv/bin/python benchmarks/train_hallucination.py [--seed 0] [--per-label 1] [--variant v1+pmi]
        [--phd 300] [--felm 309] [--out PATH] [--json REPORT.json] [--cache C.pkl] [--data ../shared/benchmarks]
        [--probe HIDDEN.pkl [--probe-val 150]]

Data (``../shared/benchmarks``, read in place; licences from each SOURCE.md):

* **train** — truthfulqa_judge (Apache-2.0), questions whose seeded hash puts them in the train split (70%),
  at most ``--per-label`` answers per label per question (validation: one); factool_factuality knowledge_qa claims
  (Apache-2.0), prompts in the same train split.
* **validation** (never trained on; no retrieved contexts anywhere):
  ``truthfulqa_val`` — the other 30% of TruthfulQA questions (question-grouped: no question shared);
  ``halueval_qa`` — HaluEval QA (MIT) questions with the right and the hallucinated answer, without the
  knowledge passages (not trained on: the synthesised traffic uses these rows);
  ``halueval2_statements`` — HaluEval 2.0 human annotation (no licence: validation only), each atomic
  statement as the answer to its question; ``phd_wiki`` — PHD (no licence: validation only) passages about
  entities; ``felm_wk_science`` — FELM (CC BY-NC-SA: validation only) world-knowledge and science answers.

Features (``evalmon.monitor.signals.halludetect.feature_matrix``): the feature sets of ``VARIANTS`` — v1's
statistics (prompt/response MiniLM cosine, log word count, token statistics of the response under
SmolLM2-135M-Instruct), the PMI features (the response scored again without its question) and two text
features. Each variant is fitted with logistic regression (StandardScaler + C=0.5, class-balanced) and
gradient boosting and reported on every validation set: PR-AUC at the natural base rate and with the
hallucinated rows subsampled to 20% / 10% (seeded, mean of 200 draws — the issue's target is ≥ 2× the base
rate), ROC-AUC, and pooled over the validation sets. ``--variant`` (logistic regression) is written as the
artifact (``--out``, default the package's); its flag threshold is the score that 10% of the training
split's truthful answers exceed in its out-of-fold (question-grouped 5-fold) predictions. ``--cache``: the
proxy model's token log-probs (and ``<cache>.emb.pkl`` the MiniLM vectors) — reruns skip the model.

``--probe HIDDEN.pkl``: also screen hidden-state probes (SAPLMA-style; model card "What was tried") against v1 on
the same rows — SmolLM2's hidden states (``PROBE_LAYERS``; mean and last over the positions that predict the
response tokens, i.e. the positions the token log-probs come from) of every training row and of ``--probe-val``
seeded rows per validation set, cached in HIDDEN.pkl; logistic regressions on them (optionally PCA, optionally
with v1's features), with a paired bootstrap of the chosen probe minus v1.

Modules beside this one (the CLI, the proxy-model scoring, the features and the v1/v2 training and report):
hallucination_data.py (the labelled rows), hallucination_metrics.py (PR-AUC at a base rate) and
hallucination_probe.py (``--probe``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hallucination_data import Row, load_sets, row_key  # noqa: E402
from hallucination_metrics import RATES, scores_entry  # noqa: E402
from hallucination_probe import probe_screen  # noqa: E402

from evalmon.monitor.signals.halludetect import (  # noqa: E402
    PMI_FEATURES,
    STAT_FEATURES,
    TEXT_FEATURES,
    feature_matrix,
)
from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal, token_stats  # noqa: E402

DEFAULT_OUT = ROOT / "evalmon" / "monitor" / "signals" / "detectors" / "halludetect-v2.json"  # writes version 2
TRAFFIC_BASE_RATE = 0.2
TARGET_FPR = 0.1  # the flag's threshold: this share of the training split's truthful answers (out of fold)


def proxy_logprobs(rows: list[Row], proxy: ProxyUncertaintySignal, cache: Path | None, name: str,
                   chunk: int = 64) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Each row's response token log-probs with and without its question under the proxy model. ``cache``: a
    pickle {sha256(prompt NUL response)[:20]: {"cond", "unc"}} updated after every chunk (an interrupted run
    resumes; it belongs to one proxy model and settings). Returns them and the rows/s of the chunks computed."""
    raw: dict[str, Any] = pickle.loads(cache.read_bytes()) if cache and cache.exists() else {}
    # an empty response is not scored (the signal's rule: its only "token" would be the chat template's
    # trailing newline): no log-probs, so its statistics are NaN and imputed, as in v1's training
    todo = [r for r in rows if r["response"].strip() and row_key(r) not in raw]
    seconds = 0.0
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        frame = pd.DataFrame({"prompt": [r["prompt"] for r in part], "response": [r["response"] for r in part]})
        t0 = time.perf_counter()
        _, cond, unc = proxy.scored_logprobs(frame, unconditional=True)
        seconds += time.perf_counter() - t0
        for r, c, u in zip(part, cond, unc, strict=True):
            raw[row_key(r)] = {"cond": np.asarray(c.logprobs), "unc": np.asarray(u.logprobs)}
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(pickle.dumps(raw))
        print(f"  {name}: {start + len(part)}/{len(todo)} rows scored", file=sys.stderr, flush=True)
    none = np.zeros(0)
    out = [(np.asarray(raw[row_key(r)]["cond"], dtype=float), np.asarray(raw[row_key(r)]["unc"], dtype=float))
           if r["response"].strip() else (none, none) for r in rows]
    return out, (len(todo) / seconds if seconds else float("nan"))


def cached_encoder(encode: Any, cache: Path | None) -> Any:
    """``encode`` remembering each text's MiniLM vector in ``<cache>.emb.pkl`` (a dict text → vector)."""
    path = cache.with_suffix(".emb.pkl") if cache else None
    memo: dict[str, np.ndarray] = pickle.loads(path.read_bytes()) if path and path.exists() else {}

    def run(texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
            if path:
                path.write_bytes(pickle.dumps(memo))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 0))
    return run


def featurise(rows: list[Row], lps: list[tuple[np.ndarray, np.ndarray]], encode: Any, names: list[str]
              ) -> np.ndarray:
    """Feature rows ``names`` (``halludetect.feature_matrix``) from the proxy model's token log-probs."""
    stats = pd.DataFrame([{f"uncertainty.{k}": v for k, v in token_stats(c, chars=len(r["response"])).items()}
                          for r, (c, _) in zip(rows, lps, strict=True)])
    return feature_matrix(names, [r["prompt"] for r in rows], [r["response"] for r in rows], stats,
                          [u for _, u in lps], [c for c, _ in lps], encode=encode)


VARIANTS = {  # feature sets compared on the validation sets; --variant picks the shipped one
    "v1": list(STAT_FEATURES),
    "v1+pmi": list(STAT_FEATURES) + list(PMI_FEATURES),
    "v1+pmi+text": list(STAT_FEATURES) + list(PMI_FEATURES) + list(TEXT_FEATURES),
    "pmi+text (no length)": [f for f in (*STAT_FEATURES, *PMI_FEATURES, *TEXT_FEATURES)
                             if f not in ("log_n_tokens", "log_words")],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "benchmarks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-label", type=int, default=1)
    ap.add_argument("--truthfulqa-val", type=int, default=300, help="TruthfulQA validation answers")
    ap.add_argument("--halueval-qa", type=int, default=150, help="HaluEval QA questions (2 answers each)")
    ap.add_argument("--halueval2", type=int, default=300, help="HaluEval 2.0 statements")
    ap.add_argument("--phd", type=int, default=300, help="PHD passages (seeded sample; 0: none)")
    ap.add_argument("--felm", type=int, default=309, help="FELM wk + science answers (seeded sample; 0: none)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="v1+pmi")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="proxy-model log-prob cache (a pickle; reruns skip it)")
    ap.add_argument("--probe", type=Path, default=None, help="screen hidden-state probes; their cache (a pickle)")
    ap.add_argument("--probe-val", type=int, default=150, help="rows per validation set for the probe screen")
    args = ap.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder

    train, vals = load_sets(args)
    proxy, encode = ProxyUncertaintySignal(), cached_encoder(get_embedder(DEFAULT_MODEL).encode, args.cache)
    every = list(dict.fromkeys(f for v in VARIANTS.values() for f in v))
    lps, rate = proxy_logprobs(train, proxy, args.cache, "train")
    x_all, y_train = featurise(train, lps, encode, every), np.array([r["label"] for r in train])
    groups = [r["group"] for r in train]
    impute_all = np.nanmean(x_all, axis=0)
    x_all = np.where(np.isnan(x_all), impute_all, x_all)
    val_x: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, rows in vals.items():
        vlps, _ = proxy_logprobs(rows, proxy, args.cache, name)
        x = featurise(rows, vlps, encode, every)
        val_x[name] = (np.where(np.isnan(x), impute_all, x), np.array([r["label"] for r in rows]))

    def lr() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000))

    def gbm() -> Any:
        return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, random_state=args.seed)

    table: dict[str, dict[str, Any]] = {}
    for variant, names in VARIANTS.items():
        cols = [every.index(f) for f in names]
        for kind, make in (("logreg", lr), ("gbm", gbm)):
            model = make().fit(x_all[:, cols], y_train)
            pooled_y, pooled_p, per = [], [], {}
            for name, (x, y) in val_x.items():
                p = model.predict_proba(x[:, cols])[:, 1]
                per[name] = scores_entry(y, p, args.seed)
                pooled_y.append(y)
                pooled_p.append(p)
            per["pooled"] = scores_entry(np.concatenate(pooled_y), np.concatenate(pooled_p), args.seed)
            table[f"{variant} / {kind}"] = per
    names = VARIANTS[args.variant]
    cols = [every.index(f) for f in names]
    oof = cross_val_predict(lr(), x_all[:, cols], y_train, groups=groups, cv=GroupKFold(5),
                            method="predict_proba")[:, 1]
    threshold = float(np.quantile(oof[y_train == 0], 1 - TARGET_FPR))  # ≈ TARGET_FPR of truthful answers flagged
    shipped = lr().fit(x_all[:, cols], y_train)
    validation = {}
    for name, (x, y) in val_x.items():
        p = shipped.predict_proba(x[:, cols])[:, 1]
        flag = p >= threshold
        validation[name] = {**table[f"{args.variant} / logreg"][name],
                            "at_threshold": {"precision": float(y[flag].mean()) if flag.any() else None,
                                             "recall": float(flag[y == 1].mean()), "fpr": float(flag[y == 0].mean())}}
    validation["pooled"] = table[f"{args.variant} / logreg"]["pooled"]
    scaler, model = shipped.steps[0][1], shipped.steps[1][1]
    artifact = {
        "name": "halludetect", "version": "2", "embedding_model": DEFAULT_MODEL,
        "proxy_model": "smollm2-135m-instruct (chat template, float32)", "response_embedding": False,
        "features": names, "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
        "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]),
        "impute": impute_all[cols].tolist(), "threshold": threshold,
        "training": {"seed": args.seed, "per_label": args.per_label, "variant": args.variant,
                     "datasets": {"truthfulqa_judge": "Apache-2.0", "factool_factuality/knowledge_qa": "Apache-2.0"},
                     "rows": len(train), "base_rate": float(y_train.mean()),
                     "oof_pr_auc": float(average_precision_score(y_train, oof)),
                     "split": "70% of questions by seeded blake2b hash (question-grouped)"},
        "validation": validation,
        "validation_note": f"PR-AUC with the hallucinated rows subsampled to {RATES} (seed {args.seed}, mean of 200 "
                           "draws); pooled: all validation sets together",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(artifact, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"train: {len(train)} rows, base rate {y_train.mean():.3f}, out-of-fold PR-AUC "
          f"{artifact['training']['oof_pr_auc']:.3f}, threshold {threshold:.3f}; proxy model {rate:.2f} rows/s")
    print(f"{'variant / model':28} {'validation set':22} {'n':>5} {'base':>5} {'PR-AUC':>6} {'ROC':>5} "
          f"{'PR@.2':>6} {'PR@.1':>6}")
    for key, per in table.items():
        for name, e in per.items():
            print(f"{key:28} {name:22} {e['rows']:5d} {e['base_rate']:5.2f} {e['pr_auc']:6.3f} {e['roc_auc']:5.3f} "
                  f"{e['pr_auc_at_0.2'] or float('nan'):6.3f} {e['pr_auc_at_0.1'] or float('nan'):6.3f}")
    for name, e in validation.items():
        if "at_threshold" in e:
            t = e["at_threshold"]
            print(f"shipped at {threshold:.3f}: {name}: precision {t['precision'] or float('nan'):.2f} recall "
                  f"{t['recall']:.2f} FPR {t['fpr']:.2f}")
    print(f"wrote {args.out}")
    probes = None
    if args.probe:
        v1_cols = [every.index(f) for f in VARIANTS["v1"]]
        probes = probe_screen(args, train, {n: vals[n] for n in val_x}, x_all[:, v1_cols],
                              {n: x[:, v1_cols] for n, (x, _) in val_x.items()}, lr().fit(x_all[:, v1_cols], y_train))
    if args.json:
        args.json.write_text(json.dumps({"variants": table, "artifact": artifact, "probes": probes}, indent=2) + "\n",
                             encoding="utf-8")


if __name__ == "__main__":
    main()
