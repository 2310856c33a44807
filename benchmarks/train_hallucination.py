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
"""

from __future__ import annotations

import argparse
import glob
import hashlib
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


def phd(data: Path, seed: int, n: int) -> list[Row]:
    """PHD (research use: validation only): ChatGPT's short Wikipedia-style passage about an entity, labelled
    factual / non-factual by the authors; the prompt is the request for such a passage."""
    out = []
    for rows in json.loads((data / "phd_hallucination" / "PHD_benchmark.json").read_text("utf-8")).values():
        for r in rows:
            if r.get("label") in ("factual", "non-factual") and r.get("AI"):
                out.append({"prompt": f"Write a brief Wikipedia-style passage about {r['entity']}.",
                            "response": r["AI"], "label": int(r["label"] == "non-factual"), "group": r["entity"],
                            "dataset": "phd_wiki"})
    return [out[i] for i in np.random.default_rng(seed).permutation(len(out))[:n]]


def felm(data: Path, seed: int, n: int, parts: tuple[str, ...] = ("wk", "science")) -> list[Row]:
    """FELM (CC BY-NC-SA: validation only) world-knowledge and science answers of ChatGPT; hallucinated when
    the annotators marked any segment false."""
    out = []
    for part in parts:
        for line in (data / "felm" / "test" / f"{part}.jsonl").read_text("utf-8").splitlines():
            r = json.loads(line) if line.strip() else None
            segments = (r or {}).get("segmented_response") or []
            if r and r.get("labels") and segments:  # a few rows lack "response": join the segments
                response = r["response"] if isinstance(r.get("response"), str) else " ".join(segments)
                out.append({"prompt": r["prompt"], "response": response, "label": int(not all(r["labels"])),
                            "group": r["prompt"], "dataset": "felm_wk_science"})
    return [out[i] for i in np.random.default_rng(seed).permutation(len(out))[:n]]


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


def proxy_logprobs(rows: list[Row], proxy: ProxyUncertaintySignal, cache: Path | None, name: str,
                   chunk: int = 64) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Each row's response token log-probs with and without its question under the proxy model. ``cache``: a
    pickle {sha256(prompt NUL response)[:20]: {"cond", "unc"}} updated after every chunk (an interrupted run
    resumes; it belongs to one proxy model and settings). Returns them and the rows/s of the chunks computed."""
    def key(r: Row) -> str:
        return hashlib.sha256(f"{r['prompt']}\x00{r['response']}".encode()).hexdigest()[:20]

    raw: dict[str, Any] = pickle.loads(cache.read_bytes()) if cache and cache.exists() else {}
    # an empty response is not scored (the signal's rule: its only "token" would be the chat template's
    # trailing newline): no log-probs, so its statistics are NaN and imputed, as in v1's training
    todo = [r for r in rows if r["response"].strip() and key(r) not in raw]
    seconds = 0.0
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        frame = pd.DataFrame({"prompt": [r["prompt"] for r in part], "response": [r["response"] for r in part]})
        t0 = time.perf_counter()
        _, cond, unc = proxy.scored_logprobs(frame, unconditional=True)
        seconds += time.perf_counter() - t0
        for r, c, u in zip(part, cond, unc, strict=True):
            raw[key(r)] = {"cond": np.asarray(c.logprobs), "unc": np.asarray(u.logprobs)}
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(pickle.dumps(raw))
        print(f"  {name}: {start + len(part)}/{len(todo)} rows scored", file=sys.stderr, flush=True)
    none = np.zeros(0)
    out = [(np.asarray(raw[key(r)]["cond"], dtype=float), np.asarray(raw[key(r)]["unc"], dtype=float))
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
RATES = (0.2, 0.1)
PROBE_LAYERS = (8, 12, 16, 20, 24, 30)  # of SmolLM2's 30; hidden_states[30] is after the final norm


def scores_entry(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, Any]:
    """PR-AUC at the natural base rate and with the positives subsampled to each of ``RATES``; ROC-AUC."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"rows": len(y), "base_rate": float(y.mean()), "pr_auc": float(average_precision_score(y, p)),
            "roc_auc": float(roc_auc_score(y, p)),
            **{f"pr_auc_at_{r}": pr_auc_at_rate(y, p, r, seed) for r in RATES}}


def load_sets(args: argparse.Namespace) -> tuple[list[Row], dict[str, list[Row]]]:
    tqa_train, tqa_val = truthfulqa(args.data, args.seed, args.per_label)
    train = tqa_train + factool(args.data, args.seed)
    assert not {r["group"] for r in tqa_train} & {r["group"] for r in tqa_val}, "question in train and val"
    rng = np.random.default_rng(args.seed)
    tqa_val_rows = [tqa_val[i] for i in sorted(rng.permutation(len(tqa_val))[:args.truthfulqa_val])]
    sets = {"truthfulqa_val": tqa_val_rows, "halueval_qa": halueval_qa(args.data, args.seed, args.halueval_qa),
            "halueval2_statements": halueval2(args.data, args.seed, args.halueval2),
            "phd_wiki": phd(args.data, args.seed, args.phd), "felm_wk_science": felm(args.data, args.seed, args.felm)}
    return train, {k: v for k, v in sets.items() if v}


def row_key(r: Row) -> str:
    return hashlib.sha256(f"{r['prompt']}\x00{r['response']}".encode()).hexdigest()[:20]


def hidden_states(rows: list[Row], proxy: ProxyUncertaintySignal, cache: Path, batch: int = 8,
                  layers: tuple[int, ...] = PROBE_LAYERS) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """{row key: {layer: (mean, last)}} of the proxy model's hidden states over the positions that predict the
    response tokens (the same token requests as the uncertainty signal; right-padded batches sorted by length),
    for ``layers``; cached in ``cache`` (a pickle, saved every 20 batches). Empty responses are skipped."""
    import torch

    from evalmon.backends.hf.tokenlogprobs import fit

    raw: dict[str, Any] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    todo = list({row_key(r): r for r in rows if r["response"].strip() and row_key(r) not in raw}.values())
    if not todo:
        return raw
    lm = proxy.lm
    reqs = [fit(t, lm.max_length) for t in lm.tokenize_requests(
        proxy.requests([r["prompt"] for r in todo], [r["response"] for r in todo]))]
    order = sorted(range(len(todo)), key=lambda i: len(reqs[i].context) + len(reqs[i].continuation))
    for b, start in enumerate(range(0, len(order), batch)):
        part = order[start:start + batch]
        seqs = [[*reqs[i].context, *reqs[i].continuation[:-1]] for i in part]
        ids = torch.full((len(seqs), max(map(len, seqs))), lm.tokenizer.pad_token_id or 0, dtype=torch.long)
        att = torch.zeros_like(ids)
        for j, x in enumerate(seqs):
            ids[j, :len(x)], att[j, :len(x)] = torch.tensor(x), 1
        with torch.no_grad():
            hs = lm.model(input_ids=ids, attention_mask=att, output_hidden_states=True, logits_to_keep=1).hidden_states
        for j, i in enumerate(part):
            c, n = len(reqs[i].context), len(reqs[i].continuation)
            raw[row_key(todo[i])] = {layer: (hs[layer][j, c - 1:c - 1 + n].mean(0).numpy().astype(np.float32),
                                             hs[layer][j, c + n - 2].numpy().astype(np.float32))
                                     for layer in layers}
        if b % 20 == 19 or start + batch >= len(order):
            cache.write_bytes(pickle.dumps(raw))
            print(f"  hidden states: {start + len(part)}/{len(todo)} rows", file=sys.stderr, flush=True)
    return raw


PROBES: dict[str, dict[str, Any]] = {  # name → hidden (layer, "mean"|"last") blocks, PCA dims, C, + v1 features
    **{f"L{la} {k} / logreg C0.05": {"hid": [(la, k)], "C": 0.05} for la in PROBE_LAYERS for k in ("mean", "last")},
    **{f"L{la} mean+last / pca{d} C0.1": {"hid": [(la, "mean"), (la, "last")], "pca": d, "C": 0.1}
       for la in (12, 16, 20) for d in (16, 64)},
    "L16 last / pca64 C0.1": {"hid": [(16, "last")], "pca": 64, "C": 0.1},
    "L16 mean+last / pca64 C0.1 + v1": {"hid": [(16, "mean"), (16, "last")], "pca": 64, "C": 0.1, "v1": True},
    "L12+16+20 mean+last / pca64 C0.1": {"hid": [(la, k) for la in (12, 16, 20) for k in ("mean", "last")],
                                         "pca": 64, "C": 0.1},
}
PROBE_CHOSEN = "L16 mean+last / pca64 C0.1"  # fixed before its paired bootstrap (best pooled of the first screen)


def probe_model(spec: dict[str, Any], d: int, n_v1: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(C=spec["C"], class_weight="balanced", max_iter=5000)
    if not spec.get("pca"):
        return make_pipeline(StandardScaler(), lr)
    nh = d * len(spec["hid"])
    parts = [("h", make_pipeline(StandardScaler(), PCA(spec["pca"], random_state=0)), list(range(nh)))]
    if spec.get("v1"):
        parts.append(("v1", "passthrough", list(range(nh, nh + n_v1))))
    return make_pipeline(ColumnTransformer(parts), StandardScaler(), lr)


def paired_bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int, reps: int = 300) -> list[float]:
    """PR-AUC at a 20% share of ``b`` minus ``a``: mean and 95% interval over label-stratified resamples."""
    rng, pos, neg = np.random.default_rng(seed), np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    d = []
    for _ in range(reps):
        i = np.concatenate([rng.choice(neg, len(neg)), rng.choice(pos, len(pos))])
        d.append(pr_auc_at_rate(y[i], b[i], 0.2, seed, 20) - pr_auc_at_rate(y[i], a[i], 0.2, seed, 20))  # type: ignore[operator]
    return [float(np.mean(d)), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]


def probe_screen(args: argparse.Namespace, train: list[Row], vals: dict[str, list[Row]], x_v1: np.ndarray,
                 val_v1: dict[str, np.ndarray], v1_model: Any) -> dict[str, Any]:
    """Hidden-state probes vs v1 (its features ``x_v1``/``val_v1``, fitted ``v1_model``) on the training rows and
    ``--probe-val`` seeded rows per validation set; prints and returns the table and the paired bootstrap."""
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    rng, picks = np.random.default_rng(1), {}
    for name, rows in vals.items():
        picks[name] = sorted(rng.permutation(len(rows))[:args.probe_val])
    hid = hidden_states(train + [vals[n][i] for n in vals for i in picks[n]], ProxyUncertaintySignal(), args.probe)
    d = len(next(iter(hid.values()))[PROBE_LAYERS[0]][0])

    def blocks(rows: list[Row]) -> dict[tuple[int, str], np.ndarray]:
        nan = (np.full(d, np.nan), np.full(d, np.nan))
        return {(la, k): np.stack([hid.get(row_key(r), {la: nan})[la][j] for r in rows])
                for la in PROBE_LAYERS for j, k in enumerate(("mean", "last"))}

    h_tr = {k: np.where(np.isnan(v), np.nanmean(v, 0), v) for k, v in blocks(train).items()}  # empty: train mean
    y_tr, groups = np.array([r["label"] for r in train]), [r["group"] for r in train]
    sets = {n: (blocks([vals[n][i] for i in picks[n]]), val_v1[n][picks[n]], np.array([vals[n][i]["label"]
                                                                                         for i in picks[n]]))
            for n in vals}

    def feats(h: dict[tuple[int, str], np.ndarray], v1: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
        return np.concatenate([h[k] for k in spec["hid"]] + ([v1] if spec.get("v1") else []), axis=1)

    table, preds = {}, {}
    for name, spec in {"v1 (same rows)": None, **PROBES}.items():
        if spec is None:
            entry, preds[name] = {}, {n: v1_model.predict_proba(v1)[:, 1] for n, (_, v1, _) in sets.items()}
        else:
            x = feats(h_tr, x_v1, spec)
            oof = cross_val_predict(probe_model(spec, d, x_v1.shape[1]), x, y_tr, groups=groups, cv=GroupKFold(5),
                                    method="predict_proba")[:, 1]
            fitted = probe_model(spec, d, x_v1.shape[1]).fit(x, y_tr)
            entry = {"oof_pr_auc": float(average_precision_score(y_tr, oof))}
            preds[name] = {n: fitted.predict_proba(feats(h, v1, spec))[:, 1] for n, (h, v1, _) in sets.items()}
        entry.update({n: scores_entry(y, preds[name][n], args.seed) for n, (_, _, y) in sets.items()})
        entry["pooled"] = scores_entry(np.concatenate([y for *_, y in sets.values()]),
                                       np.concatenate(list(preds[name].values())), args.seed)
        table[name] = entry
        print(f"probe {name:36} " + " | ".join(f"{k} {e['roc_auc']:.2f}/{e['pr_auc_at_0.2'] or float('nan'):.3f}"
                                              for k, e in entry.items() if isinstance(e, dict)), flush=True)
    boot = {n: paired_bootstrap(y, preds["v1 (same rows)"][n], preds[PROBE_CHOSEN][n], args.seed)
            for n, (_, _, y) in sets.items()}
    ally = np.concatenate([y for *_, y in sets.values()])
    boot["pooled"] = paired_bootstrap(ally, *(np.concatenate(list(preds[k].values()))
                                              for k in ("v1 (same rows)", PROBE_CHOSEN)), args.seed)
    for n, (m, lo, hi) in boot.items():
        print(f"probe {PROBE_CHOSEN} − v1, PR-AUC at 20%: {n} {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return {"table": table, "chosen": PROBE_CHOSEN, "paired_bootstrap_vs_v1": boot}


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
