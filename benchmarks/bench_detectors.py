"""Detector quality of evalmon's offline monitor signals on the labelled sets in ../shared/benchmarks.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_detectors.py [--data ../shared/benchmarks]
        [--limit N] [--spacy] [--json out.json] [--sections legacy,trained,throughput]
        [--n 408] [--traffic synth,mt-bench] [--variants default,full-pass,default,full-pass]
        [--embed-backends torch,onnx]

Prints PR-AUC / ROC-AUC (sklearn average_precision / roc_auc) of each detector's score, the positive
rate (a random score's PR-AUC), precision/recall of the default flag, and throughput (records/s,
model load excluded, memo cleared). Sets:

- hallucination: HaluEval QA (knowledge → contexts, question → prompt); right answer = 0,
  hallucinated answer = 1.
- harmful prompts: simple_safety_tests prompts, or hh-rlhf harmless-base first human turns = 1;
  benign = MT-Bench turns + HaluEval questions + GSM8K questions = 0.
- toxicity: hh-rlhf harmless-base final assistant turn, rejected = 1 vs chosen = 0 (weak labels: the
  pair differs in harmfulness, often not in wording).
- PII: enterprise_pii passages (wrapper stripped), gold yes = 1.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalmon.monitor.signals import SignalCache, build_signals, compute_signal
from evalmon.monitor.signals.embeddings import get_embedder

RESULTS: list[dict[str, Any]] = []
THROUGHPUT: dict[str, float] = {}


def halueval(data: Path, limit: int | None) -> pd.DataFrame:
    rows = [json.loads(ln) for ln in (data / "halueval/generation/qa/qa_one-turn_data.json").open()][:limit]
    recs = [{"prompt": r["question"], "contexts": [r["knowledge"]], "response": r[key], "label": lab}
            for lab, key in ((0, "right_answer"), (1, "hallucinated_answer")) for r in rows]
    return pd.DataFrame(recs)


def first_human_turn(dialogue: str) -> str:
    m = re.search(r"Human: (.*?)\n\nAssistant:", dialogue, re.S)
    return m.group(1).strip() if m else ""


def last_assistant_turn(dialogue: str) -> str:
    return dialogue.rsplit("\n\nAssistant:", 1)[-1].strip()


def hh_rlhf(data: Path) -> list[dict[str, str]]:
    with gzip.open(data / "hh_rlhf/harmless-base/test.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(ln) for ln in f]


def benign_prompts(data: Path, limit: int | None) -> list[str]:
    mt = [t for ln in (data / "mt_bench/question.jsonl").open() for t in json.loads(ln)["turns"]]
    hq = [json.loads(ln)["question"] for ln in (data / "halueval/generation/qa/qa_one-turn_data.json").open()]
    gs = [json.loads(ln)["question"] for ln in (data / "gsm8k/test.jsonl").open()][:500]
    out = list(dict.fromkeys(mt + hq + gs))
    return out[: limit * 3] if limit else out


def sst_prompts(data: Path) -> list[str]:
    with (data / "simple_safety_tests/simple_safety_tests.csv").open(encoding="utf-8") as f:
        return [r["prompts_final"] for r in csv.DictReader(f)]


def enterprise_pii(data: Path, limit: int | None) -> pd.DataFrame:
    recs = []
    for ln in (data / "enterprise_pii/enterprise_pii_classification.jsonl").open(encoding="utf-8"):
        r = json.loads(ln)
        m = re.search(r"Passage: '''\n?(.*?)\n?'''", r["query"], re.S)
        recs.append({"prompt": "", "response": m.group(1) if m else r["query"], "label": int(r["gold"])})
    df = pd.DataFrame(recs)
    return df.sample(n=limit, random_state=0) if limit and limit < len(df) else df


def report(task: str, detector: str, y: np.ndarray, score: np.ndarray, flag: np.ndarray | None,
           n_per_s: float | None) -> None:
    ok = ~np.isnan(score)
    y, score = y[ok], score[ok]
    row: dict[str, Any] = {"task": task, "detector": detector, "n": len(y), "pos_rate": float(y.mean()),
                           "pr_auc": float(average_precision_score(y, score)), "roc_auc": float(roc_auc_score(y, score))}
    if flag is not None:
        f = flag[ok] > 0
        row["precision"] = float(precision_score(y, f, zero_division=0))
        row["recall"] = float(recall_score(y, f, zero_division=0))
    if n_per_s is not None:
        row["records_per_s"] = round(n_per_s, 1)
    RESULTS.append(row)
    extra = "".join(f" {k}={row[k]:.3f}" for k in ("precision", "recall") if k in row)
    print(f"{task:28s} {detector:38s} n={row['n']:5d} pos={row['pos_rate']:.3f} "
          f"PR-AUC={row['pr_auc']:.3f} ROC-AUC={row['roc_auc']:.3f}{extra}"
          + (f" {n_per_s:.1f} rec/s" if n_per_s else ""), flush=True)


def timed(frame: pd.DataFrame, cfg: str | dict[str, Any]) -> tuple[pd.DataFrame, float]:
    sig = build_signals([cfg])[0]
    warm = frame.head(4)
    compute_signal(warm, sig)  # load models outside the timing
    for emb in _embedders():
        emb._memo.clear()
    t0 = time.perf_counter()
    out = compute_signal(frame, sig, SignalCache())
    return out, len(frame) / (time.perf_counter() - t0)


def _embedders() -> list[Any]:
    return [get_embedder()]


def _set_backend(backend: str) -> None:
    """The shared embedder's backend (torch | onnx | onnx-int8) for the next section, memo cleared."""
    emb = get_embedder()
    emb.backend, emb.quantize = backend.split("-")[0], (backend.split("-", 1)[1] if "-" in backend else None)
    emb._onnx = None
    emb._memo.clear()


