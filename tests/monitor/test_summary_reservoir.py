"""The reservoir's sample is the bottom-``size`` rows by (seeded key, sequence) of everything folded in, however
the rows arrive (many small updates, merge chains, pickling between processes) — the lazy compaction that keeps
a 1M-row basis from being re-concatenated per update must not change which rows are kept or their order."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from evalmon.monitor.summary import Reservoir, row_keys

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.to_datetime([T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 3600, n))], utc=True)
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ts, "arrival": np.arange(n),
                         "x": rng.normal(size=n), "model": rng.choice(["a", "b", None], n)})


def _expected(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """The definition: the ``size`` smallest keys of the whole frame, in the data's order."""
    keys = row_keys(frame, seed)
    keep = np.sort(np.argsort(keys, kind="stable")[:size])
    return frame.iloc[keep][["x", "model"]].reset_index(drop=True)


@pytest.mark.parametrize(("size", "parts"), [(40, 8), (300, 3), (600, 2), (7, 12)])
def test_reservoir_is_the_bottom_k_of_the_union(size: int, parts: int) -> None:
    df = _frame(400, seed=size)
    chunks = np.array_split(np.arange(len(df)), parts)
    by_update = Reservoir(("x", "model"), size=size, seed=3)
    for c in chunks:
        by_update.update(df.iloc[c])
    by_merge = Reservoir(("x", "model"), size=size, seed=3)
    for c in chunks:  # a merge chain (the Spark driver's fit pass), each part shipped through pickle
        part = pickle.loads(pickle.dumps(Reservoir(("x", "model"), size=size, seed=3).update(df.iloc[c])))
        by_merge = by_merge.merge(part)
    want = _expected(df, size, 3)
    for res in (by_update, by_merge, pickle.loads(pickle.dumps(by_update))):
        assert res.seen == len(df) and res.complete == (len(df) <= size)
        pd.testing.assert_frame_equal(res.frame(), want)
        assert res.rows is not None and len(res.rows) == min(size, len(df))
