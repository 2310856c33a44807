"""Batched generation for ``hf`` checkpoints with lm-eval's ``generate_until`` semantics.

* requests are grouped by generation settings, sorted longest-context first (lm-eval's Collator);
* contexts are left-padded (attention mask), left-truncated to ``max_length - max_gen_toks``;
  BOS handling as lm-eval's ``tok_batch_encode`` (no special tokens when the text starts with BOS);
* greedy unless ``temperature > 0`` (then sampling with ``top_p`` and a seeded generator);
* decoded with ``skip_special_tokens=True`` and cut before the first stop string
  (lm-eval's ``postprocess_generated_text``); EOS is always a stop.

Unlike lm-eval, which keeps a whole batch generating until every row produced the *same* stop
string, each row stops as soon as any stop string appears in its last tokens (the rest of the batch
carries on; the finished row is padded). Greedy outputs are the same — the text is cut at the same
first stop — but a batch costs only as long as its longest answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalmon.core.lm import EngineStats, GenRequest

OnGenBatch = Callable[[list[tuple[int, str]]], None]


@dataclass
class GenStats:
    rows: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0

    def engine_stats(self) -> EngineStats:
        return EngineStats(tokens=self.prompt_tokens + self.generated_tokens)


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """lm-eval's ``postprocess_generated_text`` (without thinking tokens)."""
    for term in stops:
        if term:
            text = text.split(term)[0]
    return text


class _RowStops:
    """Per-row stopping: a row is done once any stop string shows up in its newest tokens."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int, batch: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.lookback = max((len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops), default=1) + 2
        self.done = [False] * batch

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        window = input_ids[:, self.prompt_len :][:, -self.lookback :]
        texts = self.tokenizer.batch_decode(window)
        for i, text in enumerate(texts):
            if not self.done[i]:
                self.done[i] = any(s in text for s in self.stops)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _settings_key(r: GenRequest) -> tuple[Any, ...]:
    return (r.until, r.max_gen_toks, r.temperature, r.top_p, r.seed)


def generate_hf(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    reqs: Sequence[GenRequest],
    *,
    batch_size: int,
    max_length: int,
    device: str,
    add_special_tokens: bool | None,
    on_batch: OnGenBatch | None = None,
    stats: GenStats | None = None,
) -> list[str]:
    """Generate for ``reqs`` whose rendered prompts are ``contexts``; results in input order."""
    import torch
    from transformers import StoppingCriteriaList

    stats = stats if stats is not None else GenStats()
    out: list[str | None] = [None] * len(reqs)
    eos = tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=False) \
        if tokenizer.eos_token_id is not None else None
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(reqs):
        groups.setdefault(_settings_key(r), []).append(i)
    lengths = {i: len(tokenizer.encode(contexts[i], add_special_tokens=False)) for i in range(len(reqs))}
    bos = getattr(tokenizer, "bos_token", None)
    for idxs in groups.values():
        idxs.sort(key=lambda i: (-lengths[i], contexts[i]))
        first = reqs[idxs[0]]
        stops = list(first.until)
        if eos is not None and eos not in stops:
            stops.append(eos)
        max_ctx = max_length - first.max_gen_toks
        if max_ctx <= 0:
            from evalmon.core.errors import ModelError

            raise ModelError(f"the task asks for up to {first.max_gen_toks} new tokens but the model's context "
                             f"is {max_length} tokens",
                             hint="raise model.max_length (e.g. --model hf:PATH,max_length=2048) or set the task "
                                  "option max_gen_toks lower (this changes its numbers)")
        for start in range(0, len(idxs), batch_size):
            chunk = idxs[start : start + batch_size]
            texts = [contexts[i] for i in chunk]
            special: dict[str, bool] = {}
            if bos and texts[0].startswith(bos):
                special = {"add_special_tokens": False}
            elif add_special_tokens is not None:
                special = {"add_special_tokens": add_special_tokens}
            old_side = tokenizer.padding_side
            tokenizer.padding_side = "left"
            enc = tokenizer(texts, padding="longest", return_tensors="pt", **special)
            tokenizer.padding_side = old_side
            ids, mask = enc["input_ids"][:, -max_ctx:].to(device), enc["attention_mask"][:, -max_ctx:].to(device)
            kwargs: dict[str, Any] = {}
            if first.temperature > 0:
                kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
                if first.seed is not None:
                    torch.manual_seed(first.seed + start)
            else:
                kwargs.update(do_sample=False)
            stopper = _RowStops(tokenizer, stops, ids.shape[1], len(chunk))
            with torch.no_grad():
                gen = model.generate(input_ids=ids, attention_mask=mask, max_length=ids.shape[1] + first.max_gen_toks,
                                     stopping_criteria=StoppingCriteriaList([stopper]),
                                     pad_token_id=tokenizer.pad_token_id, use_cache=True, **kwargs)
            new_tokens = gen[:, ids.shape[1] :].tolist()
            done = []
            for i, toks in zip(chunk, new_tokens, strict=True):
                text = cut_at_stops(tokenizer.decode(toks, skip_special_tokens=True), stops)
                out[i] = text
                done.append((i, text))
            stats.rows += len(chunk)
            stats.prompt_tokens += int(mask.sum())
            stats.generated_tokens += sum(sum(1 for t in toks if t != tokenizer.pad_token_id) for toks in new_tokens)
            if on_batch:
                on_batch(done)
    return [t if t is not None else "" for t in out]
