"""The ONNX encoder's batching (``batching.length_batches``, shared with the lm probe) and its thread count beside other work
(``embed_onnx.cores_reserved``): pure functions, no model."""

from __future__ import annotations

import random
import threading

import pytest

from evalmon.monitor.signals import embed_onnx
from evalmon.monitor.signals.batching import length_batches
from evalmon.monitor.signals.embed_onnx import _RESERVED, cores_reserved


@pytest.mark.parametrize("seed", range(5))
def test_batches_cover_every_text_once_in_length_order_within_both_caps(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(1, 20), rng.randint(20, 256)]) for _ in range(rng.randint(1, 400))]
    batches = length_batches(lengths, batch_size=64, max_tokens=1024)
    flat = [int(i) for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every text exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first: a batch pads to its last text
    for b in batches:
        widest = max(lengths[i] for i in b)
        assert len(b) <= 64 and (len(b) == 1 or widest * len(b) <= 1024)


def test_short_texts_fill_the_batch_long_ones_split_and_an_overlong_text_is_alone() -> None:
    assert [len(b) for b in length_batches([8] * 200, batch_size=64, max_tokens=1024)] == [64, 64, 64, 8]
    assert [len(b) for b in length_batches([256] * 10, batch_size=64, max_tokens=1024)] == [4, 4, 2]
    assert [len(b) for b in length_batches([5000, 3], batch_size=64, max_tokens=1024)] == [1, 1]
    assert length_batches([], batch_size=64, max_tokens=1024) == []


def test_reserved_cores_are_left_to_other_work_in_this_context_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_onnx, "available_cores", lambda: 4)
    enc = object.__new__(embed_onnx.OnnxEncoder)  # threads() reads only these two facts
    enc._explicit = 0
    seen: list[int] = []
    with cores_reserved(1):
        assert enc.threads() == 3
        with cores_reserved(2):
            assert enc.threads() == 1
        worker = threading.Thread(target=lambda: seen.append(enc.threads()))  # another thread: its own context
        worker.start()
        worker.join()
        with cores_reserved(9):
            assert enc.threads() == 1  # never below one thread
    assert enc.threads() == 4 and seen == [4] and _RESERVED.get() == 0
    enc._explicit = 2  # EVALMON_EMBEDDINGS_THREADS / threads=: the user's number is kept
    with cores_reserved(1):
        assert enc.threads() == 2
