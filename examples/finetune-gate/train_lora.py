"""Train a LoRA adapter on SmolLM2-135M-Instruct with MedMCQA rows that the evaluation does not score.

    python examples/finetune-gate/train_lora.py --out runs/adapter --eval-limit 300 --steps 300

* Data: MedMCQA dev rows after the first ``--eval-limit`` (the rows ``evalmon run suites/medical.yaml
  --limit N`` evaluates), minus any row whose question occurs in an evaluated prompt; the script asserts
  zero shared ids / question texts / prompts against what evalmon builds for that suite and limit
  (``heldout.py``) before it trains, and writes the counts to ``train_log.json``.
* Text: evalmon's own medmcqa prompt (``Question: …\\nChoices:\\nA. …\\nAnswer:``) with the options
  shuffled, target `` <letter>``; the loss is on the answer token only — what the evaluation scores.
* Model: LoRA (peft) on every linear layer of the top ``--lora-layers`` decoder layers (backward stops
  there, which keeps a CPU step short); fixed seed, AdamW, linear warm-up then linear decay.
* Output: ``--out`` holds the adapter (``save_pretrained``) and ``train_log.json`` (settings, data
  provenance, overlap proof, loss every ``--log-every`` steps, wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="adapter output directory")
    p.add_argument("--base", default=None,
                   help="base checkpoint dir (default: evalmon's converted SmolLM2-135M-Instruct)")
    p.add_argument("--suite", type=Path, default=REPO / "suites" / "medical.yaml",
                   help="the suite the adapter will be evaluated with")
    p.add_argument("--eval-limit", type=int, required=True,
                   help="the --limit the evaluation runs use (training excludes what they score)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    p.add_argument("--lora-layers", type=int, default=10, help="adapt the top N decoder layers (0 = all)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def say(msg: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def base_checkpoint(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser().resolve()
    from evalmon.checkpoints.real import ensure_checkpoint

    return ensure_checkpoint("smollm2-135m-instruct", log=say)


def encode(tok: Any, ctx: str, cont: str) -> tuple[list[int], int]:
    """lm-eval's split: encode context + continuation whole, the continuation is what follows the context."""
    whole = tok(ctx + cont, add_special_tokens=True)["input_ids"]
    n_ctx = len(tok(ctx, add_special_tokens=True)["input_ids"])
    return whole, len(whole) - n_ctx


def batches(examples: list[tuple[list[int], int]], batch_size: int, steps: int, seed: int):
    """``steps`` batches, epochs reshuffled with a seeded generator."""
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            order += fresh
        yield [examples[i] for i in order[:batch_size]]
        del order[:batch_size]


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> dict[str, Any]:
    """Left-padded ids (every continuation ends at the last position) and labels for the last k + 1 logits."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    k = max(n for _, n in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), k), -100, dtype=torch.long)
    for i, (seq, n_cont) in enumerate(batch):
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
        labels[i, k - n_cont:] = torch.tensor(seq[len(seq) - n_cont:])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids, "labels": labels, "k": k}


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from heldout import assert_disjoint, evaluated, render_example, training_rows
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    say(f"building what `evalmon run {args.suite.name} --limit {args.eval_limit}` evaluates")
    ev, data_dir = evaluated(args.suite, args.eval_limit)
    data = training_rows(ev, data_dir, args.eval_limit)
    proof = assert_disjoint(data, ev)
    say(f"{proof['training_rows']} training rows from {data.source}; {proof['evaluated_documents']} evaluated "
        f"documents; shared ids / question texts / prompts: 0 / 0 / 0 "
        f"({data.skipped_duplicate_text} rows dropped: their question occurs in an evaluated prompt)")

    base = base_checkpoint(args.base)
    say(f"loading {base}")
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    n_layers = model.config.num_hidden_layers
    layers = list(range(n_layers - args.lora_layers, n_layers)) if args.lora_layers else None
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=layers)
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    rng = random.Random(args.seed)
    examples = [encode(tok, *render_example(r, rng)) for r in data.rows]
    n_tokens = sum(len(ids) for ids, _ in examples)
    say(f"{len(examples)} examples, {n_tokens / len(examples):.0f} tokens each on average; "
        f"LoRA r={args.rank} on {len(layers) if layers else n_layers}/{n_layers} layers: {trainable:,} parameters")

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)) * max(0.0, (args.steps - s) / args.steps))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.train()
    curve: list[dict[str, float]] = []
    window: list[float] = []
    t0 = time.monotonic()
    for step, batch in enumerate(batches(examples, args.batch_size, args.steps, args.seed), start=1):
        b = collate(batch, pad_id)
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                    position_ids=b["position_ids"], logits_to_keep=b["k"] + 1)
        logits = out.logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), b["labels"].reshape(-1))
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        window.append(loss.item())
        if step % args.log_every == 0 or step == args.steps:
            elapsed = time.monotonic() - t0
            mean = sum(window) / len(window)
            curve.append({"step": step, "loss": round(mean, 4), "elapsed_s": round(elapsed, 1)})
            eta = elapsed / step * (args.steps - step)
            say(f"step {step}/{args.steps} loss {mean:.4f} (mean of last {len(window)}) · "
                f"{step / elapsed:.2f} steps/s · elapsed {elapsed:.0f}s · eta {eta:.0f}s")
            window = []
    train_s = time.monotonic() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    log = {
        "base": str(base), "suite": str(args.suite), "eval_limit": args.eval_limit,
        "data": {"source": data.source, "rows": len(data.rows), "first_ids": [r["id"] for r in data.rows[:3]],
                 "skipped_evaluated_head": data.skipped_evaluated, "tokens_per_example": n_tokens / len(examples)},
        "overlap_proof": proof,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "lora": {"r": args.rank, "alpha": args.alpha, "layers": layers, "trainable_parameters": trainable,
                 "target_modules": sorted(lora.target_modules)},
        "loss_curve": curve, "train_seconds": round(train_s, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (args.out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
    say(f"adapter saved to {args.out} after {train_s:.0f}s; loss {curve[0]['loss']:.4f} → {curve[-1]['loss']:.4f}")
    return log


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(HERE))
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
