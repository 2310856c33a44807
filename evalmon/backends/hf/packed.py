"""Shared-prefix loglikelihood scoring: token-trie packing with a block attention mask.

lm-eval forwards ``(ctx + cont)[:-1]`` once per request (only one-token continuations sharing a
context are grouped). Here every loglikelihood row of a pack is inserted into a token trie, so each
distinct prefix token is forwarded **once**: the context of a multiple-choice question is shared by
all its choices, and the identical few-shot prefix of an MMLU subject by all its questions. The trie
is flattened into one sequence; a 4-D attention mask lets each node attend exactly to its ancestors
and ``position_ids`` = depth, so every node sees the same causal context as in the plain forward.
The vocabulary projection runs only at the positions that predict continuation tokens
(``logits_to_keep``), and gathering, summing and the greedy check are vectorised (no per-token
Python on the hot path).

Numbers: per request equal to the plain path / lm-eval within float rounding (~1e-6 in float32;
tests require ≤ 1e-4). Requests that need lm-eval's left truncation (``len(ctx + cont) >
max_length + 1``) take the plain path, which reproduces it exactly.

Batching is by token budget: rows are sorted lexicographically (shared prefixes adjacent) and packs
are filled until their trie holds ``token_budget`` nodes; packs run largest first, and an
out-of-memory error halves the budget and retries, so no batch size has to be guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from evalmon.backends.hf.loglikelihood import BatchStats, OnBatch, TokenRequest, score_token_requests
from evalmon.core.lm import LLResult

T = TypeVar("T")

PackedForward = Callable[[Any, Any, Any, Any], Any]  # (input_ids, mask4d, position_ids, keep) -> logits [K, V]


@dataclass
class Pack:
    requests: list[TokenRequest] = field(default_factory=list)
    nodes: int = 0


def _lcp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    m = min(len(a), len(b))
    if m == 0:
        return 0
    x = np.frombuffer(np.asarray(a[:m], dtype=np.int64).tobytes(), dtype=np.int64)
    y = np.frombuffer(np.asarray(b[:m], dtype=np.int64).tobytes(), dtype=np.int64)
    diff = np.nonzero(x != y)[0]
    return int(diff[0]) if len(diff) else m


def _row(r: TokenRequest) -> tuple[int, ...]:
    return r.context + r.continuation[:-1]


def plan_packs(reqs: Sequence[TokenRequest], token_budget: int) -> list[Pack]:
    """Sort rows lexicographically and fill packs up to ``token_budget`` trie nodes."""
    order = sorted(reqs, key=_row)
    packs: list[Pack] = []
    cur, prev = Pack(), ()
    for r in order:
        row = _row(r)
        new = len(row) - _lcp(prev, row)
        if cur.requests and cur.nodes + new > token_budget:
            packs.append(cur)
            cur, prev = Pack(), ()
            new = len(row)
        cur.requests.append(r)
        cur.nodes += new
        prev = row
    if cur.requests:
        packs.append(cur)
    packs.sort(key=lambda p: -p.nodes)  # largest first: an OOM shows on the first forward
    return packs


def unique_tokens(reqs: Sequence[TokenRequest]) -> int:
    """Nodes of the trie over all rows: the physical floor of tokens any exact method must forward."""
    total, prev = 0, ()
    for row in sorted({_row(r) for r in reqs}):
        total += len(row) - _lcp(prev, row)
        prev = row
    return total


def build_pack(pack: Pack) -> tuple[Any, Any, Any, list[Any]]:
    """Flatten a pack's trie: tokens, depths (position ids), ancestor mask, node path per request.

    Rows are inserted in lexicographic order, so nodes are numbered in depth-first preorder and the
    subtree of node ``j`` is the index range ``[j, end[j])``: ``i`` may attend to ``j`` iff
    ``j <= i < end[j]``. The mask is built from that rule in one vectorised comparison.
    """
    import torch

    tokens: list[int] = []
    depth: list[int] = []
    closed: list[tuple[np.ndarray, int]] = []  # (nodes, end) when a branch closes
    paths_by_row: dict[tuple[int, ...], np.ndarray] = {}
    prev: tuple[int, ...] = ()
    prev_path = np.zeros(0, dtype=np.int64)
    for row in sorted({_row(r) for r in pack.requests}):
        lcp = _lcp(prev, row)
        start = len(tokens)
        if len(prev_path) > lcp:
            closed.append((prev_path[lcp:], start))  # the previous branch below the split point ends here
        path = np.concatenate([prev_path[:lcp], np.arange(start, start + len(row) - lcp, dtype=np.int64)])
        tokens.extend(row[lcp:])
        depth.extend(range(lcp, len(row)))
        paths_by_row[row] = path
        prev, prev_path = row, path
    n = len(tokens)
    full_end = np.full(n, n, dtype=np.int64)
    for nodes, stop in closed:
        full_end[nodes] = stop
    idx = torch.arange(n)
    e = torch.from_numpy(full_end)
    mask = (idx[:, None] >= idx[None, :]) & (idx[:, None] < e[None, :])
    ids = torch.tensor(tokens, dtype=torch.long)
    pos = torch.tensor(depth, dtype=torch.long)
    return ids, pos, mask, [paths_by_row[_row(r)] for r in pack.requests]


def score_pack(forward: PackedForward, pack: Pack, device: str) -> list[tuple[int, LLResult]]:
    import torch

    ids, pos, mask, paths = build_pack(pack)
    node_idx, targets, owner = [], [], []
    for j, (r, path) in enumerate(zip(pack.requests, paths, strict=True)):
        c = len(r.context)
        node_idx.append(path[c - 1 : c - 1 + len(r.continuation)])
        targets.append(np.asarray(r.continuation, dtype=np.int64))
        owner.append(np.full(len(r.continuation), j, dtype=np.int64))
    nodes = np.concatenate(node_idx)
    keep, inverse = np.unique(nodes, return_inverse=True)
    with torch.no_grad():
        logits = forward(ids.unsqueeze(0).to(device), mask[None, None].to(device), pos.unsqueeze(0).to(device),
                         torch.from_numpy(keep).to(device))
    logp = torch.log_softmax(logits.float(), dim=-1)
    rows = torch.from_numpy(inverse).to(logp.device)
    tgt = torch.from_numpy(np.concatenate(targets)).to(logp.device)
    own = torch.from_numpy(np.concatenate(owner)).to(logp.device)
    values = logp[rows, tgt]
    misses = (logp.argmax(dim=-1)[rows] != tgt).to(torch.float32)
    n = len(pack.requests)
    sums = torch.zeros(n, dtype=torch.float64, device=logp.device).index_add_(0, own, values.double())
    miss = torch.zeros(n, dtype=torch.float32, device=logp.device).index_add_(0, own, misses)
    return [(r.index, LLResult(float(sums[j]), bool(miss[j] == 0), len(r.continuation)))
            for j, r in enumerate(pack.requests)]


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def run_packs(requests: Sequence[TokenRequest], token_budget: int, score: Callable[[Pack], T],
              stats: BatchStats) -> Iterator[T]:
    """Packs of ``requests`` filled to ``token_budget`` tokens, each scored with ``score``, in order. A pack that
    runs out of memory halves the budget and the rest is re-planned (a one-request pack re-raises)."""
    budget = max(token_budget, 1)
    pending = plan_packs(list(requests), budget)
    while pending:
        pack = pending.pop(0)
        try:
            done = score(pack)
        except RuntimeError as exc:
            if not _is_oom(exc) or len(pack.requests) == 1:
                raise
            budget = max(1, budget // 2)
            _free_cache()
            pending = plan_packs([r for p in [pack, *pending] for r in p.requests], budget)
            continue
        stats.rows += 1
        stats.tokens_forwarded += pack.nodes
        stats.padded_tokens += pack.nodes
        yield done


def score_packed(
    forward: PackedForward,
    plain_forward: Callable[..., Any],
    reqs: Sequence[TokenRequest],
    *,
    token_budget: int,
    max_length: int,
    batch_size: int,
    device: str = "cpu",
    on_batch: OnBatch | None = None,
    stats: BatchStats | None = None,
) -> list[LLResult]:
    """Score requests with trie packing (truncated ones on the plain path). Results in input order."""
    stats = stats if stats is not None else BatchStats()
    out: dict[int, LLResult] = {}
    plain = [r for r in reqs if len(r.context) + len(r.continuation) > max_length + 1]
    packable = [r for r in reqs if len(r.context) + len(r.continuation) <= max_length + 1]
    for done in run_packs(packable, token_budget, lambda pack: score_pack(forward, pack, device), stats):
        out.update(done)
        if on_batch:
            on_batch(done)
    if plain:
        rescored = score_token_requests(plain_forward, plain, batch_size=batch_size, max_length=max_length,
                                        device=device, stats=stats, on_batch=on_batch)
        out.update({r.index: res for r, res in zip(plain, rescored, strict=True)})
    return [out[r.index] for r in reqs]


def _free_cache() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
