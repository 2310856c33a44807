"""Time evalmon against lm-eval on the same checkpoint, rows, dtype and batch size — in one run.

For each task both harnesses build the task from the same rows (lm-eval through its own built-in
config, exported by ``evalmon.harness.parity``) and score it; runs alternate (lm-eval, evalmon, lm-eval, …)
so background load hits both alike, and the median of ``--repeats`` is reported with the ratio,
requests/s and how far the two harnesses' numbers are apart.

    python benchmarks/bench_vs_lmeval.py                       # SmolLM2-135M-Instruct: HellaSwag, MMLU, TruthfulQA
    python benchmarks/bench_vs_lmeval.py --tasks bbh_cot_fewshot_boolean_expressions,medical_perplexity \
        --max-gen-toks 256                                     # generation and rolling-perplexity rows
    python benchmarks/bench_vs_lmeval.py --model gemma3-270m   # Gemma-3-270M (262k vocabulary)
    python benchmarks/bench_vs_lmeval.py --dtype bfloat16      # + how far bf16 moves each harness vs fp32
    python benchmarks/bench_vs_lmeval.py --model tiny          # the toy checkpoint (seconds)
    python benchmarks/bench_vs_lmeval.py --model 100m          # ~100M-parameter random Llama (built offline)
    python benchmarks/bench_vs_lmeval.py --model /path/to/ckpt --tasks hellaswag --limit 100
    python benchmarks/bench_vs_lmeval.py --device cuda         # same script on a GPU

``--model smollm2`` / ``gemma3-270m`` are the real checkpoints ``evalmon.checkpoints.real`` fetches
and converts once into the user cache. Three kinds of row, by the task's request type:

* loglikelihood (multiple choice: MMLU, HellaSwag, TruthfulQA …): max |Δ loglikelihood| over every
  request; ``same`` = every metric identical (mc2 to 1e-5: it is smooth in the loglikelihoods);
* generate (BBH chain of thought, greedy until a stop string; ``--gen-limit`` documents):
  ``same`` = every raw generation, filtered answer and exact_match identical;
* rolling (``medical_perplexity``: lm-eval's ``loglikelihood_rolling``): max |Δ| of the
  per-document loglikelihood sums; ``same`` = word/byte perplexity and bits per byte equal (rel 1e-6).

Columns: wall seconds of each harness (median of --repeats, alternating), speed-up (median over the
repeats of lm-eval's time / the time of the evalmon run right after it), requests/s (at the medians),
positions forwarded by each harness in its last run (input tokens through the model, padding and
finished generation rows included; counted by a forward hook), the unique-token floor of a
loglikelihood task (a trie over every row: what any exact method must forward at least), max |Δ|
and whether every metric is identical. With ``--dtype`` other than float32 a second table gives each
harness's max |Δ| against its own float32 run and how many per-document 0/1 scores flipped (not a
parity claim: evalmon takes log_softmax in float32, lm-eval in the model dtype).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmeval_compare import Comparison, Scored, compare, from_evalmon, from_lmeval

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = ["hellaswag", "mmlu_anatomy", "truthfulqa_mc2"]
#: --model shortcut → the name ``evalmon.checkpoints.real.ensure_checkpoint`` knows
REAL_MODELS = {"smollm2": "smollm2-135m-instruct", "smollm2-135m-instruct": "smollm2-135m-instruct",
               "gemma3-270m": "gemma3-270m"}


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
    if spec in REAL_MODELS:  # fetched and converted once into the user cache, then a cache hit
        from evalmon.checkpoints.real import ensure_checkpoint

        return str(ensure_checkpoint(REAL_MODELS[spec], log=print))
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


class Positions:
    """Input positions through a model's forward (a pre-hook on the top module; reset before each run)."""

    def __init__(self, model: Any) -> None:
        self.n = 0
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.n += int(ids.numel())


