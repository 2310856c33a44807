"""vLLM backend vs hf backend on the same checkpoint and the same rows (needs a CUDA GPU and ``pip install vllm``).

For each dtype (default: bfloat16, float16; float32 with ``--dtypes``): the HellaSwag loglikelihood requests
of ``--limit`` documents from ``../shared/benchmarks`` (and ``--gen`` greedy generation prompts of BBH boolean_expressions,
3-shot CoT, ``max_gen_toks`` 64), answered by ``backend: hf`` (device cuda, same dtype) and by ``backend: vllm``
(offline ``LLM``, ``prompt_logprobs``). Reports per dtype: max and median |Δll| per request, how many
argmax (acc) decisions differ per document, generation exact-match rate between the two, and requests/s of
each (vLLM's first call, which captures CUDA graphs, excluded by a warm-up). ``--lora NAME=DIR`` adds one
adapter: the vLLM ``LoRARequest`` variant against hf with the PEFT adapter.

    python benchmarks/bench_vllm.py --model .evalmon/checkpoints/smollm2-135m-instruct --limit 200 \\
        --json reports/bench_vllm.json

Without vLLM or a GPU it exits 2 with the backend's one-line error (that is what this machine gives).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "benchmarks"
GEN_TASK = "bbh_cot_fewshot_boolean_expressions"  # 3-shot chain-of-thought prompts, greedy


def _requests(task_name: str, limit: int, **extra: Any) -> tuple[list[Any], list[list[int]]]:
    """The candidate-stage requests of ``limit`` documents and, per document, their positions."""
    from evalmon.tasks import base as registry
    from evalmon.tasks.base import TaskOptions

    task = registry.build_task(task_name, TaskOptions(data_dir=DATA, limit=limit, extra=extra))
    stage = task.stages()[0]
    reqs: list[Any] = []
    per_doc: list[list[int]] = []
    for doc in task.docs():
        rs = list(stage.requests(doc, []))
        per_doc.append(list(range(len(reqs), len(reqs) + len(rs))))
        reqs.extend(rs)
    return reqs, per_doc


def _timed(fn: Any, reqs: list[Any]) -> tuple[list[Any], float]:
    t0 = time.perf_counter()
    out = fn(reqs)
    return out, len(reqs) / max(time.perf_counter() - t0, 1e-9)


def bench(model: str, dtype: str, limit: int, gen: int, lora: tuple[str, str] | None) -> dict[str, Any]:
    import gc

    import torch

    from evalmon.backends.registry import load_lm
    from evalmon.backends.vllm.config import VLLMModelConfig
    from evalmon.config.models import HFModelConfig

    ll_reqs, per_doc = _requests("hellaswag", limit)
    gen_reqs = _requests(GEN_TASK, gen, max_gen_toks=64)[0] if gen else []
    row: dict[str, Any] = {"dtype": dtype, "requests": len(ll_reqs), "documents": len(per_doc)}
    hf = load_lm(HFModelConfig(path=model, dtype=dtype, device="cuda", batch_size=32,
                               adapter=lora[1] if lora else None))
    hf_ll, row["hf_ll_req_s"] = _timed(hf.loglikelihood, ll_reqs)
    hf_gen, row["hf_gen_req_s"] = _timed(hf.generate, gen_reqs) if gen_reqs else ([], None)
    del hf
    gc.collect()
    torch.cuda.empty_cache()
    cfg = VLLMModelConfig(path=model, dtype=dtype, gpu_memory_utilization=0.6,
                          adapters={lora[0]: lora[1]} if lora else None)
    vl = load_lm(cfg)
    if lora:
        vl = vl.variant(lora[0])  # type: ignore[attr-defined]
    vl.loglikelihood(ll_reqs[:8])  # warm-up (CUDA graphs)
    v_ll, row["vllm_ll_req_s"] = _timed(vl.loglikelihood, ll_reqs)
    v_gen, row["vllm_gen_req_s"] = _timed(vl.generate, gen_reqs) if gen_reqs else ([], None)
    deltas = [abs(a.logprob - b.logprob) for a, b in zip(hf_ll, v_ll, strict=True)]
    row["max_abs_dll"] = max(deltas)
    row["median_abs_dll"] = statistics.median(deltas)
    row["acc_flips"] = sum(
        max(idx, key=lambda i: hf_ll[i].logprob) != max(idx, key=lambda i: v_ll[i].logprob) for idx in per_doc)
    row["gen_exact_match"] = (sum(a == b for a, b in zip(hf_gen, v_gen, strict=True)) / len(gen_reqs)
                              if gen_reqs else None)
    del vl
    gc.collect()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / ".evalmon/checkpoints/smollm2-135m-instruct"))
    p.add_argument("--limit", type=int, default=200, help="HellaSwag documents (4 requests each)")
    p.add_argument("--gen", type=int, default=32, help="BBH generation prompts (0: none)")
    p.add_argument("--dtypes", default="bfloat16,float16")
    p.add_argument("--lora", default=None, metavar="NAME=DIR")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from evalmon.backends.vllm.lm import import_vllm
    from evalmon.core.errors import EvalmonError

    try:
        import_vllm()
    except EvalmonError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    lora = tuple(args.lora.split("=", 1)) if args.lora else None
    rows = [bench(args.model, d.strip(), args.limit, args.gen, lora) for d in args.dtypes.split(",")]  # type: ignore[arg-type]
    for r in rows:
        print(json.dumps(r))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
