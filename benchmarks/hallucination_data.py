"""Labelled rows of the hallucination detector (benchmarks/train_hallucination.py; datasets, licences and splits
are described there), read from ../shared/benchmarks in place."""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

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