@dataclass
class Harnesses:
    """lm-eval's HFLM and evalmon's HFCausalLM on the same checkpoint, dtype, device and batch size."""

    theirs: Any
    ours: Any
    pos_theirs: Positions
    pos_ours: Positions

    @classmethod
    def load(cls, args: argparse.Namespace, dtype: str) -> Harnesses:
        from lm_eval.models.huggingface import HFLM

        from evalmon.backends.hf.model import HFCausalLM, HFSettings

        theirs = HFLM(pretrained=args.model, batch_size=args.batch_size, dtype=dtype, device=args.device)
        ours = HFCausalLM(HFSettings(path=args.model, batch_size=args.batch_size, dtype=dtype, device=args.device,
                                     token_budget=args.token_budget, scoring=args.scoring))
        return cls(theirs, ours, Positions(theirs.model), Positions(ours.model))


@dataclass
class Bench:
    """One benchmark invocation: the exported tasks and how each harness runs one of them."""

    args: argparse.Namespace
    data_dir: Path
    kinds: dict[str, str]
    names: dict[str, str]  # evalmon task → lm-eval task
    manager: Any
    rows: list[list[str]] = field(default_factory=list)
    dtype_rows: list[list[str]] = field(default_factory=list)

    def options(self, task: str) -> Any:
        from evalmon.tasks.base import TaskOptions

        gen = self.kinds[task] == "generate"
        extra = {"max_gen_toks": self.args.max_gen_toks} if gen and self.args.max_gen_toks else {}
        return TaskOptions(data_dir=self.data_dir, limit=self.args.gen_limit if gen else self.args.limit, extra=extra)

    def run_lmeval(self, h: Harnesses, task: str) -> tuple[float, dict[str, Any]]:
        import lm_eval

        gen = self.kinds[task] == "generate" and self.args.max_gen_toks
        h.pos_theirs.n = 0
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(model=h.theirs, tasks=[self.names[task]], task_manager=self.manager,
                                      log_samples=True, bootstrap_iters=0, verbosity="ERROR",
                                      gen_kwargs={"max_gen_toks": self.args.max_gen_toks} if gen else None)
        return time.perf_counter() - t0, out

    def run_ours(self, h: Harnesses, task: str) -> tuple[float, tuple[Any, list[Any]]]:
        from evalmon.harness.evaluate import evaluate_task
        from evalmon.tasks.base import build_task

        h.pos_ours.n = 0
        t0 = time.perf_counter()
        t = build_task(task, self.options(task))
        res = evaluate_task(t, h.ours, None, lambda n: None)
        return time.perf_counter() - t0, res

    def scored(self, task: str, theirs: dict[str, Any], ours: tuple[Any, list[Any]]) -> tuple[Scored, Scored]:
        result, samples = ours
        return (from_lmeval(theirs, self.names[task], list(result.metrics), self.kinds[task]),
                from_evalmon(result, samples))


def task_kind(task: str, data_dir: Path) -> str:
    from evalmon.core.lm import GenRequest, RollingRequest
    from evalmon.tasks.base import TaskOptions, build_task

    t = build_task(task, TaskOptions(data_dir=data_dir, limit=1))
    req = t.requests(t.docs()[0])[0]
    return "generate" if isinstance(req, GenRequest) else "rolling" if isinstance(req, RollingRequest) \
        else "loglikelihood"


