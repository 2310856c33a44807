"""Token-level loglikelihood scoring with lm-eval's numerics.

Given already-tokenised ``(context, continuation)`` pairs this module batches, forwards and gathers:

* the model input is ``(ctx + cont)[-(max_length + 1):][:-1]`` (left truncation, drop last token);
* rows are sorted longest first (ties by token content) exactly like lm-eval's ``Collator``, so an
  out-of-memory shows on the first batch and batches contain the same rows as lm-eval's;
* requests whose ``ctx + cont[:-1]`` are identical share one forward row (lm-eval's one-token
  continuation grouping, e.g. MMLU's four answer letters);
* the batch is right-padded with token 0 and no attention mask (causal attention never looks right,
  so padding cannot change a real position), as lm-eval does;
* log_softmax is taken over the continuation positions only; the result is the sum of the
  continuation tokens' log-probs and whether each was the argmax (``is_greedy``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evalmon.core.lm import EngineStats, LLResult

OnBatch = Callable[[list[tuple[int, LLResult]]], None]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    index: int  # position in the caller's request list
    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass
class BatchStats:
    rows: int = 0  # forward rows (after sharing)
    tokens_forwarded: int = 0  # real (non-pad) tokens forwarded
    padded_tokens: int = 0  # rows × padded length

    def engine_stats(self) -> EngineStats:
        return EngineStats(tokens=self.tokens_forwarded, padded_tokens=self.padded_tokens)


def _row_key(req: TokenRequest) -> tuple[int, ...]:
    return req.context + req.continuation[:-1]


def plan_rows(reqs: Sequence[TokenRequest]) -> list[list[TokenRequest]]:
    """Group requests that share a forward row, ordered like lm-eval (longest first)."""
    groups: dict[tuple[int, ...], list[TokenRequest]] = {}
    for r in reqs:
        if not r.context or not r.continuation:
            raise ValueError(f"request {r.index}: empty context or continuation after tokenisation")
        groups.setdefault(_row_key(r), []).append(r)
    ordered = sorted(groups.values(), key=lambda g: (-len(g[0].context + g[0].continuation),
                                                      g[0].context + g[0].continuation))
    return ordered


def score_token_requests(
    forward: Callable[..., object],
    reqs: Sequence[TokenRequest],
    *,
    batch_size: int,
    max_length: int,
    device: str = "cpu",
    on_batch: OnBatch | None = None,
    stats: BatchStats | None = None,
) -> list[LLResult]:
    """Score every request; ``forward(input_ids) -> logits [B, T, V]``. Results in input order."""
    import torch
    import torch.nn.functional as F

    out: list[LLResult | None] = [None] * len(reqs)
    pos = {id(r): i for i, r in enumerate(reqs)}
    rows = plan_rows(reqs)
    stats = stats if stats is not None else BatchStats()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        inputs = []
        for group in chunk:
            head = group[0]
            if len(head.continuation) > max_length:
                raise ValueError(f"continuation of {len(head.continuation)} tokens exceeds max_length {max_length}")
            inputs.append((head.context + head.continuation)[-(max_length + 1):][:-1])
        width = max(len(x) for x in inputs)
        batch = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, x in enumerate(inputs):
            batch[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        stats.rows += len(inputs)
        stats.tokens_forwarded += sum(len(x) for x in inputs)
        stats.padded_tokens += len(inputs) * width
        with torch.no_grad():
            logits = forward(batch.to(device))
        done: list[tuple[int, LLResult]] = []
        for i, (group, x) in enumerate(zip(chunk, inputs, strict=True)):
            inplen = len(x)
            contlen = len(group[0].continuation)
            row_logp = F.log_softmax(logits[i, inplen - contlen : inplen].float(), dim=-1)
            greedy_tokens = row_logp.argmax(dim=-1)
            for member in group:
                cont = torch.tensor(member.continuation, dtype=torch.long, device=row_logp.device)
                # shared rows only differ in the last continuation token
                logp = row_logp.gather(1, cont.unsqueeze(-1)).squeeze(-1)
                res = LLResult(
                    logprob=float(logp.sum()),
                    is_greedy=bool((greedy_tokens == cont).all()),
                    n_tokens=contlen,
                )
                out[pos[id(member)]] = res
                done.append((member.index, res))
        if on_batch is not None:
            on_batch(done)
    return [r for r in out if r is not None]
