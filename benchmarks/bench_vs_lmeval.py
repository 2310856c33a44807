"""Time evalmon against lm-eval on the same checkpoint, rows, dtype and batch size — in one run.

For each task both harnesses build the task from the same rows (lm-eval through its own built-in
config, exported by ``evalmon.parity``) and score it; runs alternate (lm-eval, evalmon, lm-eval, …)
so background load hits both alike, and the median of ``--repeats`` is reported with the ratio,
requests/s and the max |Δ loglikelihood| between the two.

    python benchmarks/bench_vs_lmeval.py                       # tiny default checkpoint
    python benchmarks/bench_vs_lmeval.py --model 100m          # ~100M-parameter random Llama (built offline)
    python benchmarks/bench_vs_lmeval.py --model /path/to/ckpt --limit 100 --batch-size 8
    python benchmarks/bench_vs_lmeval.py --device cuda         # same script on a GPU

Columns: wall seconds of each harness (median of --repeats, alternating), speed-up, requests/s,
tokens forwarded by lm-eval and by evalmon, the unique-token floor (a trie over every row: what any
exact method must forward at least), max |Δ loglikelihood| and whether every metric is identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = ["mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_medicine", "hellaswag", "truthfulqa_mc2"]


def build_100m(path: Path, vocab_size: int = 32000) -> None:
    """A ~100M-parameter random-init Llama with a Llama-sized (32k) BPE vocabulary, built offline."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from evalmon.checkpoints import _train_tokenizer, corpus_texts

    tok = _train_tokenizer(corpus_texts(), vocab_size)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                      num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    print(f"built {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, vocab {len(tok)}")
    model.save_pretrained(path)
    tok.save_pretrained(path)


def resolve_model(spec: str) -> str:
    if spec == "tiny":
        return str(REPO / ".evalmon/checkpoints/tiny-llama")
    if spec == "100m":
        path = REPO / ".evalmon/checkpoints/llama-100m-random"
        if not (path / "config.json").is_file():
            build_100m(path)
        return str(path)
    return spec


def cpu_pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | 100m | a checkpoint directory")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--token-budget", type=int, default=None, help="evalmon's packed-scoring budget")
    args = ap.parse_args()
    args.model = resolve_model(args.model)

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers.utils import logging as hf_logging

    from evalmon.engine.loglikelihood import plan_rows
    from evalmon.engine.packed import unique_tokens
    from evalmon.evaluate import evaluate_task
    from evalmon.models.hf import HFCausalLM, HFSettings
    from evalmon.parity import export_lmeval_tasks
    from evalmon.tasks.base import TaskOptions, build_task

    hf_logging.set_verbosity_error()
    if not (Path(args.model) / "config.json").is_file():
        from evalmon.checkpoints import TinySpec, build_tiny_checkpoint

        build_tiny_checkpoint(args.model, TinySpec(train_steps=200))
    tasks = args.tasks.split(",")
    data_dir = Path(args.data_dir)
    export_dir = Path(tempfile.mkdtemp(prefix="evalmon-bench-"))
    names = export_lmeval_tasks(tasks, data_dir, export_dir, args.limit)
    manager = TaskManager(include_path=str(export_dir), include_defaults=False)
    theirs_lm = HFLM(pretrained=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)
    ours_lm = HFCausalLM(HFSettings(path=args.model, batch_size=args.batch_size, dtype=args.dtype,
                                    device=args.device, token_budget=args.token_budget))

    def run_lmeval(task: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(model=theirs_lm, tasks=[names[task]], task_manager=manager,
                                      log_samples=True, bootstrap_iters=0, verbosity="ERROR")
        return time.perf_counter() - t0, out

    def run_ours(task: str):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        t = build_task(task, TaskOptions(data_dir=data_dir, limit=args.limit))
        res = evaluate_task(t, ours_lm, None, lambda n: None)
        return time.perf_counter() - t0, res

    def token_counts(task: str) -> tuple[int, int, int]:
        t = build_task(task, TaskOptions(data_dir=data_dir, limit=args.limit))
        toks = ours_lm.tokenize_requests([r for d in t.docs() for r in t.requests(d)])
        lmeval_fwd = sum(len((g[0].context + g[0].continuation)[-(ours_lm.max_length + 1):][:-1])
                         for g in plan_rows(toks))
        ours_lm.loglikelihood([r for d in t.docs() for r in t.requests(d)])
        return lmeval_fwd, ours_lm.last_stats.tokens_forwarded, unique_tokens(toks)

    print(f"model {args.model} · {args.dtype} · {args.device} · batch {args.batch_size} · limit {args.limit} · "
          f"repeats {args.repeats} · cpu pressure: {cpu_pressure()}")
    header = f"{'task':24} {'n':>4} {'reqs':>5} {'lm-eval s':>9} {'evalmon s':>9} {'speed-up':>8} " \
             f"{'lm-eval r/s':>11} {'evalmon r/s':>11} {'tok lm-eval':>11} {'tok evalmon':>11} {'unique':>7} " \
             f"{'max|Δll|':>8} {'same':>5}"
    print(header)
    for task in tasks:
        t_theirs, t_ours = [], []
        out_theirs = out_ours = None
        for _ in range(args.repeats):
            dt, out_theirs = run_lmeval(task)
            t_theirs.append(dt)
            dt, out_ours = run_ours(task)
            t_ours.append(dt)
        result, samples = out_ours
        their_samples = sorted(out_theirs["samples"][names[task]], key=lambda s: s["doc_id"])
        worst, same = 0.0, True
        for mine, ref in zip(samples, their_samples, strict=True):
            lls = [float(r[0][0]) for r in ref["resps"]]
            worst = max(worst, *(abs(a - b) for a, b in zip(mine.loglikelihoods, lls, strict=True)))
        for metric, mv in result.metrics.items():
            key = {"mc1": "acc", "mc2": "acc"}.get(metric, metric) + ",none"
            tol = 1e-9 if metric in {"acc", "acc_norm", "mc1"} else 1e-5  # mc2 is smooth in the lls
            same &= abs(mv.value - out_theirs["results"][names[task]][key]) < tol
        m_theirs, m_ours = statistics.median(t_theirs), statistics.median(t_ours)
        reqs = result.timing.requests
        fwd_theirs, fwd_ours, floor = token_counts(task)
        print(f"{task:24} {result.n:>4} {reqs:>5} {m_theirs:>9.2f} {m_ours:>9.2f} {m_theirs / m_ours:>7.2f}x "
              f"{reqs / m_theirs:>11.1f} {reqs / m_ours:>11.1f} {fwd_theirs:>11} {fwd_ours:>11} {floor:>7} "
              f"{worst:>8.1e} {'yes' if same else 'NO':>5}", flush=True)


if __name__ == "__main__":
    main()