def export(tasks: list[str], kinds: dict[str, str], args: argparse.Namespace, data_dir: Path, out: Path
           ) -> dict[str, str]:
    """lm-eval task folders for ``tasks`` (the same rows evalmon scores); evalmon name → lm-eval name."""
    from evalmon.harness.parity import export_lmeval_tasks
    from evalmon.tasks.base import TaskOptions, build_task

    names = {}
    for task in tasks:
        if kinds[task] == "rolling":
            names[task] = build_task(task, TaskOptions(data_dir=data_dir, limit=args.limit)).lmeval_export(out)
        else:
            limit = args.gen_limit if kinds[task] == "generate" else args.limit
            names |= export_lmeval_tasks([task], data_dir, out, limit)
    return names


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def check_lmeval_memory(h: Harnesses, bench: Bench, task: str) -> None:
    """Refuse a row whose lm-eval batch would not fit: HFLM materialises float logits over the whole
    vocabulary at every position of a right-padded batch, then a log_softmax copy of them (Gemma-3's
    262k vocabulary: ~2 MiB per position). Generation keeps only the last position's logits."""
    from evalmon.tasks.base import build_task

    kind = bench.kinds[task]
    if kind == "generate":
        return
    t = build_task(task, bench.options(task))
    reqs = [r for d in t.docs() for r in t.requests(d)]
    if kind == "rolling":
        lengths = sorted((min(h.ours.token_count(r.text) + 1, h.ours.max_length) for r in reqs), reverse=True)
    else:
        lengths = sorted((min(len(q.context) + len(q.continuation), h.ours.max_length)
                          for q in h.ours.tokenize_requests(reqs)), reverse=True)
    vocab = int(h.theirs.model.config.get_text_config().vocab_size)
    need = 2 * 4 * bench.args.batch_size * lengths[0] * vocab
    if need > 0.6 * mem_available():
        raise SystemExit(f"error: {task}: lm-eval's first batch ({bench.args.batch_size} rows × {lengths[0]} "
                         f"tokens × {vocab} vocabulary, float logits + log_softmax) needs ~{need / 2**30:.1f} GiB; "
                         f"{mem_available() / 2**30:.1f} GiB available — lower --batch-size or --limit")


def unique_floor(h: Harnesses, bench: Bench, task: str) -> str:
    from evalmon.backends.hf.packed import unique_tokens
    from evalmon.tasks.base import build_task

    if bench.kinds[task] != "loglikelihood":
        return "-"
    t = build_task(task, bench.options(task))
    return str(unique_tokens(h.ours.tokenize_requests([r for d in t.docs() for r in t.requests(d)])))


