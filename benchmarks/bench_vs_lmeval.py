"""Time evalmon against lm-eval on the same checkpoint, rows, dtype and batch size — in one run.

For each task both harnesses build the task from the same rows (lm-eval through its own built-in
config, exported by ``evalmon.parity``) and score it; runs alternate (lm-eval, evalmon, lm-eval, …)
so background load hits both alike, and the median of ``--repeats`` is reported with the ratio,
requests/s and the max |Δ loglikelihood| between the two.

    python benchmarks/bench_vs_lmeval.py                       # tiny default checkpoint
    python benchmarks/bench_vs_lmeval.py --model /path/to/ckpt --limit 100 --batch-size 8
    python benchmarks/bench_vs_lmeval.py --device cuda         # same script on a GPU
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
DEFAULT_TASKS = ["mmlu_anatomy", "mmlu_clinical_knowledge", "hellaswag", "truthfulqa_mc2", "medqa"]


def cpu_pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / ".evalmon/checkpoints/tiny-llama"))
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers.utils import logging as hf_logging

    from evalmon.models.hf import HFCausalLM, HFSettings
    from evalmon.parity import export_lmeval_tasks
    from evalmon.evaluate import evaluate_task
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
                                    device=args.device))

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

    print(f"model {args.model} · {args.dtype} · {args.device} · batch {args.batch_size} · limit {args.limit} · "
          f"repeats {args.repeats} · cpu pressure: {cpu_pressure()}")
    header = f"{'task':28} {'n':>4} {'reqs':>6} {'lm-eval s':>10} {'evalmon s':>10} {'speed-up':>9} " \
             f"{'lm-eval r/s':>11} {'evalmon r/s':>11} {'max|Δll|':>9} {'same acc':>8}"
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
            same &= abs(mv.value - out_theirs["results"][names[task]][key]) < 1e-9
        m_theirs, m_ours = statistics.median(t_theirs), statistics.median(t_ours)
        reqs = result.timing.requests
        print(f"{task:28} {result.n:>4} {reqs:>6} {m_theirs:>10.2f} {m_ours:>10.2f} {m_theirs / m_ours:>8.2f}x "
              f"{reqs / m_theirs:>11.1f} {reqs / m_ours:>11.1f} {worst:>9.1e} {'yes' if same else 'NO':>8}")


if __name__ == "__main__":
    main()
