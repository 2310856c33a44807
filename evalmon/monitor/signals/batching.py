"""Length-sorted batches under a padded-token budget, for the encoders that pad each batch to its longest text
(the ONNX sentence embedder, the lm probe's hidden states): padding a short text to a long neighbour's length
costs as much as a long text, and a transformer's cost per token grows with a batch's area."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Positions of ``lengths`` in batches: sorted by length, at most ``batch_size`` texts and ``max_tokens`` padded
    tokens (batch size × its longest) each; a text longer than ``max_tokens`` is a batch of its own."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < batch_size and lengths[order[end]] * (end - start + 1) <= max_tokens:
            end += 1
        out.append(order[start:end])
        start = end
    return out
