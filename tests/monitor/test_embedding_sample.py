"""``EmbeddingSignal.sampled``: the drift sample of a batch with repeated records is not a cluster sample."""

from __future__ import annotations

import pandas as pd

from evalmon.monitor.signals.embeddings import EmbeddingSignal


def test_repeated_records_are_sampled_in_proportion_not_all_or_none() -> None:
    """Logged traffic repeats prompts: 10 contents × 40 copies. Hashing the content alone sampled every copy
    of the 1–2 contents with the smallest hash (a sample whose mean embedding strays far from the batch's)."""
    frame = pd.DataFrame({"prompt": [f"question {i % 10}" for i in range(400)],
                          "response": [f"answer {i % 10}" for i in range(400)]})
    sig = EmbeddingSignal(sample_rate=0.1, sample_min=50, sample_max=5000)
    picked = frame.iloc[sig.sampled(frame)]["prompt"].value_counts()
    assert picked.sum() == 50 and len(picked) >= 8 and picked.max() <= 12, picked.to_dict()
    rev = frame.iloc[::-1].reset_index(drop=True)  # the same contents, counted, whatever the order
    assert rev.iloc[sig.sampled(rev)]["prompt"].value_counts().to_dict() == picked.to_dict()
