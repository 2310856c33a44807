"""Per-token continuation log-probs (capability "token_logprobs") on the shared-prefix packed kernel.

The same token trie as ``packed.py`` (each distinct prefix token forwarded once, a block attention mask,
vocabulary projection only at the positions that predict continuation tokens), but the gathered values
are returned per token instead of summed: what the monitor's uncertainty signals read (mean / min token
log-prob, tail shares). Their sum equals ``loglikelihood`` of the same request within float rounding.

A request longer than ``max_length + 1`` tokens keeps its continuation (at most ``max_length - 1`` tokens,
the rest cut) and the end of its context (left truncation), so every request gets an answer. Models on
which packing was refused (``scoring: plain``) are forwarded one request at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evalmon.backends.hf.loglikelihood import BatchStats, TokenRequest
from evalmon.backends.hf.packed import Pack, PackedForward, build_pack, run_packs
from evalmon.core.lm import TokenLogprobs


def fit(r: TokenRequest, max_length: int) -> TokenRequest:
    """``r`` cut to at most ``max_length + 1`` tokens: continuation head kept, context left-truncated."""
    if len(r.context) + len(r.continuation) <= max_length + 1:
        return r
    cont = r.continuation[: max(1, max_length - 1)]
    ctx = r.context[-(max_length + 1 - len(cont)):]
    return TokenRequest(r.index, ctx, cont)


def score_pack_tokens(forward: PackedForward, pack: Pack, device: str) -> list[tuple[int, TokenLogprobs]]:
    import torch

    ids, pos, mask, paths = build_pack(pack)
    node_idx, targets, sizes = [], [], []
    for r, path in zip(pack.requests, paths, strict=True):
        c = len(r.context)
        node_idx.append(path[c - 1 : c - 1 + len(r.continuation)])
        targets.append(np.asarray(r.continuation, dtype=np.int64))
        sizes.append(len(r.continuation))
    keep, inverse = np.unique(np.concatenate(node_idx), return_inverse=True)
    with torch.no_grad():
        logits = forward(ids.unsqueeze(0).to(device), mask[None, None].to(device), pos.unsqueeze(0).to(device),
                         torch.from_numpy(keep).to(device))
    logp = torch.log_softmax(logits.float(), dim=-1)
    rows = torch.from_numpy(inverse).to(logp.device)
    tgt = torch.from_numpy(np.concatenate(targets)).to(logp.device)
    values = logp[rows, tgt].double().cpu().numpy()
    out, start = [], 0
    for r, size in zip(pack.requests, sizes, strict=True):
        out.append((r.index, TokenLogprobs(tuple(float(v) for v in values[start:start + size]), r.continuation)))
        start += size
    return out


def score_tokens_plain(forward: Callable[..., Any], r: TokenRequest, device: str) -> TokenLogprobs:
    """One request, unpadded: the plain forward of ``(ctx + cont)[:-1]``."""
    import torch

    ids = torch.tensor([[*r.context, *r.continuation[:-1]]], device=device)
    with torch.no_grad():
        logits = forward(ids)[0, -len(r.continuation):]
    logp = torch.log_softmax(logits.float(), dim=-1)
    vals = logp[torch.arange(len(r.continuation)), torch.tensor(r.continuation, device=logp.device)]
    return TokenLogprobs(tuple(float(v) for v in vals.double().cpu()), r.continuation)


def token_logprobs(lm: Any, reqs: Sequence[Any]) -> list[TokenLogprobs]:
    """Per-token log-probs of ``reqs`` (``LLRequest``s) on an ``HFCausalLM``: packed when it packs."""
    token_reqs = [fit(r, lm.max_length) for r in lm.tokenize_requests(reqs)]
    stats = lm.last_stats = lm._last = BatchStats()
    out: dict[int, TokenLogprobs] = {r.index: TokenLogprobs((), ()) for r in token_reqs if not r.continuation}
    todo = [r for r in token_reqs if r.continuation and r.context]
    if lm.scoring != "packed":
        for r in todo:
            out[r.index] = score_tokens_plain(lm._forward, r, lm.device)
            stats.rows += 1
            stats.tokens_forwarded += len(r.context) + len(r.continuation) - 1
        stats.padded_tokens = stats.tokens_forwarded
        return [out[r.index] for r in token_reqs]
    score = lambda pack: score_pack_tokens(lm._packed_forward, pack, lm.device)  # noqa: E731
    for done in run_packs(todo, lm.settings.token_budget or 2048, score, stats):
        out.update(done)
    return [out[r.index] for r in token_reqs]
