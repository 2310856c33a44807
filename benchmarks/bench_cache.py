"""Warm rerun of a finished suite, served from the response cache, vs the cold run.

    python benchmarks/bench_cache.py [--model tiny|100m|DIR] [--limit 50]

Runs suites/smoke.yaml-like tasks twice through `run_suite` with a fresh cache directory (tracking
off), and prints cold and warm wall time and the ratio (target ≥ 50×), plus what the warm run
computed (must be 0 requests).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from bench_vs_lmeval import resolve_model  # type: ignore[import-not-found]

    from evalmon.backends.hf.model import quiet_transformers
    from evalmon.config.suite import load_suite_text
    from evalmon.harness.run import load_model, run_suite

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--tasks", default="mmlu_anatomy,hellaswag,truthfulqa_mc2,medqa")
    args = ap.parse_args()
    quiet_transformers()
    model = resolve_model(args.model)
    out = Path(tempfile.mkdtemp(prefix="evalmon-cache-bench-"))
    tasks = "\n".join(f"  - {t}" for t in args.tasks.split(","))
    cfg = load_suite_text(
        f"name: cache-bench\noutput_dir: {out}\nlimit: {args.limit}\n"
        f"model: {{backend: hf, path: {model}}}\ndata: {{data_dir: {REPO.parent / 'shared' / 'benchmarks'}}}\n"
        f"tasks:\n{tasks}\ntracking: {{enabled: false}}\ncache: {{path: {out / 'cache.sqlite'}}}\n", "bench")
    lm = load_model(cfg)  # load once: both runs pay the same (zero) model-load cost
    t0 = time.perf_counter()
    cold = run_suite(cfg, lm=lm)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = run_suite(cfg, lm=lm)
    t_warm = time.perf_counter() - t0
    computed = sum(t.timing.computed for t in warm.tasks.values())
    same = all(warm.tasks[k].metrics == cold.tasks[k].metrics for k in cold.tasks)
    print(f"model {model} · tasks {args.tasks} · limit {args.limit}")
    print(f"cold {t_cold:.2f} s · warm {t_warm:.2f} s · ratio {t_cold / t_warm:.1f}x · warm computed {computed} "
          f"requests · identical metrics: {same}")


if __name__ == "__main__":
    main()
