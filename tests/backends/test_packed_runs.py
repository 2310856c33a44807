"""``run_packs``: the one pack loop of the packed kernels (loglikelihood and per-token log-probs)."""

from __future__ import annotations

import pytest

from evalmon.backends.hf.loglikelihood import BatchStats, TokenRequest
from evalmon.backends.hf.packed import Pack, run_packs


def _reqs(n: int) -> list[TokenRequest]:
    return [TokenRequest(i, [1, 10 + i, 20 + i, 30 + i], [40 + i, 50 + i]) for i in range(n)]


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_out_of_memory_halves_the_budget_and_scores_every_request_once() -> None:
    seen: list[int] = []

    def score(pack: Pack) -> list[int]:
        if len(pack.requests) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.append(len(pack.requests))
        return [r.index for r in pack.requests]

    stats = BatchStats()
    done = [i for part in run_packs(_reqs(6), 1000, score, stats) for i in part]
    assert sorted(done) == list(range(6)) and len(done) == 6
    assert max(seen) <= 2 and stats.rows == len(seen) >= 3


@pytest.mark.e2e  # over 2 s in the unit lane (make test-fast budget)
def test_other_errors_and_a_one_request_pack_out_of_memory_are_raised() -> None:
    def broken(pack: Pack) -> list[int]:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(run_packs(_reqs(3), 1000, broken, BatchStats()))

    def always_oom(pack: Pack) -> list[int]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        list(run_packs(_reqs(3), 1000, always_oom, BatchStats()))