def fmt_delta(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def fmt_flips(c: Comparison, n: int, kind: str) -> str:
    parts = [f"{m} {k}/{n}" for m, k in c.flips.items()]
    if kind == "generate":
        parts.insert(0, f"generations {c.outputs_differ}/{n}")
    return ", ".join(parts) or "-"


COLUMNS = ["task", "kind", "n", "reqs", "lm-eval s", "evalmon s", "speed-up", "lm-eval r/s", "evalmon r/s",
           "pos lm-eval", "pos evalmon", "unique", "max|Δ|", "same"]
DTYPE_COLUMNS = ["task", "kind", "lm-eval max|Δ| vs fp32", "evalmon max|Δ| vs fp32", "lm-eval flips vs fp32",
                 "evalmon flips vs fp32", "metrics moved vs fp32 (lm-eval / evalmon)"]


WIDTHS = [36, 13, 4, 5, 9, 9, 8, 11, 11, 11, 11, 7, 7, 4]


def print_row(values: list[str]) -> None:
    """One row of the main table, printed as soon as it is measured (the first two columns left-aligned)."""
    print(" ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(values, WIDTHS, strict=True))),
          flush=True)


def print_table(columns: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(columns))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for r in [columns, *rows]:
        print(" ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def bench_task(bench: Bench, h: Harnesses, ref: Harnesses | None, task: str) -> None:
    args, kind = bench.args, bench.kinds[task]
    t_theirs, t_ours = [], []
    out_theirs: dict[str, Any] = {}
    out_ours: Any = None
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        dt, out_theirs = bench.run_lmeval(h, task)
        t_theirs.append(dt)
        dt, out_ours = bench.run_ours(h, task)
        t_ours.append(dt)
    theirs, ours = bench.scored(task, out_theirs, out_ours)
    c = compare(theirs, ours)
    result = out_ours[0]
    m_theirs, m_ours = statistics.median(t_theirs), statistics.median(t_ours)
    # each lm-eval run and the evalmon run right after it share the background load: the median of
    # those pair ratios is robust to load that changes during the invocation
    speedup = statistics.median(a / b for a, b in zip(t_theirs, t_ours, strict=True))
    reqs = result.timing.requests
    row = [task, kind, str(result.n), str(reqs), f"{m_theirs:.2f}", f"{m_ours:.2f}", f"{speedup:.2f}x",
           f"{reqs / m_theirs:.1f}", f"{reqs / m_ours:.1f}", str(h.pos_theirs.n), str(h.pos_ours.n),
           unique_floor(h, bench, task), fmt_delta(c.worst), "yes" if c.same else "NO"]
    bench.rows.append(row)
    if len(bench.rows) == 1:
        print_row(COLUMNS)
    print_row(row)
    print(f"  runs lm-eval {', '.join(f'{t:.2f}' for t in t_theirs)} s · evalmon "
          f"{', '.join(f'{t:.2f}' for t in t_ours)} s · cpu pressure: {cpu_pressure()}", flush=True)
    if not c.same:
        print(f"  ↳ differs: metrics (evalmon - lm-eval) {c.moved()}; {fmt_flips(c, result.n, kind)}", flush=True)
    if ref is not None:  # how far this dtype moves each harness against its own float32 run
        theirs32, ours32 = bench.scored(task, bench.run_lmeval(ref, task)[1], bench.run_ours(ref, task)[1])
        ct, co = compare(theirs32, theirs), compare(ours32, ours)  # deltas: this dtype - float32
        bench.dtype_rows.append([task, kind, fmt_delta(ct.worst), fmt_delta(co.worst), fmt_flips(ct, result.n, kind),
                                 fmt_flips(co, result.n, kind),
                                 f"{ct.moved()} / {co.moved()}"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2",
                    help="smollm2 (default) | gemma3-270m | tiny | 100m | a checkpoint directory")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--limit", type=int, default=20, help="documents per loglikelihood / rolling task")
    ap.add_argument("--gen-limit", type=int, default=8, help="documents per generation task")
    ap.add_argument("--max-gen-toks", type=int, default=None, help="both harnesses; default: the task's (BBH 1024)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--token-budget", type=int, default=None, help="evalmon's packed-scoring budget")
    ap.add_argument("--scoring", default="packed", choices=["packed", "plain"], help="evalmon's scoring path")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as markdown at the end")
    args = ap.parse_args()
    spec = args.model
    args.model = resolve_model(args.model)
    if not (Path(args.model) / "config.json").is_file():
        if spec != "tiny":
            raise SystemExit(f"error: {args.model} has no config.json — not a checkpoint directory")
        from evalmon.checkpoints import TinySpec, build_tiny_checkpoint

        build_tiny_checkpoint(args.model, TinySpec(train_steps=200))

    from lm_eval.tasks import TaskManager
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    data_dir = Path(args.data_dir)
    tasks = args.tasks.split(",")
    kinds = {t: task_kind(t, data_dir) for t in tasks}
    export_dir = Path(tempfile.mkdtemp(prefix="evalmon-bench-"))
    names = export(tasks, kinds, args, data_dir, export_dir)
    bench = Bench(args, data_dir, kinds, names, TaskManager(include_path=str(export_dir), include_defaults=False))
    h = Harnesses.load(args, args.dtype)
    ref = Harnesses.load(args, "float32") if args.dtype != "float32" else None
    print(f"model {args.model} ({h.ours.fingerprint.extra['architecture']}, vocab {len(h.ours.tokenizer)}) · "
          f"{args.dtype} · {args.device} · batch {args.batch_size} · limit {args.limit} (generation "
          f"{args.gen_limit}) · repeats {args.repeats} · evalmon scoring {h.ours.scoring} · "
          f"cpu pressure: {cpu_pressure()}", flush=True)
    for task in tasks:
        check_lmeval_memory(h, bench, task)
    for task in tasks:
        bench_task(bench, h, ref, task)
    print(f"total {time.perf_counter() - started:.0f} s · cpu pressure at the end: {cpu_pressure()}")
    if bench.dtype_rows:
        print(f"\n{args.dtype} vs float32, each harness against its own float32 run (not a parity claim):")
        print_table(DTYPE_COLUMNS, bench.dtype_rows, markdown=False)
    if args.markdown:
        print()
        print_table(COLUMNS, bench.rows, markdown=True)
        if bench.dtype_rows:
            print()
            print_table(DTYPE_COLUMNS, bench.dtype_rows, markdown=True)


if __name__ == "__main__":
    main()