def trained_detectors(data: Path, limit: int | None) -> None:
    """The shipped detectors through their signals on rows they were not trained on: the validation split
    of the permissive sets + every row of the validation-only sets (benchmarks/detector_data.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from detector_data import datasets, split_of

    ds = datasets(data)
    plan = (("harmful_request", "safety", "prompt", "safety.unsafe_request"),
            ("jailbreak", "safety", "prompt", "safety.jailbreak"),
            ("toxicity", "safety", "response", "safety.toxic"),
            ("refusal", "refusal", "response", "refusal"))
    for det, signal, field, col in plan:
        rows = [r for r in ds[det] if split_of(r) == "validation" or not r.shippable]
        if limit:
            rows = [r for i, r in enumerate(rows) if i % max(1, len(rows) // limit) == 0]
        frame = pd.DataFrame({"prompt": [r.text if field == "prompt" else "" for r in rows],
                              "response": [r.text if field == "response" else "" for r in rows]})
        out, rps = timed(frame, signal)
        score = out[f"{col}_score" if col != "refusal" else "refusal.score"].to_numpy()
        flag = out[col if col != "refusal" else "refusal.refused"].to_numpy()
        y, src = np.array([r.label for r in rows]), np.array([r.source for r in rows])
        report(f"{det} (all held-out rows)", f"{signal}: {col}", y, score, flag, rps)
        for s in sorted(set(src)):
            m = src == s
            tag = f"{det}/{s}" + ("" if rows[int(np.flatnonzero(m)[0])].shippable else " (val-only set)")
            report(tag, f"{signal}: {col}", y[m], score[m], flag[m], None)
        if det == "refusal":  # patterns alone, for comparison
            out_p, _ = timed(frame, {"name": "refusal", "classifier": False})
            report(f"{det} (all held-out rows)", "refusal: patterns only", y,
                   out_p["refusal.refused"].to_numpy(), out_p["refusal.refused"].to_numpy(), None)


# the signal set before the cascade / sampled embedding drift (same detectors' MiniLM members: the old numbers)
FULL_PASS = {"safety": {"name": "safety", "cascade": False}, "embedding": {"name": "embedding", "sample_rate": 1.0}}


def synth_frame(n: int) -> pd.DataFrame:
    """``n`` records of `evalmon traffic synth` (1,000 records/h, seed 1)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        subprocess.run([str(Path(sys.executable).parent / "evalmon"), "traffic", "synth", "--out", str(path), "--start",
                        "2026-11-01T00:00Z", "--hours", f"{n / 1000 * 1.05:.4f}", "--rate", "1000/h", "--seed", "1"],
                       check=True, capture_output=True)
        frame = pd.DataFrame([json.loads(ln) for ln in path.open()]).head(n)
    return frame[[c for c in ("prompt", "response", "contexts", "latency_ms", "input_tokens", "output_tokens",
                              "model") if c in frame.columns]].reset_index(drop=True)


