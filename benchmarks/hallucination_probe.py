"""The hidden-state probe screen of benchmarks/train_hallucination.py (``--probe HIDDEN.pkl``; model card
"What was tried"): SAPLMA-style logistic regressions on SmolLM2's hidden states against v1 on the same rows, with a
paired bootstrap of the chosen probe minus v1."""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hallucination_data import Row, row_key
from hallucination_metrics import pr_auc_at_rate, scores_entry

from evalmon.monitor.signals.uncertainty import ProxyUncertaintySignal

PROBE_LAYERS = (8, 12, 16, 20, 24, 30)  # of SmolLM2's 30; hidden_states[30] is after the final norm


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


def bootstrap_undefined(y: np.ndarray, a: np.ndarray | None, b: np.ndarray | None) -> str:
    """Why ``paired_bootstrap`` has no figure for this set ('' when it has): a missing score array, no rows,
    one class only, or too few positives for the 20% share (a tiny or fake sample)."""
    if a is None or b is None:
        return "no scores"
    if not len(y):
        return "no rows"
    if len(np.unique(y)) < 2:
        return "one class only"
    if pr_auc_at_rate(y, a, 0.2, 0, 1) is None:
        return "too few positives or negatives for a 20% share"
    return ""


def paired_bootstrap(y: np.ndarray, a: np.ndarray | None, b: np.ndarray | None, seed: int,
                     reps: int = 300) -> list[float] | None:
    """PR-AUC at a 20% share of ``b`` minus ``a``: mean and 95% interval over label-stratified resamples; None
    where it is not defined (``bootstrap_undefined`` says why) — it raised a TypeError on such a set."""
    if bootstrap_undefined(y, a, b):
        return None
    assert a is not None and b is not None
    rng, pos, neg = np.random.default_rng(seed), np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    d = []
    for _ in range(reps):  # resamples keep each class's count, so the figure stays defined
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
    pairs = {n: (y, preds["v1 (same rows)"][n], preds[PROBE_CHOSEN][n]) for n, (_, _, y) in sets.items()}
    pairs["pooled"] = (np.concatenate([y for *_, y in sets.values()]),
                       *(np.concatenate(list(preds[k].values())) for k in ("v1 (same rows)", PROBE_CHOSEN)))
    boot = {n: paired_bootstrap(*p, args.seed) for n, p in pairs.items()}
    skipped = {n: why for n, p in pairs.items() if (why := bootstrap_undefined(*p))}
    for n, r in boot.items():
        print(f"probe {PROBE_CHOSEN} − v1, PR-AUC at 20%: {n} "
              + (f"{r[0]:+.3f} [{r[1]:+.3f}, {r[2]:+.3f}]" if r else f"skipped ({skipped[n]})"))
    return {"table": table, "chosen": PROBE_CHOSEN, "paired_bootstrap_vs_v1": boot,
            **({"paired_bootstrap_skipped": skipped} if skipped else {})}
