"""Train the context-free hallucination detector (signal ``halludetect``) and report it on held-out data.

    .venv/bin/python benchmarks/train_hallucination.py [--seed 0] [--per-label 2] [--out PATH] [--json M.json]
        [--cache DIR] [--data ../shared/benchmarks]

Data (``../shared/benchmarks``, read in place; licences from each SOURCE.md):

* **train** — truthfulqa_judge (Apache-2.0), questions whose seeded hash puts them in the train split (70%),
  at most ``--per-label`` answers per label per question (validation: one); factool_factuality knowledge_qa claims
  (Apache-2.0), prompts in the same train split.
* **validation** (never trained on; no retrieved contexts anywhere):
  ``truthfulqa_val`` — the other 30% of TruthfulQA questions (question-grouped: no question shared);
  ``halueval_qa`` — HaluEval QA (MIT) questions with the right and the hallucinated answer, without the
  knowledge passages (not trained on: the synthesised traffic uses these rows);
  ``halueval2_statements`` — HaluEval 2.0 human annotation (no licence: validation only), each atomic
  statement as the answer to its question, labelled by the annotators.

Features (``evalmon.monitor.signals.halludetect.features``): the prompt/response MiniLM cosine, the log
word count and the token statistics of the response under SmolLM2-135M-Instruct (the embedded checkpoint;
``uncertainty`` signal); ``--embeddings`` adds the response's 384-d embedding (reported as ``+emb PR``: it
learnt TruthfulQA's topics and did not transfer to HaluEval, so v1 ships without it). Model: StandardScaler + LogisticRegression (C=0.5,
class-balanced); the flag's threshold is the score that 10% of the training split's truthful answers exceed
in its out-of-fold (question-grouped 5-fold) predictions. Writes the JSON artifact (``--out``, default the package's) and prints PR-AUC / base rate /
ROC-AUC per validation set, with two ablations (embeddings only, statistics only), and the PR-AUC with the
hallucinated rows subsampled to a 20% share (``PR@0.2``: seeded, mean of 200 draws) — the balanced sets at
a traffic-like base rate, where the issue's "≥ 2× base rate" target (0.4) is reachable.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evalmon.monitor.signals.halludetect import ARTIFACT, STAT_FEATURES, features  # noqa: E402
from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal  # noqa: E402

DEFAULT_OUT = ROOT / "evalmon" / "monitor" / "signals" / "detectors" / ARTIFACT
TRAFFIC_BASE_RATE = 0.2
TARGET_FPR = 0.1  # the flag's threshold: this share of the training split's truthful answers (out of fold)
Row = dict[str, Any]  # {prompt, response, label (1 = hallucinated), group, dataset}


def _split(group: str, seed: int) -> str:
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest(), "big") / 2**64
    return "train" if h < 0.7 else "val"


def truthfulqa(data: Path, seed: int, per_label: int) -> tuple[list[Row], list[Row]]:
    rng = np.random.default_rng(seed)
    by_q: dict[str, list[Row]] = {}
    with open(data / "truthfulqa_judge" / "finetune_truth.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            q, a = r["prompt"].removeprefix("Q: ").split("\nA: ", 1)
            by_q.setdefault(q, []).append({"prompt": q, "response": a.removesuffix("\nTrue:").strip(),
                                           "label": int(r["completion"].strip() == "no"), "group": q,
                                           "dataset": "truthfulqa_judge"})
    train, val = [], []
    for q in sorted(by_q):
        split = _split(q, seed)
        k = per_label if split == "train" else 1
        for label in (0, 1):
            rows = [r for r in by_q[q] if r["label"] == label]
            for i in rng.permutation(len(rows))[:k]:
                (train if split == "train" else val).append(rows[i])
    return train, val


def factool(data: Path, seed: int) -> list[Row]:
    rows = []
    with open(data / "factool_factuality" / "knowledge_qa" / "knowledge_qa.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if _split(r["prompt"], seed) != "train":
                continue
            for c in r.get("claims") or []:
                if isinstance(c.get("label"), bool):
                    rows.append({"prompt": r["prompt"], "response": c["claim"], "label": int(not c["label"]),
                                 "group": r["prompt"], "dataset": "factool_knowledge_qa"})
    return rows


def halueval_qa(data: Path, seed: int, n: int) -> list[Row]:
    lines = (data / "halueval" / "generation" / "qa" / "qa_one-turn_data.json").read_text("utf-8").splitlines()
    rows = [json.loads(x) for x in lines if x.strip()]
    pick = np.random.default_rng(seed).permutation(len(rows))[:n]
    out = []
    for i in sorted(pick):
        r = rows[i]
        for label, ans in ((0, r["right_answer"]), (1, r["hallucinated_answer"])):
            out.append({"prompt": r["question"], "response": ans, "label": label, "group": r["question"],
                        "dataset": "halueval_qa"})
    return out


def halueval2(data: Path, seed: int, n: int) -> list[Row]:
    out = []
    for f in sorted(glob.glob(str(data / "halueval2_human" / "human_annotation" / "*.json"))):
        for r in json.loads(Path(f).read_text("utf-8")):
            facts, judge = r.get("chatgpt_fact") or [], r.get("human_judge") or []
            if len(facts) != len(judge):
                continue
            for fact, lab in zip(facts, judge, strict=True):
                if lab in ("true", "false"):
                    out.append({"prompt": r["user_query"], "response": fact, "label": int(lab == "false"),
                                "group": r["user_query"], "dataset": "halueval2_statements"})
    pick = np.random.default_rng(seed).permutation(len(out))[:n]
    return [out[i] for i in sorted(pick)]


def pr_auc_at_rate(y: np.ndarray, p: np.ndarray, rate: float, seed: int, reps: int = 200) -> float | None:
    """Mean PR-AUC when the positives are subsampled (seeded) to ``rate`` of the rows — the balanced
    validation sets at a traffic-like hallucination share, where "2× the base rate" is reachable."""
    from sklearn.metrics import average_precision_score

    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = round(rate / (1 - rate) * len(neg))
    if k < 1 or k > len(pos):
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        idx = np.concatenate([neg, rng.choice(pos, k, replace=False)])
        vals.append(average_precision_score(y[idx], p[idx]))
    return float(np.mean(vals))


def featurise(rows: list[Row], proxy: ProxyUncertaintySignal, encode: Any, cache: Path | None, name: str,
              chunk: int = 128) -> tuple[np.ndarray, float]:
    """Feature rows (chunks cached in ``cache`` by content, so an interrupted run resumes); records/s of the
    proxy model over the chunks it computed (NaN when all came from the cache)."""
    parts, seconds, computed = [], 0.0, 0
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        key = hashlib.sha256(json.dumps([[r["prompt"], r["response"]] for r in part]).encode()).hexdigest()[:16]
        path = cache / f"{key}.npy" if cache else None
        if path and path.exists():
            parts.append(np.load(path))
            continue
        frame = pd.DataFrame({"prompt": [r["prompt"] for r in part], "response": [r["response"] for r in part]})
        t0 = time.perf_counter()
        stats = proxy.compute(frame)
        seconds, computed = seconds + time.perf_counter() - t0, computed + len(part)
        parts.append(features(frame["prompt"].tolist(), frame["response"].tolist(), stats, encode=encode))
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, parts[-1])
        print(f"  {name}: {start + len(part)}/{len(rows)} rows", file=sys.stderr, flush=True)
    return np.concatenate(parts), (computed / seconds if seconds else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "benchmarks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-label", type=int, default=1)
    ap.add_argument("--truthfulqa-val", type=int, default=300, help="TruthfulQA validation answers")
    ap.add_argument("--halueval-qa", type=int, default=150, help="HaluEval QA questions (2 answers each)")
    ap.add_argument("--halueval2", type=int, default=300, help="HaluEval 2.0 statements")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--embeddings", action="store_true",
                    help="also train on the response's 384-d embedding (did not transfer: see the model card)")
    ap.add_argument("--cache", type=Path, default=None, help="feature cache directory (reruns skip the model)")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from evalmon.monitor.signals.embeddings import DEFAULT_MODEL, get_embedder

    tqa_train, tqa_val = truthfulqa(args.data, args.seed, args.per_label)
    train = tqa_train + factool(args.data, args.seed)
    rng = np.random.default_rng(args.seed)
    tqa_val_rows = [tqa_val[i] for i in sorted(rng.permutation(len(tqa_val))[:args.truthfulqa_val])]
    vals = {"truthfulqa_val": tqa_val_rows, "halueval_qa": halueval_qa(args.data, args.seed, args.halueval_qa),
            "halueval2_statements": halueval2(args.data, args.seed, args.halueval2)}
    assert not {r["group"] for r in tqa_train} & {r["group"] for r in tqa_val}, "question in train and val"
    proxy = ProxyUncertaintySignal()
    encode = get_embedder(DEFAULT_MODEL).encode
    x_train, rate = featurise(train, proxy, encode, args.cache, "train")
    y_train = np.array([r["label"] for r in train])
    groups = [r["group"] for r in train]
    impute = np.nanmean(x_train, axis=0)
    x_train = np.where(np.isnan(x_train), impute, x_train)
    dim = x_train.shape[1] - len(STAT_FEATURES)
    shipped = slice(None) if args.embeddings else slice(dim, None)  # the shipped model's columns

    def model() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000))

    oof = cross_val_predict(model(), x_train[:, shipped], y_train, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
    threshold = float(np.quantile(oof[y_train == 0], 1 - TARGET_FPR))  # ≈ TARGET_FPR of truthful answers flagged
    subsets = {"shipped": shipped, "with_embedding": slice(None), "embeddings_only": slice(0, dim),
               "statistics_only": slice(dim, None)}
    fitted = {k: model().fit(x_train[:, s], y_train) for k, s in subsets.items()}
    report: dict[str, Any] = {"train_rows": len(train), "train_base_rate": float(y_train.mean()),
                              "oof_pr_auc": float(average_precision_score(y_train, oof)),
                              "threshold": threshold, "proxy_records_per_s": rate, "validation": {}}
    for name, rows in vals.items():
        x, _ = featurise(rows, proxy, encode, args.cache, name)
        x = np.where(np.isnan(x), impute, x)
        y = np.array([r["label"] for r in rows])
        entry: dict[str, Any] = {"rows": len(rows), "base_rate": float(y.mean())}
        for k, s in subsets.items():
            p = fitted[k].predict_proba(x[:, s])[:, 1]
            entry[k] = {"pr_auc": float(average_precision_score(y, p)), "roc_auc": float(roc_auc_score(y, p))}
        p = fitted["shipped"].predict_proba(x[:, shipped])[:, 1]
        flag = p >= threshold
        entry["at_threshold"] = {"precision": float(y[flag].mean()) if flag.any() else None,
                                 "recall": float(flag[y == 1].mean()), "fpr": float(flag[y == 0].mean())}
        entry["pr_auc_over_base"] = entry["shipped"]["pr_auc"] / entry["base_rate"]
        entry[f"pr_auc_at_base_{TRAFFIC_BASE_RATE}"] = pr_auc_at_rate(y, p, TRAFFIC_BASE_RATE, args.seed)
        report["validation"][name] = entry
    scaler, lr = fitted["shipped"].steps[0][1], fitted["shipped"].steps[1][1]
    artifact = {
        "name": "halludetect", "version": "1", "embedding_model": DEFAULT_MODEL,
        "proxy_model": "smollm2-135m-instruct (chat template, float32)",
        "response_embedding": bool(args.embeddings),
        "features": [f"response_embedding[{i}]" for i in range(dim) if args.embeddings] + list(STAT_FEATURES),
        "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]), "impute": impute[shipped].tolist(), "threshold": threshold,
        "training": {"seed": args.seed, "per_label": args.per_label,
                     "datasets": {"truthfulqa_judge": "Apache-2.0", "factool_factuality/knowledge_qa": "Apache-2.0"},
                     "rows": len(train), "split": "70% of questions by seeded blake2b hash (question-grouped)"},
        "validation": report["validation"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(artifact, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"train: {len(train)} rows, base rate {y_train.mean():.3f}, out-of-fold PR-AUC {report['oof_pr_auc']:.3f}, "
          f"threshold {threshold:.2f}; proxy model {rate:.1f} records/s")
    print(f"{'validation set':24} {'n':>5} {'base':>6} {'PR-AUC':>7} {'×base':>6} {'ROC':>6} "
          f"{'+emb PR':>7} {'emb PR':>7} {'prec':>6} {'recall':>6} {'FPR':>6} {'PR@0.2':>7}")
    for name, e in report["validation"].items():
        t = e["at_threshold"]
        print(f"{name:24} {e['rows']:5d} {e['base_rate']:6.3f} {e['shipped']['pr_auc']:7.3f} "
              f"{e['pr_auc_over_base']:6.2f} {e['shipped']['roc_auc']:6.3f} {e['with_embedding']['pr_auc']:7.3f} "
              f"{e['embeddings_only']['pr_auc']:7.3f} "
              f"{t['precision'] or float('nan'):6.3f} {t['recall']:6.3f} {t['fpr']:6.3f} "
              f"{e[f'pr_auc_at_base_{TRAFFIC_BASE_RATE}'] or float('nan'):7.3f}")
    print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