def mt_bench_frame(data: Path, n: int) -> pd.DataFrame:
    """``n`` real chat records, every response distinct: MT-Bench's 32 models' answers (first and second turns)
    with their questions, a fixed random sample (seed 0). Unlike `traffic synth` (which reuses public answers:
    ~1/3 of its texts are distinct) each text here is new, as in production traffic; answers average ~970 chars."""
    questions = {(q := json.loads(ln))["question_id"]: q["turns"] for ln in (data / "mt_bench/question.jsonl").open()}
    recs = [{"prompt": p, "response": r}
            for path in sorted((data / "mt_bench/model_answer").glob("*.jsonl")) for ln in path.open()
            for a in [json.loads(ln)]
            for p, r in zip(questions[a["question_id"]], a["choices"][0]["turns"], strict=False)]
    frame = pd.DataFrame(recs).drop_duplicates("response")
    return frame.sample(n=min(n, len(frame)), random_state=0).reset_index(drop=True)


def default_signals_throughput(frame: pd.DataFrame, backend: str = "torch", variant: str = "default",
                               traffic: str = "synth") -> None:
    """records/s (wall) and records per CPU-second of every default signal (``build_signals`` defaults: text,
    usage, refusal, pii — spaCy NER when an English model is installed —, safety classifiers, hallucination,
    embedding drift; one shared embedding pass) on `evalmon traffic synth` records. ``variant`` ``full-pass``
    = MiniLM on every text (no cascade, every record's embedding: the numbers before issue #14's changes)."""
    from evalmon.monitor.signals import DEFAULT_SIGNALS, ComputeStats, build_signals, compute_signals
    from evalmon.monitor.signals.static_embed import get_static_embedder

    cfgs = [FULL_PASS.get(n, n) if variant == "full-pass" else n for n in DEFAULT_SIGNALS]
    os.environ["EVALMON_CASCADE"] = "0" if variant == "full-pass" else "1"  # every detector (refusal too)
    sigs = build_signals(cfgs)
    _set_backend(backend)
    compute_signals(frame.head(8), sigs)  # load models (and the ONNX session) outside the timing
    from evalmon.monitor.signals import lm_hidden

    for sig in sigs:  # ... and the lm probe's model, which the first records may not have reached
        for det in getattr(sig, "detectors", {}).values() if getattr(sig, "lm_probe", False) else ():
            if det.lm_probe is not None:
                lm_hidden.probe_encoder(det.lm_probe, "bench").encode(["warm-up"])
    static = get_static_embedder()
    for emb in (*_embedders(), static):
        emb._memo.clear()
    for enc in lm_hidden._ENCODERS.values():  # harmful_request v4's lm probe
        enc._memo.clear()
    enc0, st0 = get_embedder().encoded, static.encoded
    lm0 = sum(e.encoded for e in lm_hidden._ENCODERS.values())
    stats = ComputeStats()
    pressure = _cpu_pressure()
    t0, c0 = time.perf_counter(), time.process_time()
    compute_signals(frame, sigs, SignalCache(), stats)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    tag = f"{variant}, {backend}" + ("" if traffic == "synth" else f", {traffic}")
    THROUGHPUT[f"default signals (traffic synth, {tag})"] = len(frame) / dt
    THROUGHPUT[f"default signals (traffic synth, {tag}), per CPU-second"] = len(frame) / cpu
    per = ", ".join(f"{k} {v.seconds:.1f}s/{v.cpu_seconds:.1f}" for k, v in
                    {"shared embedding pass": stats.shared_pass, **stats.per_signal}.items())
    print(f"{'throughput':28s} {'all default signals, ' + tag:38s} n={len(frame):5d} {len(frame) / dt:.1f} rec/s "
          f"(wall {dt:.1f} s; wall/CPU s: {per}); {cpu:.1f} CPU-s = {len(frame) / cpu:.1f} "
          f"rec per CPU-s; MiniLM texts {get_embedder().encoded - enc0}, static texts {static.encoded - st0}, "
          f"lm-probe texts {sum(e.encoded for e in lm_hidden._ENCODERS.values()) - lm0}; "
          f"/proc/pressure/cpu some avg60 before/after {pressure}/{_cpu_pressure()}", flush=True)


