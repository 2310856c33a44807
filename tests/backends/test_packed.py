"""Shared-prefix (trie-packed) scoring equals the plain path and lm-eval, and forwards ~the unique floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalmon.backends.hf.loglikelihood import TokenRequest
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.backends.hf.packed import build_pack, plan_packs, unique_tokens
from evalmon.tasks.base import TaskOptions, build_task


def test_trie_mask_is_the_ancestor_relation() -> None:
    reqs = [TokenRequest(0, (1, 2, 3), (4, 5)), TokenRequest(1, (1, 2, 3), (6,)), TokenRequest(2, (1, 2, 7), (8, 9)),
            TokenRequest(3, (1, 2, 3), (4, 5))]
    (pack,) = plan_packs(reqs, 100)
    ids, pos, mask, paths = build_pack(pack)
    assert pack.nodes == len(ids) == unique_tokens(reqs) == 6  # rows 1234, 123, 1278 -> trie 1-2-3-4, 7-8
    for p in paths:
        assert ids[p].tolist() == list(pack.requests[[list(x) for x in paths].index(list(p))].context
                                        + pack.requests[[list(x) for x in paths].index(list(p))].continuation[:-1])
        assert pos[p].tolist() == list(range(len(p)))
        for k, node in enumerate(p):  # each node sees exactly its ancestors
            assert set(mask[node].nonzero().flatten().tolist()) == set(p[: k + 1].tolist())


def test_budget_splits_packs_and_keeps_every_request() -> None:
    reqs = [TokenRequest(i, tuple(range(100 + i, 140 + i)), (7, 8)) for i in range(10)]
    packs = plan_packs(reqs, 100)
    assert len(packs) > 1 and sorted(r.index for p in packs for r in p.requests) == list(range(10))
    assert all(p.nodes <= 100 for p in packs)


@pytest.mark.parametrize("task,limit", [("hellaswag", 12), ("truthfulqa_mc2", 6), ("mmlu_anatomy", 8)])
def test_packed_equals_plain(tiny_checkpoint: Path, benchmarks_dir: Path, task: str, limit: int) -> None:
    t = build_task(task, TaskOptions(data_dir=benchmarks_dir, limit=limit))
    reqs = [r for d in t.docs() for r in t.requests(d)]
    packed = HFCausalLM(HFSettings(path=str(tiny_checkpoint), token_budget=1024))
    plain = HFCausalLM(HFSettings(path=str(tiny_checkpoint), scoring="plain"))
    assert packed.fingerprint.extra["scoring"] == "packed"
    a, b = packed.loglikelihood(reqs), plain.loglikelihood(reqs)
    assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b, strict=True)) <= 1e-4
    assert [x.is_greedy for x in a] == [y.is_greedy for y in b]
    i = 0
    for d in t.docs():  # identical per-document decisions
        n = len(t.requests(d))
        assert t.score(d, a[i : i + n]) == pytest.approx(t.score(d, b[i : i + n]), abs=1e-5)  # mc2 is smooth
        i += n
    floor = unique_tokens(packed.tokenize_requests(reqs))
    assert packed.last_stats.tokens_forwarded < plain.last_stats.tokens_forwarded
    if task == "hellaswag":
        assert packed.last_stats.tokens_forwarded <= 1.1 * floor


def test_truncated_requests_take_the_plain_path(tiny_checkpoint: Path) -> None:
    from evalmon.core.lm import LLRequest

    lm = HFCausalLM(HFSettings(path=str(tiny_checkpoint), max_length=32))
    ref = HFCausalLM(HFSettings(path=str(tiny_checkpoint), max_length=32, scoring="plain"))
    reqs = [LLRequest("word " * 50, " end"), LLRequest("short", " one"), LLRequest("short", " two words")]
    for x, y in zip(lm.loglikelihood(reqs), ref.loglikelihood(reqs), strict=True):
        assert abs(x.logprob - y.logprob) <= 1e-4