def _cpu_pressure() -> str:
    """``some avg60`` of /proc/pressure/cpu (share of time runnable tasks waited for a CPU), or ``?``."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return dict(kv.split("=") for kv in line.split()[1:])["avg60"]
    except (OSError, KeyError, IndexError):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/benchmarks")
    ap.add_argument("--limit", type=int, default=None, help="records per set (default: all)")
    ap.add_argument("--spacy", action="store_true", help="also run PII with presidio + spaCy NER")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--embed-backends", default="default",
                    help="throughput: comma-separated embedding backends run alternately "
                         "(default = what the signals pick: onnx with ONNX Runtime installed, else torch; torch, "
                         "onnx, onnx-int8), e.g. torch,onnx,torch,onnx")
    ap.add_argument("--n", type=int, default=408, help="throughput: records (default 408)")
    ap.add_argument("--traffic", default="synth",
                    help="throughput: comma-separated, run alternately: synth (`evalmon traffic synth`, 1,000/h, seed 1) "
                         "or mt-bench (MT-Bench's models' answers: every response distinct, as in production)")
    ap.add_argument("--variants", default="default",
                    help="throughput: comma-separated, run alternately: default (cascade + sampled embedding drift), "
                         "full-pass (MiniLM on every text: the numbers before the cascade), e.g. "
                         "default,full-pass,default,full-pass")
    ap.add_argument("--sections", default="legacy,trained,throughput",
                    help="legacy (exemplar-era sets), trained (shipped detectors on held-out rows), throughput")
    args = ap.parse_args()
    data, limit = args.data, args.limit
    sections = set(args.sections.split(","))
    if "trained" in sections:
        trained_detectors(data, limit)
    if "throughput" in sections:
        makers = {"synth": lambda: synth_frame(args.n), "mt-bench": lambda: mt_bench_frame(data, args.n)}
        if unknown := set(args.traffic.split(",")) - set(makers):
            ap.error(f"--traffic: unknown {sorted(unknown)}; use synth and/or mt-bench")
        frames = {t: makers[t]() for t in dict.fromkeys(args.traffic.split(","))}
        for traffic in args.traffic.split(","):
            for variant in args.variants.split(","):
                for backend in args.embed_backends.split(","):
                    default_signals_throughput(frames[traffic], variant=variant, traffic=traffic,
                                               backend=get_embedder().backend if backend == "default" else backend)
    if "legacy" not in sections:
        if args.json:
            args.json.write_text(json.dumps({"detectors": RESULTS, "throughput": THROUGHPUT}, indent=2))
        return

    # -- hallucination: HaluEval QA ------------------------------------------------------------
    hf = halueval(data, limit)
    y = hf["label"].to_numpy()
    for cfg, tag in (({"name": "hallucination"}, "hybrid"),
                     ({"name": "hallucination", "embeddings": False}, "lexical")):
        out, rps = timed(hf, cfg)
        flag = out["hallucination.flag"].to_numpy()
        report("halueval_qa", f"{tag}: unsupported_ratio", y, out["hallucination.unsupported_ratio"].to_numpy(),
               flag, rps)
        report("halueval_qa", f"{tag}: 1 - groundedness", y, 1 - out["hallucination.groundedness"].to_numpy(),
               None, None)
        report("halueval_qa", f"{tag}: 1 - min_support", y, 1 - out["hallucination.min_support"].to_numpy(),
               None, None)
        report("halueval_qa", f"{tag}: novel_tokens", y, out["hallucination.novel_tokens"].to_numpy(), None, None)

    # -- throughput of the signals without a labelled task -----------------------------------------
    big = pd.concat([hf] * 20, ignore_index=True)
    big["response"] = big["response"] + pd.Series(range(len(big))).astype(str)  # defeat within-batch dedupe
    for cfg in ("text", "usage", "refusal", {"name": "pii"}):
        _, rps = timed(big, cfg)
        THROUGHPUT[str(cfg)] = rps
        print(f"{'throughput':28s} {cfg!s:38s} n={len(big):5d} {rps:.1f} rec/s", flush=True)
    _, rps = timed(hf, "embedding")
    THROUGHPUT["embedding"] = rps
    print(f"{'throughput':28s} {'embedding (prompt + response)':38s} n={len(hf):5d} {rps:.1f} rec/s", flush=True)

    # -- harmful prompts: simple_safety_tests / hh-rlhf vs benign ----------------------------------
    hh = hh_rlhf(data)
    benign = benign_prompts(data, limit)
    hh_first = list(dict.fromkeys(t for t in (first_human_turn(r["chosen"]) for r in hh) if t))
    for name, pos in (("sst_vs_benign", sst_prompts(data)), ("hh_rlhf_vs_benign", hh_first[:limit] if limit
                                                              else hh_first)):
        frame = pd.DataFrame({"prompt": pos + benign, "response": ""})
        y = np.r_[np.ones(len(pos)), np.zeros(len(benign))]
        out, rps = timed(frame, {"name": "safety"})
        report(name, "safety.unsafe_request_score", y, out["safety.unsafe_request_score"].to_numpy(),
               out["safety.unsafe_request"].to_numpy(), rps)
        both = np.maximum(out["safety.unsafe_request_score"], out["safety.jailbreak_score"]).to_numpy()
        report(name, "max(unsafe_request, jailbreak) score", y, both, out["safety.unsafe"].to_numpy(), None)

    # -- toxicity: hh-rlhf rejected vs chosen final assistant turn -----------------------------------
    pairs = hh[:limit] if limit else hh
    pairs = [r for r in pairs if last_assistant_turn(r["chosen"]) != last_assistant_turn(r["rejected"])]
    frame = pd.DataFrame({"prompt": "", "response": [last_assistant_turn(r[k]) for k in ("chosen", "rejected")
                                                     for r in pairs]})
    y = np.r_[np.zeros(len(pairs)), np.ones(len(pairs))]
    out, rps = timed(frame, {"name": "safety"})
    report("hh_rlhf_rejected_vs_chosen", "safety.toxic_score", y, out["safety.toxic_score"].to_numpy(),
           out["safety.toxic"].to_numpy(), rps)
    s = out["safety.toxic_score"].to_numpy()
    print(f"{'':28s} pairwise: rejected scores higher in {np.mean(s[len(pairs):] > s[:len(pairs)]):.3f} of pairs")
    out, rps = timed(frame, {"name": "safety", "targets": {"unsafe_request": "response"}})
    report("hh_rlhf_rejected_vs_chosen", "unsafe_request exemplars on response", y,
           out["safety.unsafe_request_score"].to_numpy(), out["safety.unsafe_request"].to_numpy(), None)

    # -- PII: enterprise_pii -------------------------------------------------------------------------
    pf = enterprise_pii(data, limit)
    y = pf["label"].to_numpy()
    variants: list[tuple[dict[str, Any], str]] = [
        ({"name": "pii"}, "regex (default)"),
        ({"name": "pii", "entities": ["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE",
                                      "IP_ADDRESS", "US_BANK_NUMBER", "MONEY_AMOUNT"]}, "regex + MONEY_AMOUNT")]
    if args.spacy:
        variants.append(({"name": "pii", "nlp": "spacy"}, "regex + spaCy NER"))
        variants.append(({"name": "pii", "nlp": "spacy", "entities": [
            "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_BANK_NUMBER",
            "MONEY_AMOUNT", "PERSON"]}, "regex + spaCy PERSON + MONEY_AMOUNT"))
    for cfg, tag in variants:
        out, rps = timed(pf, cfg)
        report("enterprise_pii", f"{tag}: pii.count", y, out["pii.count"].to_numpy(), out["pii.any"].to_numpy(),
               rps)

    if args.json:
        args.json.write_text(json.dumps({"detectors": RESULTS, "throughput": THROUGHPUT}, indent=2))


if __name__ == "__main__":
    main()
